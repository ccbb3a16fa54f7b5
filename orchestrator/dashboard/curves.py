"""Training curves for the dashboard: per setting, the median and a quantile band over seeds at every epoch.

The runs are read by the aggregator's own path (:func:`analysis.collect.collect_sweep`,
:func:`analysis.stats.curve_stats`), so the page and the report agree, and each
setting carries its optimizer's colour and marker from :mod:`analysis.style`, the
figures' own. What was read is kept until :func:`analysis.collect.input_fingerprint`
says a file of the sweep changed: a 1,000-run sweep is parsed once per change, not
once per refresh. Imported DeepOBS baselines (``optbench dashboard --deepobs DIR``)
are read once and served the same way, to be compared with a sweep.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis.collect import KEY_COLUMNS, SweepData, collect_sweep, input_fingerprint, metric_columns
from analysis.labels import setting_labels, setting_parameters, settings_table
from analysis.stats import curve_stats, quantile_name
from analysis.style import colour_map, legend_order, shades, style_of

#: The metric shown first: the first of these a sweep has, else its first metric.
PREFERRED_METRICS = ("train_loss", "valid_accuracy", "valid_loss", "test_accuracy")


@dataclass
class _Read:
    fingerprint: dict[str, int] | None
    data: SweepData
    labels: pd.Series
    metrics: list[str]
    settings: dict[str, dict[str, Any]]  # setting_id → problem, optimizer, params, colour, symbol, user
    stats: dict[tuple[str, tuple[float, ...]], pd.DataFrame] = field(default_factory=dict)


class CurveCache:
    """Curves of the sweeps of one results folder, read again only when their files change."""

    def __init__(self, runs_dir: Path, baselines: Mapping[str, SweepData] | None = None):
        """``baselines``: name → imported data, e.g. DeepOBS's published runs."""
        self.runs_dir = runs_dir
        self.baselines = dict(baselines or {})
        self._reads: dict[Path | str, _Read] = {}
        self._lock = threading.Lock()

    def curves(self, sweep_dir: Path | str, metric: str | None, quantiles: Sequence[float],
               setting: str | None = None) -> dict[str, Any]:
        """``{metric, metrics, quantiles, problems, optimizers, settings, runs}`` of a sweep folder or a baseline.

        ``settings``: ``[{setting_id, label, problem, optimizer, params, colour, symbol,
        user, epoch, median, low, high, n}]``, grouped by problem, in legend order
        within one (``colour``: the optimizer's, in shades where it has several settings
        on the problem). ``low`` and ``high`` are the lowest and highest of ``quantiles``;
        values that are not finite (a diverged run's loss) are null. ``optimizers`` maps
        each optimizer to its colour, marker and whether it is the user's
        (:func:`analysis.style.colour_map`). With ``setting``, ``runs`` holds its runs'
        own curves (``run_id``, ``seed``, ``epoch``, ``value``). Raises ValueError for a
        metric or setting the sweep does not have.
        """
        read = self._read(sweep_dir)
        if setting is not None and setting not in read.settings:
            raise ValueError(f"{self._name(sweep_dir)} has no setting {setting!r}.")
        if metric is None:
            metric = next((m for m in (*PREFERRED_METRICS, *read.metrics) if m in read.metrics), None)
        elif metric not in read.metrics:
            known = ", ".join(read.metrics) or "none yet"
            raise ValueError(f"{self._name(sweep_dir)} has no metric {metric!r} (it has: {known}).")
        answer: dict[str, Any] = {
            "metric": metric, "metrics": read.metrics, "quantiles": list(quantiles),
            "problems": list(dict.fromkeys(s["problem"] for s in read.settings.values())),
            "optimizers": colour_map(s["optimizer"] for s in read.settings.values()), "settings": [], "runs": []}
        if metric is None:
            return answer
        stats = self._stats(read, metric, tuple(quantiles))
        low, high = (f"{metric}_{quantile_name(q)}" for q in (min(quantiles), max(quantiles)))
        groups = {setting_id: rows for setting_id, rows in stats.groupby("setting_id", sort=False)}
        for setting_id, identity in read.settings.items():
            rows = groups.get(setting_id)
            if rows is not None:
                answer["settings"].append({
                    "setting_id": setting_id, "label": read.labels.get(setting_id, setting_id), **identity,
                    "epoch": rows["epoch"].tolist(), "median": _finite(rows[f"{metric}_median"]),
                    "low": _finite(rows[low]), "high": _finite(rows[high]), "n": rows[f"{metric}_n"].tolist(),
                })
        if setting is not None:
            answer["runs"] = _run_curves(read.data, setting, metric)
        return answer

    def runs(self, sweep_dir: Path) -> dict[str, dict[str, Any]]:
        """``run_id`` → its ``problem``, ``optimizer``, ``setting_id``, varying hyperparameters (``params``) and
        ``label`` (within its problem)."""
        read = self._read(sweep_dir)
        return {run_id: {"setting_id": setting_id, "label": read.labels.get(setting_id, setting_id),
                         **{k: read.settings[setting_id][k] for k in ("problem", "optimizer", "params")}}
                for run_id, setting_id in zip(read.data.runs.get("run_id", ()), read.data.runs.get("setting_id", ()),
                                              strict=True)}

    def _read(self, source: Path | str) -> _Read:
        """What a sweep folder (read again when its files changed) or a baseline holds."""
        fingerprint = input_fingerprint(source, self.runs_dir) if isinstance(source, Path) else None
        with self._lock:
            read = self._reads.get(source)
        if read is not None and read.fingerprint == fingerprint:
            return read
        data = collect_sweep(source, self.runs_dir) if isinstance(source, Path) else self.baselines[source]
        present = [m for m in metric_columns(data.metrics) if data.metrics[m].notna().any()]
        labels = setting_labels(data.runs) if len(data.runs) else pd.Series(dtype=object)
        read = _Read(fingerprint, data, labels, present, _identities(data.runs, labels))
        with self._lock:
            self._reads[source] = read
        return read

    @staticmethod
    def _name(source: Path | str) -> str:
        return f"Sweep {source.name}" if isinstance(source, Path) else f"The baselines {source}"

    @staticmethod
    def _stats(read: _Read, metric: str, quantiles: tuple[float, ...]) -> pd.DataFrame:
        """:func:`curve_stats` of one metric, kept with what was read (a metric switch back costs nothing)."""
        key = (metric, quantiles)
        if key not in read.stats:
            stats = curve_stats(read.data.metrics[[*KEY_COLUMNS, metric]], quantiles)
            read.stats[key] = stats[stats[f"{metric}_n"] > 0]
        return read.stats[key]


