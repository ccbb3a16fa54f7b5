"""Figures for a paper (``optbench plot``): one kind per file, in the project's colours and markers, a column wide.

* ``curves``: per problem, each optimizer's best setting (DeepOBS's selection): the
  median over seeds of one metric per epoch, its quantile band, its marker at the last point.
* ``sensitivity``: per problem, the final validation median against each optimizer's
  most varying hyperparameter (as the report's figure draws it).
* ``profiles``: AlgoPerf's performance profiles, each optimizer's score in the legend.
* ``budget``: per problem, the expected best validation metric of k tuning trials ± 1 std
  (dashed beyond the trials run).

Sizes: 3.25 in wide for one column of a two-column paper, 6.75 in for both, with
panels about 4:3; 8 pt text. No figure title, notes or caps: the caption is the
author's. One legend above the panels, top and right spines off. PDF text stays
text (TrueType), SVG and PDF carry no date, PNG is 300 dpi.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib import rc_context
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from analysis import PLOT_FORMATS, PLOT_KINDS, PLOT_WIDTHS
from analysis.budgets import has_tuning
from analysis.plots import ROWS, row_metric, sensitivity_line, x_column
from analysis.stats import quantile_name
from analysis.style import legend_order, style_of

#: Figure width in inches: one column of a two-column paper, or both; panels per row at most.
WIDTHS = dict(zip(PLOT_WIDTHS, (3.25, 6.75), strict=True))
PANELS_PER_ROW = dict(zip(PLOT_WIDTHS, (2, 4), strict=True))
PANEL_ASPECT = 0.78
LEGEND_ROW = 0.22
DPI = 300
STYLE = {
    "font.size": 8, "axes.titlesize": 8, "axes.labelsize": 8, "xtick.labelsize": 7, "ytick.labelsize": 7,
    "legend.fontsize": 7, "axes.linewidth": 0.6, "xtick.major.width": 0.6, "ytick.major.width": 0.6,
    "lines.linewidth": 1.2, "axes.spines.top": False, "axes.spines.right": False, "legend.frameon": False,
    "pdf.fonttype": 42, "figure.constrained_layout.h_pad": 0.02, "figure.constrained_layout.w_pad": 0.02,
}


def paper_figure(aggregate: Any, kind: str, width: str = "double", metric: str = "valid") -> Figure:
    """The ``kind`` figure of ``aggregate`` (an :class:`analysis.aggregate.Aggregate`).

    ``metric`` (curves only) is a row of the report's curves: ``train``, ``valid``,
    ``test`` or ``lr``. Raises ValueError, naming what to choose instead, when the
    aggregate has nothing of that kind.
    """
    if kind not in PLOT_KINDS:
        raise ValueError(f"the kind of figure must be one of {', '.join(PLOT_KINDS)}; got {kind!r}.")
    if metric not in ROWS:
        raise ValueError(f"the curves' metric must be one of {', '.join(ROWS)}; got {metric!r}.")
    if width not in WIDTHS:
        raise ValueError(f"the width must be one of {', '.join(WIDTHS)}; got {width!r}.")
    with rc_context(STYLE):
        if kind == "curves":
            return _curves(aggregate, width, metric)
        if kind == "sensitivity":
            return _sensitivity(aggregate, width)
        if kind == "profiles":
            return _profiles(aggregate, width)
        return _budget(aggregate, width)


def save_paper_figure(figure: Figure, path: Path) -> Path:
    """Write ``figure`` in the format its suffix names (``.pdf``, ``.png`` or ``.svg``)."""
    path = Path(path)
    if path.suffix.lower() not in PLOT_FORMATS:
        raise ValueError(f"the output must end in .pdf, .png or .svg; got {path.name!r}.")
    metadata = {".pdf": {"CreationDate": None}, ".svg": {"Date": None}}.get(path.suffix.lower())
    with rc_context(STYLE):
        figure.savefig(path, dpi=DPI, metadata=metadata)
    return path


# ----------------------------------------------------------------------------- kinds


def _curves(aggregate: Any, width: str, row: str) -> Figure:
    best, curves = _frame(aggregate, "best"), _frame(aggregate, "curves")
    if not len(best) or not len(curves):
        raise ValueError("the sweep has no finished setting to draw yet; plot it once runs have completed.")
    primary = dict(getattr(aggregate, "primary", None) or {})
    quantiles = tuple(getattr(aggregate, "quantiles", None) or (0.25, 0.75))
    low, high = quantile_name(min(quantiles)), quantile_name(max(quantiles))
    problems = list(dict.fromkeys(best["problem"]))
    figure, axes = _panels(len(problems), width, legend_order(best["optimizer"]))
    by_setting = {key: frame for key, frame in curves.groupby("setting_id", sort=False)}
    for axis, problem in zip(axes, problems, strict=True):
        column, label = row_metric(row, primary.get(problem, "loss"))
        chosen = best[best["problem"] == problem]
        drawn = []
        for optimizer in legend_order(chosen["optimizer"]):
            setting = chosen[chosen["optimizer"] == optimizer]["setting_id"].iloc[0]
            frame = by_setting.get(setting)
            if frame is None or f"{column}_median" not in frame:
                continue
            epoch, median = _values(frame, "epoch"), _values(frame, f"{column}_median")
            if not np.isfinite(median).any():
                continue
            style = style_of(optimizer)
            axis.fill_between(epoch, _values(frame, f"{column}_{low}"), _values(frame, f"{column}_{high}"),
                              color=style.colour, alpha=0.18, linewidth=0)
            axis.plot(epoch, median, color=style.colour, linewidth=_line(style), gid=_gid(problem, optimizer),
                      zorder=3 if style.user else 2)
            last = np.flatnonzero(np.isfinite(median))[-1]
            axis.plot([epoch[last]], [median[last]], linestyle="none", marker=style.marker, markersize=4,
                      color=style.colour, zorder=4)
            drawn.append(median)
        _label(axis, problem, "epoch", label)
        if column == "lr" or (column.endswith("_loss") and drawn):
            _log_if_decades(axis, np.concatenate(drawn) if drawn else np.array([]))
    return figure


def _sensitivity(aggregate: Any, width: str) -> Figure:
    summary = _frame(aggregate, "summary")
    if not len(summary):
        raise ValueError("the sweep has no settings to draw yet; plot it once runs have completed.")
    if not summary.groupby(["problem", "optimizer"]).size().gt(1).any():
        raise ValueError("every optimizer of this sweep ran a single setting per problem, so there is no "
                         "sensitivity to draw; choose --kind curves.")
    quantiles = tuple(getattr(aggregate, "quantiles", None) or (0.25, 0.75))
    bands = (quantile_name(min(quantiles)), quantile_name(max(quantiles)))
    problems = list(dict.fromkeys(summary["problem"]))
    figure, axes = _panels(len(problems), width, legend_order(summary["optimizer"]))
    for axis, problem in zip(axes, problems, strict=True):
        rows = summary[summary["problem"] == problem]
        metric = str(rows["metric"].iloc[0])
        xs, names = [], set()
        for optimizer in legend_order(rows["optimizer"]):
            group = rows[rows["optimizer"] == optimizer]
            column = x_column(group)
            style = style_of(optimizer)
            sensitivity_line(axis, group, column, "final_valid", bands, metric, style.colour, style.marker)
            if column is not None:
                xs.append(_values(group, column))
                names.add(column.rsplit(".", 1)[-1])
        if xs:
            _log_if_decades(axis, np.concatenate(xs), "x")
        if metric == "loss":
            _log_if_decades(axis, _values(rows, "final_valid_median"))
        _label(axis, problem, " / ".join(sorted(names)) or "setting", f"final valid {metric}")
    return figure


def _profiles(aggregate: Any, width: str) -> Figure:
    profiles, scores = _frame(aggregate, "profiles"), _frame(aggregate, "scores")
    if not len(profiles):
        raise ValueError("this sweep has no performance profiles (they need two optimizers and a target each "
                         "reached); choose --kind curves, or aggregate with --target.")
    score_of = dict(zip(scores["submission"].astype(str), scores["score"], strict=True)) if len(scores) else {}
    names = profiles["submission"].astype(str)
    order = legend_order(names)
    labels = [f"{name} ({score_of[name]:.2f})" if math.isfinite(score_of.get(name, math.nan)) else name
              for name in order]
    figure, (axis,) = _panels(1, width, order, labels)
    for name in order:
        frame = profiles[names == name].sort_values("tau")
        style = style_of(name)
        tau, rho = _values(frame, "tau"), _values(frame, "rho")
        axis.step(tau, rho, where="post", color=style.colour, linewidth=_line(style), gid=_gid("profile", name),
                  marker=style.marker, markersize=4, markevery=[len(tau) - 1] if len(tau) else None)
    axis.set_xlim(1.0, float(profiles["tau"].max()))
    axis.set_ylim(-0.02, 1.02)
    _label(axis, "", "τ (time relative to the fastest)", "share of problems ρ(τ)")
    return figure


def _budget(aggregate: Any, width: str) -> Figure:
    budgets = _frame(aggregate, "budgets")
    if not len(budgets) or not has_tuning(_frame(aggregate, "budget_summary")):
        raise ValueError("no optimizer of this sweep has two tuning trials or more, so there is no tuning budget "
                         "to draw; choose --kind curves.")
    problems = list(dict.fromkeys(budgets["problem"]))
    figure, axes = _panels(len(problems), width, legend_order(budgets["optimizer"]))
    for axis, problem in zip(axes, problems, strict=True):
        rows = budgets[budgets["problem"] == problem]
        metric = str(rows["metric"].iloc[0])
        for optimizer in legend_order(rows["optimizer"]):
            frame = rows[rows["optimizer"] == optimizer].sort_values("k")
            style = style_of(optimizer)
            k, trials = _values(frame, "k"), _values(frame, "trials")
            expected, std = _values(frame, "expected_valid"), _values(frame, "valid_std")
            axis.fill_between(k, expected - std, expected + std, color=style.colour, alpha=0.15, linewidth=0)
            axis.plot(np.where(k <= trials, k, np.nan), expected, color=style.colour, linewidth=_line(style),
                      gid=_gid(problem, optimizer), marker=style.marker, markersize=4, markevery=[0])
            axis.plot(np.where(k >= trials, k, np.nan), expected, color=style.colour, linewidth=0.9, linestyle="--")
        axis.set_xscale("log")
        _label(axis, problem, "k (trials)", f"expected best valid {metric}")
    return figure


# ----------------------------------------------------------------------------- layout


def _panels(count: int, width: str, optimizers: list[str], labels: list[str] | None = None) -> tuple[Figure, list]:
    """A figure ``WIDTHS[width]`` wide with ``count`` panels and one legend of ``optimizers`` above them."""
    columns = max(1, min(count, PANELS_PER_ROW[width]))
    rows = math.ceil(count / columns)
    inches = WIDTHS[width]
    legend_columns = 3 if width == "single" else 6
    legend_rows = math.ceil(len(optimizers) / legend_columns)
    height = rows * inches / columns * PANEL_ASPECT + legend_rows * LEGEND_ROW + 0.1
    figure = Figure(figsize=(inches, height), dpi=DPI, layout="constrained")  # display pixels are the PNG's
    FigureCanvasAgg(figure)
    axes = [figure.add_subplot(rows, columns, i + 1) for i in range(count)]
    for axis in axes:
        axis.grid(True, which="major", linewidth=0.4, alpha=0.35)
    handles = [Line2D([], [], color=style_of(o).colour, marker=style_of(o).marker, markersize=4,
                      linewidth=_line(style_of(o))) for o in optimizers]
    figure.legend(handles, labels or optimizers, loc="outside upper center", ncol=min(len(handles), legend_columns),
                  handlelength=1.6, columnspacing=1.0)
    return figure, axes


def _label(axis, title: str, x: str, y: str) -> None:
    if title:
        axis.set_title(title)
    axis.set_xlabel(x)
    axis.set_ylabel(y)


def _log_if_decades(axis, values: np.ndarray, which: str = "y") -> None:
    """A log axis when the values are positive and span more than a decade."""
    values = values[np.isfinite(values)]
    if len(values) and np.all(values > 0) and values.max() > 10 * values.min():
        (axis.set_yscale if which == "y" else axis.set_xscale)("log")


def _line(style) -> float:
    return 1.6 if style.user else 1.2


def _gid(group: str, optimizer: str) -> str:
    """The SVG id of an optimizer's line: ``line-<problem>-<optimizer>`` (tests read colours by it)."""
    return f"line-{group}-{optimizer}"


def _frame(aggregate: Any, name: str) -> pd.DataFrame:
    value = getattr(aggregate, name, None)
    return value if isinstance(value, pd.DataFrame) else pd.DataFrame()


def _values(frame: pd.DataFrame, column: str) -> np.ndarray:
    if column not in frame.columns:
        return np.full(len(frame), np.nan)
    return pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=np.float64)
