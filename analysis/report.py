"""The sweep's self-contained HTML report: header, run states, summary table, figure.

One file with inline CSS and the figure as a ``data:`` URI, so it can be mailed,
attached or opened offline. Rendered with a Jinja2 template with autoescaping.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd

from analysis.aggregate import AGGREGATE_DIR, META_FILE, aggregate_sweep, fresh_aggregate
from analysis.collect import read_sweep_info
from analysis.stats import DEFAULT_QUANTILES, quantile_name, validate_quantiles
from analysis.tables import OUTCOMES, best_settings
from jobs.run_folder import STATES, atomic_write_text, read_json

log = logging.getLogger(__name__)

REPORT_FILE = "report.html"
#: Runs listed individually under "needs attention" (the rest are counted).
ATTENTION_LIMIT = 200
ATTENTION_STATES = ("failed", "diverged", "timeout", "cancelled", "unknown")


def write_report(sweep_dir: Path, runs_dir: Path) -> Path:
    """Write ``<sweep_dir>/report.html``, aggregating first when ``aggregate/`` is missing or stale."""
    sweep_dir, runs_dir = Path(sweep_dir), Path(runs_dir)
    out = sweep_dir / AGGREGATE_DIR
    meta = fresh_aggregate(sweep_dir, runs_dir)
    if meta is None:
        log.info("aggregate of %s is missing or stale; aggregating", sweep_dir.name)
        aggregate = aggregate_sweep(sweep_dir, runs_dir, quantiles=_previous_quantiles(out))
        summary, runs = aggregate.summary, aggregate.runs
        meta = read_json(out / META_FILE)
    else:
        summary = pd.read_parquet(out / "summary.parquet")
        text_columns = ["run_id", "setting_id", "state", "label", "error"]
        runs = pd.read_csv(out / "runs.csv", usecols=[*text_columns, "seed"], dtype=dict.fromkeys(text_columns, str),
                           keep_default_na=False)
    html = render_report(
        info=read_sweep_info(sweep_dir),
        runs=runs,
        summary=summary,
        png=(out / "curves.png").read_bytes(),
        quantiles=tuple(meta.get("quantiles", DEFAULT_QUANTILES)),
    )
    path = sweep_dir / REPORT_FILE
    atomic_write_text(path, html)
    log.info("wrote %s", path)
    return path


def _previous_quantiles(out: Path) -> tuple[float, ...]:
    """The quantiles of the last aggregate, so a refresh keeps what the user chose."""
    try:
        return validate_quantiles(read_json(out / META_FILE)["quantiles"])
    except (FileNotFoundError, KeyError, TypeError, ValueError):
        return DEFAULT_QUANTILES


def render_report(
    info: dict[str, Any],
    runs: pd.DataFrame,
    summary: pd.DataFrame,
    png: bytes,
    quantiles: Sequence[float] = DEFAULT_QUANTILES,
) -> str:
    """The report's HTML text."""
    low, high = quantile_name(min(quantiles)), quantile_name(max(quantiles))
    selected = best_settings(summary) if len(summary) else pd.Series(dtype=bool)
    rows = []
    for index, row in summary.iterrows():
        rows.append({
            "selected": bool(selected.get(index, False)),
            "row": row,
            "outcomes": [(row[f"{o}_median"], row[f"{o}_{low}"], row[f"{o}_{high}"]) for o in OUTCOMES],
        })
    counts = runs["state"].value_counts()
    states = [(s, int(counts[s])) for s in (*STATES, *sorted(set(counts.index) - set(STATES))) if s in counts]
    attention = runs[runs["state"].isin(ATTENTION_STATES)]
    created = info.get("created")
    template = _environment().from_string(TEMPLATE)
    return template.render(
        name=str(info.get("name") or info.get("sweep_id", "")),
        sweep_id=str(info.get("sweep_id", "")),
        overrides=[str(o) for o in info.get("overrides") or []],
        launches=info.get("launches"),
        created=_timestamp(created) if isinstance(created, int | float) else "",
        generated=_timestamp(dt.datetime.now(dt.UTC).timestamp()),
        total=len(runs),
        states=states,
        rows=rows,
        low=low,
        high=high,
        quantiles=", ".join(f"{q:g}" for q in quantiles),
        attention=attention.head(ATTENTION_LIMIT).to_dict("records"),
        attention_more=max(len(attention) - ATTENTION_LIMIT, 0),
        image=base64.b64encode(png).decode("ascii"),
    )


def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True,
                                     undefined=jinja2.StrictUndefined)
    environment.filters["num"] = format_value
    return environment


def format_value(value: Any) -> str:
    """4 significant digits; — for a missing value; ∞ for infinities; integers as they are."""
    if value is None or value is pd.NA:
        return "—"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(number):
        return "—"
    if math.isinf(number):
        return "∞" if number > 0 else "−∞"
    if number.is_integer() and abs(number) < 1e6:
        return str(int(number))
    return f"{number:.4g}"


