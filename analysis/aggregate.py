"""Collected runs → every table and figure of the results plane, written to one folder.

:func:`aggregate_data` is the pipeline (statistics over seeds, DeepOBS's
selection, speed, AlgoPerf's time to target and performance profiles, the
tuning budgets, plots, and the curvature measurements where runs have some);
:func:`aggregate_sweeps` feeds it one or more sweeps from disk and writes into
``<sweep>/aggregate/`` (one sweep) or a folder of the caller's choice.
:func:`load_aggregate` reads a written folder back for the report.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis import algoperf
from analysis.budgets import has_tuning, tuning_budgets
from analysis.collect import (
    SweepData,
    collect_sweep,
    combine,
    hyperparameter_columns,
    input_fingerprint,
    merge_fingerprints,
)
from analysis.halving_rungs import rungs_table
from analysis.labels import setting_labels, settings_table, varying_columns
from analysis.measurement_plots import draw_measurement_figures
from analysis.measurements import measurement_summary, measurement_table
from analysis.plots import plot_boxes, plot_budgets, plot_curves, plot_profiles, plot_sensitivity
from analysis.selection import check_criterion, robustness, select_best
from analysis.selection import scores as scores_of
from analysis.speed import speed_table
from analysis.stats import DEFAULT_QUANTILES, curve_stats, validate_quantiles
from analysis.tables import (
    primary_metrics,
    summary_table,
    write_csv,
    write_latex,
    write_markdown,
    write_parquet,
)
from jobs.run_folder import AGGREGATE_DIR, read_json, write_json

log = logging.getLogger(__name__)

PLOTS_DIR = "plots"
META_FILE = "aggregate.json"
#: Problems drawn side by side in one curves figure; with more, each problem gets figures of its own.
CURVE_PROBLEMS = 3


@dataclass(frozen=True)
class Target:
    """Reach ``value`` of ``metric`` (e.g. ``valid_accuracy``) on ``problem`` (every problem when ``None``)."""

    metric: str
    value: float
    problem: str | None = None


@dataclass(frozen=True)
class Options:
    """What the user chooses about an aggregate; recorded in ``aggregate.json``."""

    quantiles: tuple[float, ...] = DEFAULT_QUANTILES
    criterion: str = "final_valid"
    targets: tuple[Target, ...] = ()
    #: Per optimizer name, its default hyperparameters (``{"sgd": {"lr": 0.01, "momentum": 0.0}}``): the
    #: tuning budgets' one-shot trial (:mod:`analysis.budgets`). The command line fills it from the configs.
    defaults: Mapping[str, Mapping[str, Any]] = field(default_factory=dict, hash=False)

    def checked(self) -> Options:
        check_criterion(self.criterion)
        return Options(validate_quantiles(self.quantiles), self.criterion, tuple(self.targets),
                       {str(k): dict(v) for k, v in self.defaults.items()})

    def as_dict(self) -> dict[str, Any]:
        return {"quantiles": list(self.quantiles), "criterion": self.criterion,
                "targets": [vars(t) for t in self.targets],
                "defaults": {str(k): dict(v) for k, v in self.defaults.items()}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Options:
        return cls(tuple(data.get("quantiles", DEFAULT_QUANTILES)), data.get("criterion", "final_valid"),
                   tuple(Target(**t) for t in data.get("targets", ())),
                   {str(k): dict(v) for k, v in (data.get("defaults") or {}).items()})


@dataclass
class Aggregate:
    """Everything :func:`aggregate_data` computed, and where it wrote it."""

    info: dict[str, Any]
    runs: pd.DataFrame
    curves: pd.DataFrame
    summary: pd.DataFrame
    best: pd.DataFrame
    robustness: pd.DataFrame
    speed: pd.DataFrame
    targets: pd.DataFrame | None
    profiles: pd.DataFrame | None
    scores: pd.DataFrame | None
    primary: dict[str, str]
    figures: dict[str, Path]
    out_dir: Path
    options: Options = field(default_factory=Options)
    files: list[Path] = field(default_factory=list)
    #: The curvature measurements per run and their summary over seeds; None when no run has any.
    measurements: pd.DataFrame | None = None
    measurement_summary: pd.DataFrame | None = None
    #: The tuning budgets (:mod:`analysis.budgets`): expected best of k per optimizer, and the four budgets.
    budgets: pd.DataFrame | None = None
    budget_summary: pd.DataFrame | None = None
    #: Successive halving's decided rungs (:mod:`analysis.halving_rungs`); None for other sweeps.
    rungs: pd.DataFrame | None = None

    @property
    def quantiles(self) -> tuple[float, ...]:
        return self.options.quantiles


def aggregate_sweep(sweep_dir: Path, runs_dir: Path, options: Options | None = None) -> Aggregate:
    """Aggregate one sweep into ``<sweep_dir>/aggregate/``."""
    return aggregate_sweeps([sweep_dir], runs_dir, options=options)


def aggregate_sweeps(
    sweep_dirs: Sequence[Path],
    runs_dir: Path,
    out_dir: Path | None = None,
    options: Options | None = None,
    extra: Sequence[SweepData] = (),
) -> Aggregate:
    """Aggregate the sweeps (plus ``extra`` data, e.g. imported DeepOBS baselines) into ``out_dir``.

    ``out_dir`` defaults to ``<sweep>/aggregate/`` for a single sweep.
    """
    if out_dir is None:
        if len(sweep_dirs) != 1:
            raise ValueError("aggregating several sweeps needs an output folder.")
        out_dir = Path(sweep_dirs[0]) / AGGREGATE_DIR
    options = (options or Options()).checked()
    data = combine([*(collect_sweep(Path(d), Path(runs_dir)) for d in sweep_dirs), *extra])
    return aggregate_data(data, Path(out_dir), options)


def aggregate_data(data: SweepData, out: Path, options: Options) -> Aggregate:
    """Compute every table and figure of ``data`` and write them into ``out``.

    ``aggregate.json`` is removed first and written last, so a folder without it
    is an interrupted aggregate.
    """
    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    (out / META_FILE).unlink(missing_ok=True)
    quantiles = options.quantiles
    labels = setting_labels(data.runs)
    runs = data.runs.copy()
    runs.insert(runs.columns.get_loc("optimizer") + 1, "label", runs["setting_id"].map(labels).astype(object))
    primary = primary_metrics(data.runs, data.metrics)
    summary = with_hyperparameters(summary_table(data.runs, data.metrics, labels, quantiles), data.runs)
    curves = curves_table(data.metrics, data.runs, labels, quantiles)
    best = select_best(summary, options.criterion)
    grid = robustness(summary, options.criterion)
    speed = speed_table(data.runs, data.metrics)
    targets, profiles, scores, studies = time_to_target(data, summary, labels, primary, options.targets)

    tables = {"summary": summary, "best": best, "robustness": grid, "speed": speed, "targets": targets,
              "scores": scores, "studies": studies}
    written = {name: table for name, table in tables.items() if table is not None}
    files = [write_csv(runs, out / "runs.csv"), write_parquet(runs, out / "runs.parquet"),
             write_parquet(curves, out / "curves.parquet"), write_csv(curves, out / "curves.csv")]
    for name, table in written.items():
        files += write_table(table, out / name)
    if profiles is not None:
        written["profiles"] = profiles
        files += [write_csv(profiles, out / "profiles.csv"), write_parquet(profiles, out / "profiles.parquet")]
    figures = draw_figures(curves, summary, best, profiles, scores, primary, quantiles, out / PLOTS_DIR,
                           title=str(data.info.get("name") or data.info.get("sweep_id", "")),
                           criterion=options.criterion)
    rungs = rungs_table(data.info.get("sweeps") or [data.info], labels)
    if len(rungs):
        written["rungs"] = rungs
        files += write_table(rungs, out / "rungs")
    budgets, budget_summary = tuning_budgets(data.runs, data.metrics, summary, options.criterion, options.defaults)
    written.update(budgets=budgets, budget_summary=budget_summary)
    files += [write_csv(budgets, out / "budgets.csv"), write_parquet(budgets, out / "budgets.parquet")]
    files += write_table(budget_summary, out / "budget_summary")
    if has_tuning(budget_summary):
        figures["budgets"] = plot_budgets(budgets, budget_summary, out / PLOTS_DIR / "budgets", options.criterion)
    measured = measured_summary = None
    if len(data.measurements):
        measured, measured_summary = measurement_table(data.measurements, runs), measurement_summary(
            data.measurements, runs)
        written.update(measurements=measured, measurement_summary=measured_summary)
        files += [write_csv(measured, out / "measurements.csv"), write_parquet(measured, out / "measurements.parquet")]
        files += write_table(measured_summary, out / "measurement_summary")
        figures.update(draw_measurement_figures(data.measurements, runs, measured_summary, out / PLOTS_DIR))
    files += [p for png in figures.values() for p in (png, png.with_suffix(".svg"))]
    write_json(out / META_FILE, {
        **options.as_dict(),
        "info": data.info,
        "fingerprint": data.fingerprint,
        "runs": len(runs),
        "settings": len(summary),
        "evaluation_points": len(data.metrics),
        "primary": primary,
        "tables": ["runs", "curves", *written],
        "figures": {name: str(path.relative_to(out)) for name, path in figures.items()},
        "created": time.time(),
    })
    files.append(out / META_FILE)
    log.info("aggregated %d runs into %d settings in %.2f s", len(runs), len(summary), time.perf_counter() - started)
    return Aggregate(info=data.info, runs=runs, curves=curves, summary=summary, best=best, robustness=grid,
                     speed=speed, targets=targets, profiles=profiles, scores=scores, primary=primary,
                     figures=figures, out_dir=out, options=options, files=files, measurements=measured,
                     measurement_summary=measured_summary, budgets=budgets, budget_summary=budget_summary,
                     rungs=rungs if len(rungs) else None)


def with_hyperparameters(summary: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """The summary with each setting's hyperparameters (those that vary in the data) appended."""
    settings = settings_table(runs)
    columns = [c for c in varying_columns(settings) if c in hyperparameter_columns(runs)]
    values = settings.reindex(summary["setting_id"])[columns].reset_index(drop=True)
    return pd.concat([summary.reset_index(drop=True), values], axis=1)


