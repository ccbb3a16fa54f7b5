"""The sweep's figure: one column per problem, rows train loss / valid / test / learning rate.

Each setting is a line at its median over seeds with a band between the lowest
and highest configured quantile; x is the epoch. Loss rows use a log y-axis
when all their values are positive, the learning-rate row always (values ≤ 0
are masked). Drawn on an Agg canvas without pyplot, so no global state changes.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection, PolyCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from analysis.stats import quantile_name

log = logging.getLogger(__name__)

#: Inches per problem column, per panel row, per legend line; legend padding; legend columns.
PANEL_WIDTH = 4.5
PANEL_HEIGHT = 2.5
LEGEND_LINE = 0.22
LEGEND_PAD = 0.5
TOP_MARGIN = 0.8
LEGEND_COLUMNS = 2
DPI = 100
ROWS = ("train", "valid", "test", "lr")


def figure_size(n_problems: int, most_settings: int) -> tuple[float, float]:
    """Figure size in inches for ``n_problems`` columns whose longest legend has ``most_settings`` entries."""
    legend_lines = math.ceil(max(most_settings, 1) / LEGEND_COLUMNS)
    return (PANEL_WIDTH * max(n_problems, 1),
            TOP_MARGIN + PANEL_HEIGHT * len(ROWS) + LEGEND_PAD + LEGEND_LINE * legend_lines)


def row_metric(row: str, primary: str) -> tuple[str, str]:
    """(metric column, axis label) of a panel row for a problem whose primary metric is ``primary``."""
    if row == "train":
        return "train_loss", "train loss"
    if row == "lr":
        return "lr", "learning rate"
    return f"{row}_{primary}", f"{row} {primary}"


def plot_curves(
    curves: pd.DataFrame,
    path: Path,
    primary: Mapping[str, str],
    quantiles: Sequence[float],
    order: Sequence[str] | None = None,
    title: str = "",
    dpi: int = DPI,
) -> Path:
    """Write the PNG of ``curves`` (as :func:`analysis.aggregate.curves_table` makes it) to ``path``."""
    settings = curves.drop_duplicates("setting_id")[["setting_id", "problem", "optimizer", "label"]]
    if order is not None:
        rank = {s: i for i, s in enumerate(order)}
        settings = settings.assign(_rank=settings["setting_id"].map(rank)).sort_values("_rank", kind="stable")
    problems = list(dict.fromkeys(settings["problem"]))
    per_problem = {p: settings[settings["problem"] == p] for p in problems}
    most = max((len(s) for s in per_problem.values()), default=1)
    width, height = figure_size(len(problems), most)
    figure = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(figure)
    # Fixed margins in inches (a layout engine costs more than the drawing with many axes).
    legend_height = height - TOP_MARGIN - PANEL_HEIGHT * len(ROWS)
    grid = figure.add_gridspec(
        len(ROWS) + 1, max(len(problems), 1), height_ratios=[PANEL_HEIGHT] * len(ROWS) + [legend_height],
        left=0.75 / width, right=1 - 0.2 / width, top=1 - TOP_MARGIN / height, bottom=0.05 / height,
        wspace=0.8 / (PANEL_WIDTH - 0.95), hspace=0.55 / (PANEL_HEIGHT - 0.55),
    )
    low, high = quantile_name(min(quantiles)), quantile_name(max(quantiles))
    if title:
        figure.suptitle(f"{title} — median over seeds, band {low}–{high}", fontsize=12, y=1 - 0.12 / height,
                        va="top")
    if not problems:
        axis = figure.add_subplot(grid[:, 0])
        axis.set_axis_off()
        axis.text(0.5, 0.5, "no metrics yet", ha="center", va="center", fontsize=14, color="0.4")
    by_setting = {key: frame for key, frame in curves.groupby("setting_id", sort=False)}
    for column, problem in enumerate(problems):
        members = per_problem[problem]
        colors = _colors(list(members["optimizer"]))
        frames = [by_setting[s] for s in members["setting_id"]]
        for row_index, row in enumerate(ROWS):
            axis = figure.add_subplot(grid[row_index, column])
            metric, ylabel = row_metric(row, primary.get(problem, "loss"))
            drawn = _draw(axis, frames, colors, metric, low, high)
            _scale(axis, drawn, metric, (low, high), row)
            axis.set_ylabel(ylabel, fontsize=9)
            axis.tick_params(labelsize=8)
            axis.grid(True, which="major", alpha=0.3)
            if row_index == 0:
                axis.set_title(problem, fontsize=10)
            if row_index == len(ROWS) - 1:
                axis.set_xlabel("epoch", fontsize=9)
            if not drawn:
                axis.text(0.5, 0.5, "no data", transform=axis.transAxes, ha="center", va="center", color="0.5")
        legend_axis = figure.add_subplot(grid[len(ROWS), column])
        legend_axis.set_axis_off()
        handles = [Line2D([], [], color=color, linewidth=1.4) for color in colors]
        legend_axis.legend(handles, list(members["label"]), loc="upper center", ncol=LEGEND_COLUMNS,
                           frameon=False, fontsize=8, handlelength=1.5)
    figure.savefig(path, format="png", dpi=dpi)
    log.info("wrote %s (%g × %g in)", path, width, height)
    return path


#: One hue per optimizer; settings of the same optimizer are shades of it (light to dark).
HUES = ("Blues", "Oranges", "Greens", "Reds", "Purples", "Greys", "YlOrBr", "PuRd", "BuGn", "GnBu")


def _colors(optimizers: Sequence[str]) -> list[tuple[float, float, float, float]]:
    """A colour per setting: the optimizer's hue, a darker shade for each further setting of it."""
    from matplotlib import colormaps

    names = list(dict.fromkeys(optimizers))
    if len(names) > len(HUES):
        return [colormaps["viridis"](x) for x in np.linspace(0, 0.95, len(optimizers))]
    totals = {n: optimizers.count(n) for n in names}
    seen: dict[str, int] = {}
    colors = []
    for optimizer in optimizers:
        k, total = seen.get(optimizer, 0), totals[optimizer]
        seen[optimizer] = k + 1
        if total == 1:
            colors.append(colormaps["tab10"](names.index(optimizer) % 10))
        else:
            shade = 0.4 + 0.55 * k / (total - 1)
            colors.append(colormaps[HUES[names.index(optimizer)]](shade))
    return colors


