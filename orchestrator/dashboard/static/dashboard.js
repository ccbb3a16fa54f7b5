"use strict";
// The dashboard page: polls the JSON API every refresh_seconds and redraws in place (routes: the package docstring).

// Line dash per source of the curves: the selected sweep solid, compared sweeps and baselines dashed, dotted, …
const DASHES = ["solid", "dash", "dot", "dashdot", "longdash", "longdashdot"];
// Filters of runs and curves besides p.NAME, a hyperparameter (p.lr=0.01, the value as the labels write it).
const FILTERS = ["problem", "optimizer", "state"];

// What the page shows; all of it but the data lives in the URL's hash, so a link shows a colleague the same view:
// #sweep=ID&metric=NAME&log=1&smooth=0.8&problem=P&optimizer=O&state=S&p.lr=0.01&setting=ID&compare=ID,baseline:NAME
// (compare: sweep ids and baselines, drawn in the same panels). An older link's bare #ID still names a sweep.
const view = {
  sweep: null,
  metric: null,
  log: false,
  smooth: 0, // weight of the exponential moving average; 0: none
  filters: {},
  setting: null, // a setting whose runs are drawn one line per seed
  compare: [],
  sweeps: [],
  data: null, // the last answers: {sweep, curves: [{source, answer, error}]}, the selected sweep's first
  refreshSeconds: 5,
  generation: 0, // a refresh whose generation is no longer current neither draws nor schedules
  timer: null,
};

function readHash() {
  const hash = location.hash.slice(1);
  const params = new URLSearchParams(hash.includes("=") ? hash : "");
  view.sweep = hash.includes("=") ? params.get("sweep") : decodeURIComponent(hash) || null;
  view.metric = params.get("metric");
  view.log = params.get("log") === "1";
  view.smooth = Number(params.get("smooth")) || 0;
  view.setting = params.get("setting");
  view.compare = (params.get("compare") ?? "").split(",").filter(Boolean);
  view.filters = Object.fromEntries([...params].filter(([key]) => FILTERS.includes(key) || key.startsWith("p.")));
}

function writeHash() {
  const params = new URLSearchParams();
  const entries = [["sweep", view.sweep], ["metric", view.metric], ["log", view.log ? "1" : ""],
    ["smooth", view.smooth ? String(view.smooth) : ""], ...Object.entries(view.filters), ["setting", view.setting],
    ["compare", view.compare.join(",")]];
  for (const [key, value] of entries) if (value) params.set(key, value);
  const hash = `#${params}`;
  if (location.hash !== hash) history.replaceState(null, "", hash);
}

// A filter by a hyperparameter drops, in the selected sweep, the settings without it (PAL has no lr); a compared
// source keeps those, since a hyperparameter it never varied is not among its params.
function matches(item, strict, keys = Object.keys(view.filters)) {
  return keys.every((key) => {
    const value = view.filters[key];
    if (!key.startsWith("p.")) return String(item[key] ?? "") === value;
    const own = item.params?.[key.slice(2)];
    return own === value || (!strict && own === undefined);
  });
}

const matchesRun = (run) => (!view.setting || run.setting_id === view.setting) && matches(run, true);

// A compared source's setting "is" the chosen one when problem, optimizer and the hyperparameters both vary agree.
function sameSetting(setting, chosen) {
  return setting.problem === chosen.problem && setting.optimizer === chosen.optimizer &&
    Object.entries(setting.params).every(([key, value]) => !(key in chosen.params) || chosen.params[key] === value);
}

// TensorBoard's smoothing: a debiased exponential moving average that skips missing values.
function smooth(values, weight) {
  if (!weight) return values;
  let average = 0, count = 0;
  return values.map((value) => {
    if (value === null) return null;
    average = weight * average + (1 - weight) * value;
    count += 1;
    return average / (1 - weight ** count);
  });
}

function rgba(hex, alpha) {
  const n = parseInt(hex.slice(1), 16);
  return `rgba(${n >> 16},${(n >> 8) & 255},${n & 255},${alpha})`;
}