def curves_table(
    metrics: pd.DataFrame, runs: pd.DataFrame, labels: pd.Series, quantiles: Sequence[float] = DEFAULT_QUANTILES
) -> pd.DataFrame:
    """:func:`analysis.stats.curve_stats` with each setting's problem, optimizer and label in front."""
    curves = curve_stats(metrics, quantiles)
    settings = settings_table(runs)
    ids = curves["setting_id"]
    front = pd.DataFrame({
        "setting_id": ids.to_numpy(dtype=object),
        "problem": ids.map(settings["problem"]).to_numpy(dtype=object),
        "optimizer": ids.map(settings["optimizer"]).to_numpy(dtype=object),
        "label": ids.map(labels).to_numpy(dtype=object),
    })
    return pd.concat([front, curves.drop(columns="setting_id").reset_index(drop=True)], axis=1)


def resolve_targets(
    targets: Sequence[Target], summary: pd.DataFrame, primary: Mapping[str, str]
) -> tuple[dict[str, float], dict[str, str]]:
    """Per problem, the target value and metric: the user's (per problem before global), else the default.

    The default metric is the problem's primary validation metric; the default value
    is :func:`analysis.algoperf.default_targets`'s.
    """
    metric = algoperf.target_metrics(primary)
    value: dict[str, float] = {}
    for target in sorted(targets, key=lambda t: t.problem is not None):  # per-problem targets win
        for problem in ([target.problem] if target.problem else list(primary)):
            metric[problem], value[problem] = target.metric, target.value
    if len(value) < len(primary):
        defaults = algoperf.default_targets(summary, {p: m for p, m in metric.items() if p not in value})
        for problem in primary:
            if problem not in value and problem in defaults:
                value[problem] = defaults[problem]
    return value, {p: metric[p] for p in value}


