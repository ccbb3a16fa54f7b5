"""The sweep's self-contained HTML report.

One file with inline CSS, the figures as ``data:`` URIs and a ten-line inline
script that sorts a table by the clicked column, so it can be mailed, attached
or opened offline. Sections: header; *at a glance* (per problem each optimizer's
tuned result, interval and rank, the user's optimizers highlighted:
:mod:`analysis.standings`); run states, best settings (DeepOBS's selection),
relative speed, tuning robustness (when an optimizer has a grid of two settings
or more), tuning budgets (when an optimizer has two trials or more), successive
halving's rungs (for such sweeps), curves (one folded page per problem beyond
:data:`analysis.aggregate.CURVE_PROBLEMS` problems), curvature measurements (when
runs have some), AlgoPerf (when there are targets), the full summary and the runs
needing attention. A section with nothing to say is left out, or says why in one
line; tables longer than :data:`FOLD_ABOVE` rows start folded. Diverged and failed
counts appear in every section that has them. Rendered with a Jinja2 template
with autoescaping, ``analysis/templates/report.html.j2``.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
import math
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd

from analysis.aggregate import current_aggregate
from analysis.budgets import has_tuning
from analysis.collect import SweepData
from analysis.halving_rungs import RUNG_COLUMNS
from analysis.measurements import HEADLINES, latest_per_setting
from analysis.selection import ROBUSTNESS_COLUMNS
from analysis.speed import COLUMNS as SPEED_COLUMNS
from analysis.standings import headline, standings, user_optimizers
from analysis.stats import DEFAULT_QUANTILES, quantile_name
from analysis.tables import OUTCOMES
from jobs.run_folder import AGGREGATE_DIR, REPORT_FILE, STATES, atomic_write_text

log = logging.getLogger(__name__)

#: The Jinja2 template, package data of ``analysis``.
TEMPLATE_RESOURCE = "templates/report.html.j2"
#: Runs listed individually under "needs attention" (the rest are counted).
ATTENTION_LIMIT = 200
ATTENTION_STATES = ("failed", "diverged", "timeout", "cancelled", "unknown")
#: States that always get a tile, even at zero: a divergence or failure is never hidden.
ALWAYS_SHOWN = ("completed", "diverged", "failed")
#: Tables with more rows than this start folded (a sweep of 1,000 settings stays readable).
FOLD_ABOVE = 60
#: A marker of the figures (:mod:`analysis.style`) as text, for the tables of the first screen.
GLYPHS = {"o": "●", "s": "■", "^": "▲", "D": "◆", "*": "★", "P": "✚", "X": "✖"}
#: Figure name → (alt text, caption); {low}/{high} are the band's quantiles.
FIGURES = {
    "best_curves": ("train loss, valid and test metric and learning rate per epoch of the best setting per "
                    "problem and optimizer",
                    "Best setting per problem and optimizer (DeepOBS selection). Median over seeds (line) and "
                    "{low}–{high} band; rows: train loss, valid metric, test metric, learning rate; x: epoch."),
    "curves": ("train loss, valid and test metric and learning rate per epoch of every setting",
               "Every setting: median over seeds and {low}–{high} band. A column with more settings than fit "
               "draws the first ones and says how many it shows."),
    "sensitivity": ("final validation metric against the most varying hyperparameter per optimizer",
                    "Median final validation metric against each optimizer's most varying hyperparameter "
                    "(learning rate where it varies), {low}–{high} band; at each value the best setting, other "
                    "settings as dots. ✕ at the worst edge: diverged settings."),
    "boxes": ("box plots of the per-setting final validation metric per optimizer",
              "Spread of the per-setting median final validation metric over each optimizer's grid; the tick "
              "labels count the settings without a finite result, which the boxes leave out."),
    "budgets": ("expected best validation metric against the number of tuning trials k per optimizer",
                "Expected best validation metric of k trials drawn with replacement from each optimizer's trials "
                "(Dodge et al. 2019), band ±1 std clipped at the best trial; dashed beyond the trials run; "
                "★ one-shot (defaults); grey lines: Crowded Valley's small (25) and large (50) budgets. Dotted: "
                "the median of the best of k where a diverged trial makes the expectation worst."),
    "profiles": ("performance profiles, share of problems reached within tau times the fastest time",
                 "Performance profiles ρ(τ): the share of problems a submission reaches the target on within "
                 "τ times the fastest submission's time; the legend gives each score."),
    "measure_spectrum": ("top Hessian eigenvalues per epoch of every measured setting",
                         "Top Hessian eigenvalues per measured epoch, median over seeds; colour: setting, line "
                         "style: rank (λ1 has the largest magnitude). A symmetric-log axis where some are negative."),
    "measure_taylor": ("Taylor remainders against the distance h on log-log axes with reference slopes",
                       "Remainders of the constant, linear and quadratic Taylor models along a random direction "
                       "(median over seeds, last measured epoch); dotted: slopes 1, 2, 3 through the largest h; "
                       "dashed: the noise floor, below which rounding decides."),
    "measure_update_line": ("loss samples along the optimizer's update line with the fitted parabola",
                            "Loss along the update direction (lowest seed, last measured epoch): samples, the "
                            "least-squares parabola, its minimum (dashed) and the optimizer's step length (dotted)."),
    "measure_surface": ("contour plots of the loss around the parameters along two directions",
                        "Loss on a grid around the parameters (+) along two directions (lowest seed, last "
                        "measured epoch): the top two Hessian eigenvectors or random filter-normalised ones."),
}
#: Measurement → (heading, note, figure) of its part of the curvature section.
MEASUREMENT_SECTIONS = {
    "hessian_spectrum": ("Hessian spectrum", "Top eigenvalues of the loss's Hessian on the measurement batch by power "
                         "iteration with deflation: largest magnitude first, each with its sign.", "measure_spectrum"),
    "taylor": ("Taylor test", "Log-log slopes of the Taylor remainders against h; 1, 2 and 3 when gradient and "
               "Hessian are right. Fitted above the noise floor only: — where fewer than two remainders are above "
               "it (float32 at small h).", "measure_taylor"),
    "update_line": ("Loss along the update line", "One optimizer step on the measurement batch, undone; along its "
                    "direction a least-squares parabola: its minimum, the step length ‖d‖, the angle between the "
                    "step and the gradient at the minimum (90° at a minimum along the line) and the fit's R².",
                    "measure_update_line"),
    "loss_surface": ("Loss surface", "Loss at the parameters and the lowest and highest loss on the grid (with "
                     "the eigenvalues of its directions when they are eigenvectors).", "measure_surface"),
}


def write_report(
    sweep_dirs: Sequence[Path], runs_dir: Path, out: Path | None = None, path: Path | None = None,
    extra: Sequence[SweepData] = (), highlight: Sequence[str] = (),
) -> Path:
    """Write the report of the sweeps, aggregating into ``out`` first when it is missing or stale.

    ``out`` defaults to ``<sweep>/aggregate`` and ``path`` to ``<sweep>/report.html`` for one
    sweep; with several, both must be given. ``extra`` (imported data) always re-aggregates.
    ``highlight`` names optimizers to show as the user's besides those that are not optbench's own.
    """
    sweep_dirs = [Path(d) for d in sweep_dirs]
    if out is None or path is None:
        if len(sweep_dirs) != 1:
            raise ValueError("the report of several sweeps needs an output folder and a path.")
        out = out or sweep_dirs[0] / AGGREGATE_DIR
        path = path or sweep_dirs[0] / REPORT_FILE
    html = render_report(current_aggregate(sweep_dirs, Path(runs_dir), Path(out), extra), highlight)
    atomic_write_text(Path(path), html)
    log.info("wrote %s", path)
    return Path(path)


# ----------------------------------------------------------------------------- rendering


def render_report(aggregate: Any, highlight: Sequence[str] = ()) -> str:
    """The report's HTML text for an object with the attributes of :class:`analysis.aggregate.Aggregate`.

    A missing attribute, ``None`` or an empty table leaves its section out or says
    in one line why there is nothing; ``highlight``: see :func:`write_report`.
    """
    info = dict(getattr(aggregate, "info", None) or {})
    runs, summary = _frame(aggregate, "runs"), _frame(aggregate, "summary")
    quantiles = tuple(getattr(aggregate, "quantiles", None) or DEFAULT_QUANTILES)
    primary = dict(getattr(aggregate, "primary", None) or {})
    low, high = quantile_name(min(quantiles)), quantile_name(max(quantiles))
    best = _frame(aggregate, "best")
    targets, profiles, scores = (_frame(aggregate, name) for name in ("targets", "profiles", "scores"))
    states = runs["state"].astype(str) if "state" in runs.columns else pd.Series(dtype=str)
    counts = states.value_counts()
    attention = runs[states.isin(ATTENTION_STATES)] if len(runs) else runs
    figures = _figures(getattr(aggregate, "figures", None) or {}, low, high)
    optimizers = [*_frame(aggregate, "summary").get("optimizer", ()), *runs.get("optimizer", ())]
    glance = standings(best, summary, user_optimizers(optimizers, highlight))
    robustness = _frame(aggregate, "robustness")
    options = getattr(aggregate, "options", None)
    template = _environment().from_string(_template_source())
    return template.render(
        title=", ".join(s["name"] for s in _sweeps(info)) or "optbench",
        sweeps=_sweeps(info),
        generated=_timestamp(dt.datetime.now(dt.UTC).timestamp()),
        total=len(runs),
        settings=len(summary),
        problems=summary["problem"].nunique() if "problem" in summary.columns else 0,
        optimizers=summary["optimizer"].nunique() if "optimizer" in summary.columns else 0,
        diverged=int(counts.get("diverged", 0)),
        failed=int(counts.get("failed", 0)),
        states=[(s, int(counts.get(s, 0))) for s in (*STATES, *sorted(set(counts.index) - set(STATES)))
                if s in counts or s in ALWAYS_SHOWN],
        glance=glance,
        yours=headline(glance),
        criterion=str(getattr(options, "criterion", "") or "final_valid").replace("_", " "),
        glyphs=GLYPHS,
        fold_above=FOLD_ABOVE,
        best=_best_rows(best, primary, low, high),
        speed=_speed_rows(_frame(aggregate, "speed")),
        robustness=_records(robustness, ROBUSTNESS_COLUMNS),
        grid=bool(len(robustness)) and bool((pd.to_numeric(robustness.get("settings"), errors="coerce") > 1).any()),
        curve_pages=_curve_pages(figures),
        tuning=has_tuning(_frame(aggregate, "budget_summary")),
        budgets=_records(_frame(aggregate, "budget_summary"), BUDGET_COLUMNS),
        rungs=_records(_frame(aggregate, "rungs"), RUNG_COLUMNS),
        targets=_records(targets, TARGET_COLUMNS),
        scores=_records(scores, ("submission", "score", "problems", "reached")),
        algoperf=bool(len(targets) or len(profiles) or len(scores)),
        summary=_summary_rows(summary, set(best.get("setting_id", ())), low, high),
        figures=figures,
        low=low,
        high=high,
        quantiles=", ".join(f"{q:g}" for q in quantiles),
        attention=_records(attention.head(ATTENTION_LIMIT), ("state", "problem", "label", "seed", "run_id", "error")),
        attention_more=max(len(attention) - ATTENTION_LIMIT, 0),
        measurements=_measurement_sections(_frame(aggregate, "measurement_summary")),
    )


BUDGET_COLUMNS = ("problem", "optimizer", "metric", "criterion", "budget", "k", "valid", "valid_std", "valid_median",
                  "test", "test_std", "trials", "runs", "epochs", "device_seconds", "pool", "floored", "extrapolated",
                  "setting_id", "label", "note")
TARGET_COLUMNS = ("problem", "optimizer", "setting_id", "label", "metric", "target", "n", "reached",
                  "steps_to_target_median", "time_to_target_median")


def _frame(aggregate: Any, name: str) -> pd.DataFrame:
    value = getattr(aggregate, name, None)
    return value if isinstance(value, pd.DataFrame) else pd.DataFrame()


def _records(frame: pd.DataFrame, columns: Sequence[str]) -> list[dict[str, Any]]:
    """Rows as dicts with every one of ``columns`` (missing ones None)."""
    frame = frame.reindex(columns=list(columns))
    return frame.astype(object).where(frame.notna(), None).to_dict("records")


def _sweeps(info: dict[str, Any]) -> list[dict[str, Any]]:
    """The sweeps shown in the header: ``info["sweeps"]`` (several merged) or ``info`` itself."""
    entries = info.get("sweeps") if isinstance(info.get("sweeps"), list) else [info]
    out = []
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        created = entry.get("created")
        out.append({
            "name": str(entry.get("name") or entry.get("sweep_id") or ""),
            "sweep_id": str(entry.get("sweep_id", "")),
            "overrides": [str(o) for o in entry.get("overrides") or []],
            "launches": entry.get("launches"),
            "created": _timestamp(created) if isinstance(created, int | float) else "",
        })
    return out


def _better(metric: Any) -> float:
    """-1 where larger is better (accuracy), else 1."""
    return -1.0 if metric == "accuracy" else 1.0


def _best_rows(best: pd.DataFrame, primary: dict[str, str], low: str, high: str) -> list[dict[str, Any]]:
    """The best table's rows; ``winner`` marks the best score of each problem."""
    columns = ("problem", "optimizer", "setting_id", "label", "criterion", "score", "settings", "runs", "n",
               "diverged", "failed", "metric", "final_test_median", f"final_test_{low}", f"final_test_{high}",
               "final_test_ci_low", "final_test_ci_high")
    rows = _records(best, columns)
    leaders: dict[str, tuple[float, int]] = {}
    for i, row in enumerate(rows):
        row["metric"] = row["metric"] or primary.get(str(row["problem"]), "loss")
        score = _number(row["score"])
        if math.isfinite(score):
            key = _better(row["metric"]) * score
            if row["problem"] not in leaders or key < leaders[row["problem"]][0]:
                leaders[row["problem"]] = (key, i)
        row["low"], row["high"] = row[f"final_test_{low}"], row[f"final_test_{high}"]
    winners = {i for _, i in leaders.values()}
    for i, row in enumerate(rows):
        row["winner"] = i in winners
    return rows


