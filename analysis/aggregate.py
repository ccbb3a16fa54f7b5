"""``aggregate_sweep``: collect a sweep, reduce seeds, write tables and the figure to ``aggregate/``."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from analysis.collect import collect_sweep, input_fingerprint
from analysis.labels import setting_labels, settings_table
from analysis.plots import plot_curves
from analysis.stats import DEFAULT_QUANTILES, curve_stats, validate_quantiles
from analysis.tables import primary_metrics, summary_table, write_csv, write_markdown, write_parquet
from jobs.run_folder import read_json, write_json

log = logging.getLogger(__name__)

AGGREGATE_DIR = "aggregate"
META_FILE = "aggregate.json"
OUTPUTS = ("runs.csv", "curves.parquet", "curves.csv", "summary.csv", "summary.parquet", "summary.md", "curves.png")


@dataclass
class Aggregate:
    """What :func:`aggregate_sweep` computed and the files it wrote."""

    summary: pd.DataFrame
    curves: pd.DataFrame
    runs: pd.DataFrame
    files: list[Path] = field(default_factory=list)


def aggregate_sweep(
    sweep_dir: Path, runs_dir: Path, quantiles: tuple[float, ...] = DEFAULT_QUANTILES
) -> Aggregate:
    """Aggregate the sweep in ``sweep_dir`` whose run folders live in ``runs_dir``.

    Writes ``runs.csv``, ``curves.{parquet,csv}``, ``summary.{csv,parquet,md}``,
    ``curves.png`` and ``aggregate.json`` (quantiles and an input fingerprint) to
    ``<sweep_dir>/aggregate/``.
    """
    started = time.perf_counter()
    quantiles = validate_quantiles(quantiles)
    sweep_dir, runs_dir = Path(sweep_dir), Path(runs_dir)
    out = sweep_dir / AGGREGATE_DIR
    out.mkdir(parents=True, exist_ok=True)
    (out / META_FILE).unlink(missing_ok=True)  # marks the outputs incomplete until the end

    data = collect_sweep(sweep_dir, runs_dir)
    labels = setting_labels(data.runs)
    runs = data.runs.copy()
    runs.insert(runs.columns.get_loc("optimizer") + 1, "label", runs["setting_id"].map(labels).astype(object))
    summary = summary_table(data.runs, data.metrics, labels, quantiles)
    curves = curves_table(data.metrics, data.runs, labels, quantiles)
    primary = primary_metrics(data.runs, data.metrics)

    files = [
        write_csv(runs, out / "runs.csv"),
        write_parquet(curves, out / "curves.parquet"),
        write_csv(curves, out / "curves.csv"),
        write_csv(summary, out / "summary.csv"),
        write_parquet(summary, out / "summary.parquet"),
        write_markdown(summary, out / "summary.md"),
        plot_curves(curves, out / "curves.png", primary, quantiles, order=list(summary["setting_id"]),
                    title=str(data.info.get("name") or sweep_dir.name)),
    ]
    write_json(out / META_FILE, {
        "quantiles": list(quantiles),
        "fingerprint": data.fingerprint,
        "runs": len(runs),
        "settings": len(summary),
        "evaluation_points": len(data.metrics),
        "primary": primary,
        "created": time.time(),
    })
    files.append(out / META_FILE)
    log.info("aggregated %d runs into %d settings in %.2f s", len(runs), len(summary), time.perf_counter() - started)
    return Aggregate(summary=summary, curves=curves, runs=runs, files=files)


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


def fresh_aggregate(sweep_dir: Path, runs_dir: Path) -> dict[str, Any] | None:
    """The metadata of ``aggregate/`` if all its outputs exist and its inputs have not changed since."""
    out = Path(sweep_dir) / AGGREGATE_DIR
    try:
        meta = read_json(out / META_FILE)
    except (FileNotFoundError, ValueError):
        return None
    if not all((out / name).is_file() for name in OUTPUTS):
        return None
    if meta.get("fingerprint") != input_fingerprint(Path(sweep_dir), Path(runs_dir)):
        return None
    return meta