const $ = (id) => document.getElementById(id);

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key.startsWith("data-")) node.setAttribute(key, value);
    else node[key] = value;
  }
  const present = children.filter((child) => child !== null && child !== undefined);
  node.append(...present.map((child) => (child instanceof Node ? child : String(child))));
  return node;
}

async function getJSON(url) {
  const answer = await fetch(url, { cache: "no-store" });
  const body = await answer.json();
  if (!answer.ok) throw new Error(body.error || answer.statusText);
  return body;
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "";
  if (seconds < 60) return `${Math.round(seconds)} s`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min`;
  const hours = Math.floor(seconds / 3600);
  return `${hours} h ${Math.round((seconds - 3600 * hours) / 60)} min`;
}

const percent = (fraction) => `${Math.floor(100 * fraction)} %`;
const number = (value) => (value === null || value === undefined ? "" : String(Number(value.toPrecision(4))));

function bar(fraction) {
  const fill = el("span");
  fill.style.width = `${100 * fraction}%`;
  return el("div", { className: "bar" }, fill);
}

// ---------------------------------------------------------------------------------------------- drawing

function drawSweeps(sweeps) {
  $("sweeps").replaceChildren(...sweeps.map((sweep) => {
    const counts = Object.entries(sweep.counts).map(([state, n]) => `${n} ${state}`).join(", ");
    const item = el("li", { className: sweep.sweep_id === view.sweep ? "selected" : "", "data-sweep": sweep.sweep_id },
      el("b", {}, sweep.name), el("code", { className: "id muted" }, sweep.sweep_id), bar(sweep.fraction),
      el("span", { className: "muted" }, counts), sweep.warning ? el("span", { className: "problem" }, "Slurm does not answer") : "",
      sweep.notes.some((note) => note.kind === "never") ? el("span", { className: "problem" }, "runs that never start") : "");
    item.onclick = () => select(sweep.sweep_id);
    if (sweep.sweep_id !== view.sweep) item.append(compareBox(sweep.sweep_id));
    return item;
  }));
}

// A checkbox that draws a sweep (or baselines) in the selected sweep's panels too.
function compareBox(id) {
  const box = el("input", { type: "checkbox", checked: view.compare.includes(id), "data-compare": id });
  box.onchange = () => {
    view.compare = box.checked ? [...view.compare, id] : view.compare.filter((other) => other !== id);
    refresh();
  };
  const label = el("label", { className: "compare" }, box, " compare");
  label.onclick = (event) => event.stopPropagation(); // not a click on the sweep
  return label;
}

function drawBaselines(baselines) {
  $("baselines-section").hidden = baselines.length === 0;
  $("baselines").replaceChildren(...baselines.map((baseline) => el("li", { "data-baseline": baseline.name },
    el("b", {}, baseline.name), el("span", { className: "id muted" }, `DeepOBS, ${baseline.runs} runs`),
    compareBox(`baseline:${baseline.name}`))));
}

// Selects for the problem, optimizer, state and every hyperparameter that varies among the runs; rebuilt only
// when the choices change, so an open select stays open across refreshes.
function drawFilters(runs) {
  const choices = {};
  const add = (key, value) => value !== undefined && value !== null && (choices[key] ??= new Set()).add(String(value));
  for (const run of runs) {
    for (const key of FILTERS) add(key, run[key]);
    for (const [name, value] of Object.entries(run.params ?? {})) add(`p.${name}`, value);
  }
  const rank = (key) => (FILTERS.includes(key) ? FILTERS.indexOf(key) : FILTERS.length);
  const keys = Object.keys(choices).sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
  const signature = JSON.stringify(keys.map((key) => [key, [...choices[key]].sort()]));
  if ($("filters").dataset.signature !== signature) {
    $("filters").dataset.signature = signature;
    $("filters").replaceChildren(...keys.map((key) => {
      const select = el("select", { "data-filter": key }, el("option", { value: "" }, "all"),
        ...[...choices[key]].sort(numeric).map((value) => el("option", { value }, value)));
      select.onchange = () => {
        if (select.value) view.filters[key] = select.value;
        else delete view.filters[key];
        writeHash();
        draw();
      };
      return el("label", {}, `${key.replace(/^p\./, "")} `, select);
    }));
  }
  for (const select of $("filters").querySelectorAll("select")) select.value = view.filters[select.dataset.filter] ?? "";
  const chosen = view.setting && runs.find((run) => run.setting_id === view.setting);
  $("chosen").hidden = !view.setting;
  $("chosen-label").textContent = chosen ? `${chosen.problem} · ${chosen.label}` : view.setting ?? "";
}

const numeric = (a, b) => (isNaN(a) || isNaN(b) ? a.localeCompare(b) : Number(a) - Number(b));

function drawSweep(sweep) {
  $("sweep-name").textContent = sweep.name;
  $("sweep-id").textContent = sweep.sweep_id;
  $("report").hidden = !sweep.report;
  if (sweep.report) $("report").href = sweep.report;
  $("counts").replaceChildren(...Object.entries(sweep.counts).map(([state, n]) =>
    el("span", { className: "count", "data-state": state }, el("b", {}, n), state)));
  $("warning").hidden = !sweep.warning;
  $("warning").textContent = sweep.warning ?? "";
  $("notes").replaceChildren(...sweep.notes.map((note) => el("p", { className: "note", "data-kind": note.kind }, note.text)));
  $("sweep-bar").style.width = `${100 * sweep.fraction}%`;
  $("sweep-done").textContent = `${percent(sweep.fraction)} of ${sweep.runs.length} runs`;
  $("sweep-eta").textContent = sweep.active
    ? `ETA ${duration(sweep.eta_seconds) || "unknown"}, run time ${duration(sweep.running_seconds) || "–"}`
    : `every run has ended; run time ${duration(sweep.running_seconds) || "–"}`;
  drawFailures(sweep.failures);
  drawRuns(sweep.runs);
}

function drawFailures(failures) {
  $("failures-section").hidden = failures.length === 0;
  $("failures").replaceChildren(...failures.map((run) => el("div", { className: "failure", "data-run": run.run_id },
    el("div", {}, el("code", {}, run.run_id), " ", el("span", { className: "state", "data-state": run.state }, run.state),
      ` ${run.problem ?? ""} · ${run.label}, seed ${run.seed}`),
    run.error ? el("pre", { className: "error" }, run.error.trim().split("\n").slice(-6).join("\n")) : null,
    el("div", { className: "muted" }, run.log ? `job log ${run.log}` : "no job log"),
    run.log_tail.length ? el("pre", { className: "log" }, run.log_tail.join("\n")) : null)));
}

function drawRuns(runs) {
  $("last-metric").textContent = view.metric ? `last ${view.metric}` : "last";
  const shown = runs.filter(matchesRun);
  $("runs-shown").textContent = shown.length === runs.length ? `${runs.length} runs` : `${shown.length} of ${runs.length} runs`;
  $("runs").tBodies[0].replaceChildren(...shown.map((run) => el("tr", { "data-run": run.run_id },
    el("td", {}, el("code", {}, run.run_id)),
    el("td", {}, run.problem ?? ""),
    el("td", {}, el("a", { href: "#", className: "setting", title: "this setting's runs, one curve per seed",
      onclick: (event) => { event.preventDefault(); chooseSetting(run.setting_id); } }, run.label)),
    el("td", { className: "num" }, run.seed ?? ""),
    el("td", { className: run.stalled ? "state stalled" : "state", "data-state": run.state },
      run.stalled ? `${run.state} (no heartbeat)` : run.state),
    el("td", {}, bar(run.fraction), run.steps ? ` ${run.step ?? 0}/${run.steps} steps` : ` ${percent(run.fraction)}`),
    el("td", { className: "num" }, run.epochs ? `${run.epoch ?? 0}/${run.epochs}` : run.epoch ?? ""),
    el("td", { className: "num" }, number(run.last[view.metric])),
    run.waiting
      ? el("td", { className: "waiting", "data-kind": run.waiting.kind, title: run.waiting.reason }, `(${run.waiting.words})`)
      : el("td", {}, run.node),
    el("td", { className: "num" }, duration(run.eta_seconds)),
    el("td", {}, run.wandb?.url ? el("a", { href: run.wandb.url, target: "_blank", rel: "noopener" }, "W&B") : ""))));
}

// One panel per problem (never two problems on one axis); each source of curves in its own dash.
function drawCurves(curves) {
  const main = curves[0].answer;
  view.metric = main.metric;
  const select = $("metric");
  if (select.dataset.options !== main.metrics.join()) {
    select.replaceChildren(...main.metrics.map((metric) => el("option", { value: metric }, metric)));
    select.dataset.options = main.metrics.join();
  }
  select.value = main.metric ?? "";
  $("log").checked = view.log;
  $("smooth").value = String(view.smooth);
  const [low, high] = [Math.min(...main.quantiles), Math.max(...main.quantiles)];
  $("band").textContent = `${100 * low}–${100 * high} % quantiles`;
  const chosen = view.setting ? main.settings.find((setting) => setting.setting_id === view.setting) : null;
  const problems = [...new Set(curves.flatMap((source) => source.answer?.problems ?? []))]
    .filter((problem) => !view.filters.problem || problem === view.filters.problem)
    .filter((problem) => !chosen || problem === chosen.problem);
  const panels = new Map([...$("curves").children].map((node) => [node.dataset.problem, node]));
  for (const [problem, node] of panels) {
    if (!problems.includes(problem)) {
      Plotly.purge(node.querySelector(".plot"));
      node.remove();
    }
  }
  for (const problem of problems) {
    let node = panels.get(problem);
    if (!node) {
      node = el("div", { className: "panel", "data-problem": problem }, el("h4", {}, problem), el("div", { className: "plot" }));
      $("curves").append(node);
    }
    const layout = {
      margin: { t: 10, r: 10, b: 40, l: 60 }, xaxis: { title: { text: "epoch" }, zeroline: false },
      yaxis: { title: { text: main.metric ?? "" }, type: view.log ? "log" : "linear", exponentformat: "power" },
      legend: { orientation: "h", y: -0.2, yanchor: "top" }, showlegend: true,
      uirevision: `${view.sweep} ${main.metric} ${view.log} ${view.smooth}`, // keeps zoom across refreshes
    };
    Plotly.react(node.querySelector(".plot"), panelTraces(problem, curves, chosen), layout,
      { displaylogo: false, responsive: true });
  }
  $("curves-empty").hidden = problems.length > 0;
  $("compare-note").hidden = curves.length < 2;
  $("compare-note").textContent = curves.map(({ source, error }, i) =>
    `${DASHES[i % DASHES.length]}: ${source.name}${i ? "" : " (selected)"}${error ? ` — ${error}` : ""}`).join(" · ");
}

function panelTraces(problem, curves, chosen) {
  const traces = [];
  curves.forEach(({ source, answer }, i) => {
    const dash = DASHES[i % DASHES.length];
    for (const setting of answer?.settings ?? []) {
      if (setting.problem !== problem) continue;
      if (chosen ? !(i ? sameSetting(setting, chosen) : setting === chosen) : !matches(setting, i === 0,
        Object.keys(view.filters).filter((key) => key !== "state"))) continue;
      const name = curves.length > 1 ? `${source.name}: ${setting.label}` : setting.label;
      const [median, lower, upper] = [setting.median, setting.low, setting.high].map((v) => smooth(v, view.smooth));
      const last = median.findLastIndex((value) => value !== null);
      const group = `${source.id} ${setting.setting_id}`;
      traces.push({
        x: [...setting.epoch, ...[...setting.epoch].reverse()], y: [...upper, ...[...lower].reverse()],
        mode: "lines", fill: "toself", fillcolor: rgba(setting.colour, 0.16), line: { width: 0 }, hoverinfo: "skip",
        showlegend: false, legendgroup: group, name: `${name} band`, meta: { kind: "band" },
      });
      traces.push({
        x: setting.epoch, y: median, customdata: setting.n, name, mode: "lines+markers", legendgroup: group,
        line: { color: setting.colour, dash, width: setting.user ? 3 : 2 },
        marker: { symbol: setting.symbol, color: setting.colour, size: median.map((_, k) => (k === last ? 9 : 0)) },
        meta: { kind: "median", source: source.id, optimizer: setting.optimizer, setting: setting.setting_id },
        hovertemplate: `%{y:.4g} (median of %{customdata})<extra>${name}</extra>`,
      });
    }
    if (i === 0 && chosen) {
      for (const run of answer.runs) {
        traces.push({
          x: run.epoch, y: smooth(run.value, view.smooth), mode: "lines", name: `seed ${run.seed}`, opacity: 0.6,
          line: { color: chosen.colour, width: 1 }, meta: { kind: "run", run: run.run_id },
          hovertemplate: `%{y:.4g}<extra>seed ${run.seed} (${run.run_id})</extra>`,
        });
      }
    }
  });
  return traces;
}

function draw() {
  const { sweep, curves } = view.data;
  drawFilters(sweep.runs);
  drawCurves(curves);
  drawSweep(sweep);
}

// ---------------------------------------------------------------------------------------------- polling

// The selected sweep first, then the compared sweeps and baselines; each with its curves URL.
function sources() {
  const sweep = (id) => ({ id, name: id, url: `api/sweeps/${encodeURIComponent(id)}/curves` });
  return [sweep(view.sweep), ...view.compare.filter((id) => id !== view.sweep).map((id) => (id.startsWith("baseline:")
    ? { id, name: id, url: `api/baselines/${encodeURIComponent(id.slice(9))}/curves` } : sweep(id)))];
}

async function mainCurves(url) {
  const query = new URLSearchParams(Object.entries({ metric: view.metric, setting: view.setting }).filter(([, v]) => v));
  try {
    return await getJSON(`${url}?${query}`);
  } catch (error) {
    if (!view.setting) throw error;
    view.setting = null; // a link to a setting this sweep no longer has: show the sweep
    return getJSON(`${url}?${new URLSearchParams(view.metric ? { metric: view.metric } : {})}`);
  }
}

async function refresh() {
  const generation = ++view.generation;
  clearTimeout(view.timer);
  try {
    const { sweeps } = await getJSON("api/sweeps");
    if (!view.sweep && sweeps.length) view.sweep = sweeps[0].sweep_id;
    view.sweeps = sweeps;
    drawSweeps(sweeps);
    $("empty").hidden = sweeps.length > 0;
    if (view.sweep) {
      const [main, ...others] = sources();
      const [sweep, answer] = await Promise.all([getJSON(`api/sweeps/${encodeURIComponent(view.sweep)}`),
        mainCurves(main.url)]);
      const metric = new URLSearchParams(answer.metric ? { metric: answer.metric } : {});
      const compared = await Promise.all(others.map((source) => getJSON(`${source.url}?${metric}`)
        .then((other) => ({ source, answer: other }), (error) => ({ source, error: error.message }))));
      if (generation !== view.generation) return;
      view.data = { sweep, curves: [{ source: main, answer }, ...compared] };
      $("sweep").hidden = false;
      draw();
    }
    writeHash();
    $("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
    $("problem").hidden = true;
  } catch (error) {
    if (generation !== view.generation) return;
    $("problem").textContent = error.message;
    $("problem").hidden = false;
  }
  view.timer = setTimeout(refresh, 1000 * view.refreshSeconds);
}

function select(sweepId) {
  Object.assign(view, { sweep: sweepId, metric: null, setting: null, filters: {} }); // the sweep's own defaults
  view.compare = view.compare.filter((id) => id !== sweepId);
  refresh();
}

function chooseSetting(settingId) {
  view.setting = settingId;
  refresh();
}

async function start() {
  readHash();
  $("metric").onchange = (event) => {
    view.metric = event.target.value;
    refresh();
  };
  $("log").onchange = (event) => {
    view.log = event.target.checked;
    writeHash();
    draw();
  };
  $("smooth").onchange = (event) => {
    view.smooth = Number(event.target.value);
    writeHash();
    draw();
  };
  $("chosen-clear").onclick = () => chooseSetting(null);
  window.addEventListener("hashchange", () => { // a link pasted into this tab
    readHash();
    refresh();
  });
  try {
    const config = await getJSON("api/config");
    view.refreshSeconds = config.refresh_seconds;
    $("results").textContent = config.results;
    drawBaselines((await getJSON("api/baselines")).baselines);
  } catch (error) {
    $("problem").textContent = error.message;
    $("problem").hidden = false;
  }
  refresh();
}

start();
