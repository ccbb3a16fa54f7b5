"use strict";
// The dashboard page: polls the JSON API every refresh_seconds and redraws in place (routes: the package docstring).

// Plotly's default colours, as RGB so the quantile bands can be drawn translucent.
const COLOURS = [[31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40], [148, 103, 189], [140, 86, 75],
  [227, 119, 194], [127, 127, 127], [188, 189, 34], [23, 190, 207]];

const view = {
  sweep: decodeURIComponent(location.hash.slice(1)) || null,
  metric: null,
  refreshSeconds: 5,
  generation: 0, // a refresh whose generation is no longer current neither draws nor schedules
  timer: null,
};

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
      el("span", { className: "muted" }, counts), sweep.warning ? el("span", { className: "problem" }, "Slurm does not answer") : "");
    item.onclick = () => select(sweep.sweep_id);
    return item;
  }));
}

function drawSweep(sweep) {
  $("sweep-name").textContent = sweep.name;
  $("sweep-id").textContent = sweep.sweep_id;
  $("report").hidden = !sweep.report;
  if (sweep.report) $("report").href = sweep.report;
  $("counts").replaceChildren(...Object.entries(sweep.counts).map(([state, n]) =>
    el("span", { className: "count", "data-state": state }, el("b", {}, n), state)));
  $("warning").hidden = !sweep.warning;
  $("warning").textContent = sweep.warning ?? "";
  $("sweep-bar").style.width = `${100 * sweep.fraction}%`;
  $("sweep-done").textContent = `${percent(sweep.fraction)} of ${sweep.runs.length} runs`;
  $("sweep-eta").textContent = sweep.active
    ? `ETA ${duration(sweep.eta_seconds) || "unknown"}, running for ${duration(sweep.elapsed_seconds)}`
    : "every run has ended";
  drawFailures(sweep.failures);
  drawRuns(sweep.runs);
}

function drawFailures(failures) {
  $("failures-section").hidden = failures.length === 0;
  $("failures").replaceChildren(...failures.map((run) => el("div", { className: "failure", "data-run": run.run_id },
    el("div", {}, el("code", {}, run.run_id), " ", el("span", { className: "state", "data-state": run.state }, run.state),
      ` ${run.label}, seed ${run.seed}`),
    run.error ? el("pre", { className: "error" }, run.error.trim().split("\n").slice(-6).join("\n")) : null,
    el("div", { className: "muted" }, run.log ? `job log ${run.log}` : "no job log"),
    run.log_tail.length ? el("pre", { className: "log" }, run.log_tail.join("\n")) : null)));
}

function drawRuns(runs) {
  $("last-metric").textContent = view.metric ? `last ${view.metric}` : "last";
  $("runs").tBodies[0].replaceChildren(...runs.map((run) => el("tr", { "data-run": run.run_id },
    el("td", {}, el("code", {}, run.run_id)),
    el("td", {}, run.label),
    el("td", { className: "num" }, run.seed ?? ""),
    el("td", { className: run.stalled ? "state stalled" : "state", "data-state": run.state },
      run.stalled ? `${run.state} (no heartbeat)` : run.state),
    el("td", {}, bar(run.fraction), run.steps ? ` ${run.step ?? 0}/${run.steps} steps` : ` ${percent(run.fraction)}`),
    el("td", { className: "num" }, run.epochs ? `${run.epoch ?? 0}/${run.epochs}` : run.epoch ?? ""),
    el("td", { className: "num" }, number(run.last[view.metric])),
    el("td", {}, run.node),
    el("td", { className: "num" }, duration(run.eta_seconds)),
    el("td", {}, run.wandb?.url ? el("a", { href: run.wandb.url, target: "_blank", rel: "noopener" }, "W&B") : ""))));
}

function drawCurves(curves) {
  view.metric = curves.metric;
  const select = $("metric");
  if (select.dataset.options !== curves.metrics.join()) {
    select.replaceChildren(...curves.metrics.map((metric) => el("option", { value: metric }, metric)));
    select.dataset.options = curves.metrics.join();
  }
  select.value = curves.metric ?? "";
  const [low, high] = [Math.min(...curves.quantiles), Math.max(...curves.quantiles)];
  $("band").textContent = `${100 * low}–${100 * high} % quantiles`;
  const traces = curves.settings.flatMap((setting, i) => {
    const rgb = COLOURS[i % COLOURS.length].join(",");
    const band = {
      x: [...setting.epoch, ...[...setting.epoch].reverse()], y: [...setting.high, ...[...setting.low].reverse()],
      mode: "lines", fill: "toself", fillcolor: `rgba(${rgb},0.18)`, line: { width: 0 }, hoverinfo: "skip",
      showlegend: false, legendgroup: setting.setting_id, name: `${setting.label} band`,
    };
    const median = {
      x: setting.epoch, y: setting.median, customdata: setting.n, name: setting.label, mode: "lines+markers",
      line: { color: `rgb(${rgb})` }, legendgroup: setting.setting_id,
      hovertemplate: `%{y:.4g} (median of %{customdata})<extra>${setting.label}</extra>`,
    };
    return [band, median];
  });
  const layout = {
    margin: { t: 10, r: 10, b: 45, l: 60 }, xaxis: { title: { text: "epoch" }, zeroline: false },
    yaxis: { title: { text: curves.metric ?? "" } }, uirevision: `${view.sweep} ${curves.metric}`, // keeps zoom
  };
  Plotly.react("curves", traces, layout, { displaylogo: false, responsive: true });
}

// ---------------------------------------------------------------------------------------------- polling

async function refresh() {
  const generation = ++view.generation;
  clearTimeout(view.timer);
  try {
    const { sweeps } = await getJSON("api/sweeps");
    if (!view.sweep && sweeps.length) view.sweep = sweeps[0].sweep_id;
    drawSweeps(sweeps);
    $("empty").hidden = sweeps.length > 0;
    if (view.sweep) {
      const base = `api/sweeps/${encodeURIComponent(view.sweep)}`;
      const query = view.metric ? `?metric=${encodeURIComponent(view.metric)}` : "";
      const [sweep, curves] = await Promise.all([getJSON(base), getJSON(`${base}/curves${query}`)]);
      if (generation !== view.generation) return;
      $("sweep").hidden = false;
      drawCurves(curves);
      drawSweep(sweep);
    }
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
  view.sweep = sweepId;
  view.metric = null; // the sweep's own default
  location.hash = encodeURIComponent(sweepId);
  refresh();
}

async function start() {
  $("metric").onchange = (event) => {
    view.metric = event.target.value;
    refresh();
  };
  try {
    const config = await getJSON("api/config");
    view.refreshSeconds = config.refresh_seconds;
    $("results").textContent = config.results;
  } catch (error) {
    $("problem").textContent = error.message;
    $("problem").hidden = false;
  }
  refresh();
}

start();