def _finite(frame: pd.DataFrame, column: str) -> np.ndarray:
    if column not in frame.columns:
        return np.full(len(frame), np.nan)
    values = frame[column].to_numpy(dtype=np.float64)
    return np.where(np.isfinite(values), values, np.nan)


def _draw(axis, frames: list[pd.DataFrame], colors: list, metric: str, low: str, high: str) -> list[pd.DataFrame]:
    """Median lines and quantile bands of ``frames`` as two collections; returns the frames drawn."""
    lines, bands, line_colors, band_colors, drawn = [], [], [], [], []
    for frame, color in zip(frames, colors, strict=True):
        median = _finite(frame, f"{metric}_median")
        if np.all(np.isnan(median)):
            continue
        drawn.append(frame)
        epoch = frame["epoch"].to_numpy(dtype=np.float64)
        lines.append(np.column_stack([epoch, median]))
        line_colors.append(color)
        lower, upper = _finite(frame, f"{metric}_{low}"), _finite(frame, f"{metric}_{high}")
        ok = ~(np.isnan(lower) | np.isnan(upper))
        if low != high and ok.sum() > 1:
            x = epoch[ok]
            bands.append(np.concatenate([np.column_stack([x, lower[ok]]), np.column_stack([x[::-1], upper[ok][::-1]])]))
            band_colors.append(color)
    if bands:
        axis.add_collection(PolyCollection(bands, facecolors=band_colors, alpha=0.18, linewidths=0))
    if lines:
        axis.add_collection(LineCollection(lines, colors=line_colors, linewidths=1.4))
        axis.autoscale_view()
    return drawn


def _scale(axis, frames: list[pd.DataFrame], metric: str, bands: tuple[str, str], row: str) -> None:
    if not frames:
        return
    values = np.concatenate([_finite(f, f"{metric}_{s}") for f in frames for s in ("median", *bands)])
    values = values[~np.isnan(values)]
    if row == "lr":
        if np.any(values > 0):
            axis.set_yscale("log", nonpositive="mask")
    elif metric.endswith("_loss") and len(values) and np.all(values > 0):
        axis.set_yscale("log")