def _speed_rows(speed: pd.DataFrame) -> list[dict[str, Any]]:
    """The speed table's rows with ``bar``: seconds per epoch as a share of the slowest of the problem."""
    rows = _records(speed, SPEED_COLUMNS)
    slowest: dict[Any, float] = {}
    for row in rows:
        seconds = _number(row["seconds_per_epoch_median"])
        if math.isfinite(seconds):
            slowest[row["problem"]] = max(slowest.get(row["problem"], 0.0), seconds)
    for row in rows:
        seconds, top = _number(row["seconds_per_epoch_median"]), slowest.get(row["problem"], 0.0)
        row["bar"] = round(100 * seconds / top, 1) if math.isfinite(seconds) and top > 0 else 0
    return rows


def _summary_rows(summary: pd.DataFrame, best_ids: set, low: str, high: str) -> list[dict[str, Any]]:
    columns = ["setting_id", "problem", "label", "runs", "completed", "diverged", "failed", "stopped", "other", "n",
               "metric"]
    records = _records(summary, columns + [f"{o}_{s}" for o in OUTCOMES for s in ("median", low, high)])
    return [{
        "row": record,
        "selected": record["setting_id"] in best_ids,
        "outcomes": [(record[f"{o}_median"], record[f"{o}_{low}"], record[f"{o}_{high}"]) for o in OUTCOMES],
    } for record in records]