def _timestamp(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ name }} — optbench report</title>
<style>
  :root { --ink: #1f2328; --muted: #656d76; --line: #d0d7de; --soft: #f6f8fa; --accent: #0969da; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink);
         background: #fff; }
  main { max-width: 1280px; margin: 0 auto; padding: 32px 24px 64px; }
  h1 { font-size: 26px; margin: 0 0 4px; }
  h2 { font-size: 19px; margin: 36px 0 12px; padding-bottom: 6px; border-bottom: 1px solid var(--line); }
  .meta { color: var(--muted); margin: 0 0 12px; }
  code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 13px; }
  .chip { display: inline-block; background: var(--soft); border: 1px solid var(--line); border-radius: 6px;
          padding: 1px 8px; margin: 2px 4px 2px 0; }
  .states { display: flex; flex-wrap: wrap; gap: 10px; margin: 8px 0; }
  .state { border-radius: 8px; padding: 8px 14px; background: var(--soft); border: 1px solid var(--line);
           min-width: 96px; }
  .state b { display: block; font-size: 22px; }
  .state span { color: var(--muted); font-size: 13px; }
  .state.completed { background: #dafbe1; border-color: #aceebb; }
  .state.diverged { background: #fff8c5; border-color: #eed888; }
  .state.failed, .state.timeout, .state.cancelled, .state.unknown { background: #ffebe9; border-color: #ffcecb; }
  .state.running, .state.submitted { background: #ddf4ff; border-color: #b6e3ff; }
  .scroll { overflow-x: auto; border: 1px solid var(--line); border-radius: 8px; }
  table { border-collapse: collapse; width: 100%; font-size: 13.5px; }
  th, td { padding: 6px 10px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top;
           white-space: nowrap; }
  th { background: var(--soft); font-weight: 600; position: sticky; top: 0; }
  td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
  tbody tr:nth-child(even) { background: #fbfcfd; }
  tbody tr:hover { background: #f0f6ff; }
  tr.best td { background: #eef9f0; }
  tr.best td.label { font-weight: 600; }
  .q { display: block; color: var(--muted); font-size: 11.5px; }
  .bad { color: #cf222e; font-weight: 600; }
  .warn { color: #9a6700; font-weight: 600; }
  figure { margin: 0; }
  figure img { width: 100%; height: auto; border: 1px solid var(--line); border-radius: 8px; }
  figcaption, .note { color: var(--muted); font-size: 13px; margin-top: 6px; }
  footer { margin-top: 40px; color: var(--muted); font-size: 12.5px; }
</style>
</head>
<body>
<main>
<h1>{{ name }}</h1>
<p class="meta">
  sweep <code>{{ sweep_id }}</code>
  {% if created %} · created {{ created }}{% endif %}
  {% if launches %} · launched {{ launches }}×{% endif %}
  · {{ total }} runs in {{ rows|length }} settings
</p>
<p>
  {% for override in overrides %}<code class="chip">{{ override }}</code>{% else %}
  <span class="meta">no overrides</span>{% endfor %}
</p>

<h2>Runs</h2>
<div class="states">
  {% for state, count in states %}
  <div class="state {{ state }}"><b>{{ count }}</b><span>{{ state }}</span></div>
  {% endfor %}
</div>

<h2>Summary</h2>
<p class="note">Median over seeds of each setting, with the {{ low }}–{{ high }} range below it.
  <i>final</i>: value at a run's last evaluation point; <i>best</i>: its best over all evaluation points.
  Statistics use completed and diverged runs (<i>n</i>); a diverged value counts as the worst.
  ★ marks the best setting of each problem by median final validation metric.</p>
<div class="scroll">
<table>
  <thead><tr>
    <th></th><th>problem</th><th>setting</th><th class="num">runs</th><th class="num">completed</th>
    <th class="num">diverged</th><th class="num">failed</th><th class="num">other</th><th class="num">n</th>
    <th>metric</th><th class="num">final valid</th><th class="num">best valid</th>
    <th class="num">final test</th><th class="num">best test</th>
  </tr></thead>
  <tbody>
  {% for item in rows %}
  {% set row = item.row %}
  <tr{% if item.selected %} class="best"{% endif %} title="{{ row.setting_id }}">
    <td>{% if item.selected %}★{% endif %}</td>
    <td>{{ row.problem }}</td>
    <td class="label">{{ row.label }}</td>
    <td class="num">{{ row.runs|num }}</td>
    <td class="num">{{ row.completed|num }}</td>
    <td class="num{% if row.diverged %} warn{% endif %}">{{ row.diverged|num }}</td>
    <td class="num{% if row.failed %} bad{% endif %}">{{ row.failed|num }}</td>
    <td class="num">{{ row.other|num }}</td>
    <td class="num">{{ row.n|num }}</td>
    <td>{{ row.metric }}</td>
    {% for median, lower, upper in item.outcomes %}
    <td class="num">{{ median|num }}<span class="q">[{{ lower|num }}, {{ upper|num }}]</span></td>
    {% endfor %}
  </tr>
  {% endfor %}
  </tbody>
</table>
</div>

<h2>Curves</h2>
<figure>
  <img alt="train loss, valid and test metric and learning rate per epoch, one column per problem"
       src="data:image/png;base64,{{ image }}">
  <figcaption>Median over seeds (line) and {{ low }}–{{ high }} band per setting; x: epoch.</figcaption>
</figure>

{% if attention %}
<h2>Runs needing attention</h2>
<div class="scroll">
<table>
  <thead><tr><th>state</th><th>setting</th><th class="num">seed</th><th>run</th><th>error</th></tr></thead>
  <tbody>
  {% for run in attention %}
  <tr>
    <td class="{{ 'warn' if run.state == 'diverged' else 'bad' }}">{{ run.state }}</td>
    <td>{{ run.label }}</td><td class="num">{{ run.seed|num }}</td>
    <td><code>{{ run.run_id }}</code></td><td class="mono">{{ run.error }}</td>
  </tr>
  {% endfor %}
  </tbody>
</table>
</div>
{% if attention_more %}<p class="note">… and {{ attention_more }} more.</p>{% endif %}
{% endif %}

<footer>Generated by optbench on {{ generated }} · quantiles {{ quantiles }}.</footer>
</main>
</body>
</html>
"""