def _identities(runs: pd.DataFrame, labels: pd.Series) -> dict[str, dict[str, Any]]:
    """Per setting, grouped by problem and in legend order within one: identity, parameters and style."""
    if not len(runs):
        return {}
    settings = settings_table(runs)
    parameters = setting_parameters(runs)
    out: dict[str, dict[str, Any]] = {}
    for problem in dict.fromkeys(settings["problem"]):
        members = settings[settings["problem"] == problem]
        for optimizer in legend_order(members["optimizer"]):
            ids = sorted(members.index[members["optimizer"] == optimizer], key=lambda s: str(labels.get(s, s)))
            style = style_of(optimizer)
            for setting_id, rgb in zip(ids, shades(style.colour, len(ids)), strict=True):
                out[setting_id] = {"problem": str(problem), "optimizer": str(optimizer),
                                   "params": parameters.get(setting_id, {}), "colour": _hex(rgb),
                                   "symbol": style.symbol, "user": style.user}
    return out


def _run_curves(data: SweepData, setting: str, metric: str) -> list[dict[str, Any]]:
    """Each run of ``setting``: its own values of ``metric`` per epoch (a seed's line)."""
    runs = data.runs[data.runs["setting_id"] == setting]
    metrics = data.metrics
    out = []
    for run_id, seed in zip(runs["run_id"], runs["seed"], strict=True):
        rows = metrics[metrics["run_id"] == run_id] if len(metrics) else metrics
        if len(rows) and metric in rows.columns:
            out.append({"run_id": str(run_id), "seed": None if pd.isna(seed) else int(seed),
                        "epoch": rows["epoch"].tolist(), "value": _finite(rows[metric])})
    return out


def _hex(rgb: Sequence[float]) -> str:
    return "#" + "".join(f"{round(255 * c):02x}" for c in rgb)


def _finite(values: pd.Series) -> list[float | None]:
    array = values.to_numpy(dtype=np.float64)
    return [float(v) if np.isfinite(v) else None for v in array]