def _measurement_sections(summary: pd.DataFrame) -> list[dict[str, Any]]:
    """Per measurement present: heading, note, figure name, headline quantities and one row per setting."""
    sections = []
    present = set(summary["measurement"]) if "measurement" in summary.columns else set()
    for name in [*MEASUREMENT_SECTIONS, *sorted(present - set(MEASUREMENT_SECTIONS))]:
        if name not in present:
            continue
        latest = latest_per_setting(summary, name)
        quantities = [q for q in HEADLINES.get(name, ()) if q in latest.columns]
        columns = ["setting_id", "problem", "label", "epoch", "n",
                   *(f"{q}{suffix}" for q in quantities for suffix in ("", "_min", "_max"))]
        title, note, figure = MEASUREMENT_SECTIONS.get(name, (name, "", ""))
        sections.append({"name": name, "title": title, "note": note, "figure": figure, "quantities": quantities,
                         "rows": _records(latest, columns)})
    return sections


def _figures(paths: dict[str, Path], low: str, high: str) -> dict[str, dict[str, str]]:
    """Figure name → alt, caption and the PNG as base64, for the figures whose PNG exists."""
    out = {}
    for name, path in paths.items():
        try:
            data = Path(path).read_bytes()
        except OSError:
            log.warning("figure %s is missing at %s; the report goes without it", name, path)
            continue
        kind, _, problem = name.partition("/")
        alt, caption = FIGURES.get(kind, (name, ""))
        out[name] = {"alt": f"{problem}: {alt}" if problem else alt, "caption": caption.format(low=low, high=high),
                     "data": base64.b64encode(data).decode("ascii")}
    return out


