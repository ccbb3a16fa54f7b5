"""Training curves for the dashboard: per setting, the median and a quantile band over seeds at every epoch.

The runs are read by the aggregator's own path (:func:`analysis.collect.collect_sweep`,
:func:`analysis.stats.curve_stats`), so the page and the report agree. What was
read is kept until :func:`analysis.collect.input_fingerprint` says a file of the
sweep changed: a 1,000-run sweep is parsed once per change, not once per refresh.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis.collect import KEY_COLUMNS, SweepData, collect_sweep, input_fingerprint, metric_columns
from analysis.labels import setting_labels
from analysis.stats import curve_stats, quantile_name

#: The metric shown first: the first of these a sweep has, else its first metric.
PREFERRED_METRICS = ("train_loss", "valid_accuracy", "valid_loss", "test_accuracy")


@dataclass
class _Read:
    fingerprint: dict[str, int]
    data: SweepData
    labels: pd.Series
    metrics: list[str]
    stats: dict[tuple[str, tuple[float, ...]], pd.DataFrame] = field(default_factory=dict)


class CurveCache:
    """Curves of the sweeps of one results folder, read again only when their files change."""

    def __init__(self, runs_dir: Path):
        self.runs_dir = runs_dir
        self._reads: dict[Path, _Read] = {}
        self._lock = threading.Lock()

    def curves(self, sweep_dir: Path, metric: str | None, quantiles: Sequence[float]) -> dict[str, Any]:
        """``{metric, metrics, quantiles, settings: [{setting_id, label, epoch, median, low, high, n}]}``.

        ``low`` and ``high`` are the lowest and highest of ``quantiles``; values
        that are not finite (a diverged run's loss) are null. Raises ValueError
        for a metric the sweep does not have.
        """
        read = self._read(sweep_dir)
        if metric is None:
            metric = next((m for m in (*PREFERRED_METRICS, *read.metrics) if m in read.metrics), None)
        elif metric not in read.metrics:
            known = ", ".join(read.metrics) or "none yet"
            raise ValueError(f"Sweep {sweep_dir.name} has no metric {metric!r} (it has: {known}).")
        answer: dict[str, Any] = {"metric": metric, "metrics": read.metrics, "quantiles": list(quantiles),
                                  "settings": []}
        if metric is None:
            return answer
        stats = self._stats(read, metric, tuple(quantiles))
        low, high = (f"{metric}_{quantile_name(q)}" for q in (min(quantiles), max(quantiles)))
        for setting_id, rows in stats.groupby("setting_id", sort=False):
            answer["settings"].append({
                "setting_id": setting_id, "label": read.labels.get(setting_id, setting_id),
                "epoch": rows["epoch"].tolist(), "median": _finite(rows[f"{metric}_median"]),
                "low": _finite(rows[low]), "high": _finite(rows[high]), "n": rows[f"{metric}_n"].tolist(),
            })
        return answer

    def _read(self, sweep_dir: Path) -> _Read:
        fingerprint = input_fingerprint(sweep_dir, self.runs_dir)
        with self._lock:
            read = self._reads.get(sweep_dir)
        if read is not None and read.fingerprint == fingerprint:
            return read
        data = collect_sweep(sweep_dir, self.runs_dir)
        present = [m for m in metric_columns(data.metrics) if data.metrics[m].notna().any()]
        labels = setting_labels(data.runs, qualified=True) if len(data.runs) else pd.Series(dtype=object)
        read = _Read(data.fingerprint, data, labels, present)
        with self._lock:
            self._reads[sweep_dir] = read
        return read

    @staticmethod
    def _stats(read: _Read, metric: str, quantiles: tuple[float, ...]) -> pd.DataFrame:
        """:func:`curve_stats` of one metric, kept with what was read (a metric switch back costs nothing)."""
        key = (metric, quantiles)
        if key not in read.stats:
            stats = curve_stats(read.data.metrics[[*KEY_COLUMNS, metric]], quantiles)
            read.stats[key] = stats[stats[f"{metric}_n"] > 0]
        return read.stats[key]


def _finite(values: pd.Series) -> list[float | None]:
    array = values.to_numpy(dtype=np.float64)
    return [float(v) if np.isfinite(v) else None for v in array]