def time_to_target(
    data: SweepData, summary: pd.DataFrame, labels: pd.Series, primary: Mapping[str, str],
    targets: Sequence[Target],
) -> tuple[pd.DataFrame | None, pd.DataFrame | None, pd.DataFrame | None, pd.DataFrame | None]:
    """AlgoPerf's tables: time to target per setting, profiles and scores over problems, and the studies.

    The profiles follow AlgoPerf's rules (:mod:`analysis.algoperf`): per study the trial that
    reached the target at the earliest evaluation, the median over studies per problem.
    """
    values, metrics = resolve_targets(targets, summary, primary)
    if not values:
        return None, None, None, None
    per_setting = algoperf.targets_table(data.runs, data.metrics, values, metrics, labels)
    studies = algoperf.study_table(data.runs, data.metrics, values, metrics, labels)
    times = algoperf.study_times(studies)
    if times["submission"].nunique() < 2:
        return per_setting, None, None, studies
    profiles, scores = algoperf.performance_profiles(times)
    return per_setting, profiles, scores, studies


def write_table(table: pd.DataFrame, stem: Path) -> list[Path]:
    """``stem.{csv,parquet,md,tex}``."""
    return [write_csv(table, stem.with_suffix(".csv")), write_parquet(table, stem.with_suffix(".parquet")),
            write_markdown(table, stem.with_suffix(".md")), write_latex(table, stem.with_suffix(".tex"))]