def _curve_pages(figures: dict[str, dict[str, str]]) -> list[dict[str, Any]]:
    """The per-problem curves figures (``best_curves/<problem>``, ``curves/<problem>``) as one page per problem."""
    pages: dict[str, dict[str, Any]] = {}
    for name, figure in figures.items():
        kind, _, problem = name.partition("/")
        if problem and kind in ("best_curves", "curves"):
            pages.setdefault(problem, {"problem": problem, "figures": []})["figures"].append(
                {"name": name, "kind": kind, **figure})
    for page in pages.values():
        page["figures"].sort(key=lambda f: f["kind"] != "best_curves")
    return list(pages.values())


def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True,
                                     undefined=jinja2.StrictUndefined)
    environment.filters["num"] = format_value
    environment.filters["key"] = sort_key
    environment.filters["text"] = lambda value: "—" if value is None else str(value)
    return environment


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


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


def sort_key(value: Any) -> str:
    """A cell's ``data-v`` for the sort script: the number, ±Infinity, or empty (sorts last)."""
    number = _number(value)
    if math.isnan(number):
        return ""
    if math.isinf(number):
        return "Infinity" if number > 0 else "-Infinity"
    return repr(number)


def _timestamp(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _template_source() -> str:
    """The template's text, read as package data (so from a wheel too)."""
    return resources.files("analysis").joinpath(TEMPLATE_RESOURCE).read_text(encoding="utf-8")