def draw_figures(
    curves: pd.DataFrame, summary: pd.DataFrame, best: pd.DataFrame, profiles: pd.DataFrame | None,
    scores: pd.DataFrame | None, primary: Mapping[str, str], quantiles: Sequence[float], folder: Path, title: str,
    criterion: str = "final_valid",
) -> dict[str, Path]:
    """Every figure as PNG and SVG in ``folder``; returns figure name → PNG path.

    The all-settings curves draw each problem's best settings first (a problem with
    more settings than one panel can show shows its best ones). With more than
    :data:`CURVE_PROBLEMS` problems the curves figures are drawn per problem, as
    ``best_curves/<problem>`` and ``curves/<problem>`` (files ``best_curves/<problem>.png``).
    """
    folder.mkdir(parents=True, exist_ok=True)
    ranked = np.argsort(scores_of(summary, criterion), kind="stable")
    order = list(summary["setting_id"].to_numpy()[ranked])
    chosen = list(best["setting_id"])
    problems = list(dict.fromkeys(curves["problem"]))
    pages = [(f"/{p}", curves[curves["problem"] == p], f"{title}: {p}") for p in problems] \
        if len(problems) > CURVE_PROBLEMS else [("", curves, title)]
    figures = {}
    for suffix, part, heading in pages:
        stem = "/" + re.sub(r"[^\w.-]", "_", suffix[1:]) if suffix else ""  # a file name for any problem name
        figures[f"best_curves{suffix}"] = plot_curves(
            part[part["setting_id"].isin(set(chosen))], folder / f"best_curves{stem}", primary, quantiles,
            order=chosen, title=f"{heading}: best setting per optimizer")
        figures[f"curves{suffix}"] = plot_curves(part, folder / f"curves{stem}", primary, quantiles, order=order,
                                                 title=heading)
    if summary.groupby(["problem", "optimizer"]).size().gt(1).any():  # a grid: something to be sensitive to
        figures |= {
            "sensitivity": plot_sensitivity(summary, folder / "sensitivity", quantiles),
            "boxes": plot_boxes(summary, folder / "boxes"),
        }
    if profiles is not None and scores is not None:
        figures["profiles"] = plot_profiles(profiles, scores, folder / "profiles")
    return figures


def load_aggregate(out: Path) -> Aggregate:
    """An aggregate folder written by :func:`aggregate_data`, read back.

    Only the tables ``aggregate.json`` lists are read: a table an earlier aggregate
    wrote (AlgoPerf's, before its targets went away) is not this aggregate's.
    """
    meta = read_json(out / META_FILE)
    written = set(meta.get("tables", ()))

    def table(name: str) -> pd.DataFrame | None:
        return pd.read_parquet(out / f"{name}.parquet") if name in written else None

    return Aggregate(
        info=meta.get("info", {}), runs=table("runs"), curves=table("curves"), summary=table("summary"),
        best=table("best"), robustness=table("robustness"), speed=table("speed"), targets=table("targets"),
        profiles=table("profiles"), scores=table("scores"), primary=meta.get("primary", {}),
        figures={k: out / v for k, v in meta.get("figures", {}).items()}, out_dir=out,
        options=Options.from_dict(meta), measurements=table("measurements"),
        measurement_summary=table("measurement_summary"), budgets=table("budgets"),
        budget_summary=table("budget_summary"),
        rungs=table("rungs"),
    )


def current_aggregate(sweep_dirs: Sequence[Path], runs_dir: Path, out: Path,
                      extra: Sequence[SweepData] = ()) -> Aggregate:
    """The aggregate in ``out``: read back when fresh, else computed again with the options chosen last.

    ``extra`` (imported data) always aggregates again.
    """
    if not extra and fresh_aggregate(sweep_dirs, runs_dir, out) is not None:
        return load_aggregate(out)
    log.info("aggregate in %s is missing or stale; aggregating", out)
    return aggregate_sweeps(sweep_dirs, runs_dir, out, _previous_options(out), extra)


def _previous_options(out: Path) -> Options:
    """The options of the last aggregate, so a refresh keeps what the user chose."""
    try:
        return Options.from_dict(read_json(out / META_FILE)).checked()
    except (FileNotFoundError, KeyError, TypeError, ValueError):
        return Options()


def fresh_aggregate(sweep_dirs: Sequence[Path], runs_dir: Path, out: Path) -> dict[str, Any] | None:
    """The metadata of ``out`` if it is complete and no input changed since it was written."""
    try:
        meta = read_json(out / META_FILE)
    except (FileNotFoundError, ValueError):
        return None
    figures = [out / p for p in meta.get("figures", {}).values()]
    tables = [out / f"{name}.parquet" for name in meta.get("tables", ())]
    if not tables or not all(path.is_file() for path in [*figures, *tables]):
        return None
    fingerprint = merge_fingerprints([input_fingerprint(Path(d), Path(runs_dir)) for d in sweep_dirs])
    return meta if meta.get("fingerprint") == fingerprint else None
