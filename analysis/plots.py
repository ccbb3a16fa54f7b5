"""The report's figures, each written as ``<stem>.png`` and ``<stem>.svg``.

* curves: DeepOBS's layout, one column per problem, rows train loss / valid /
  test / learning rate; a setting is a line at its median over seeds with a
  band between the lowest and highest configured quantile.
* sensitivity: per problem, an outcome's median against the hyperparameter
  that varies most (tuning robustness).
* boxes: per problem, the spread of the per-setting medians of each optimizer.
* profiles: AlgoPerf performance profiles ρ_s(τ).
* budgets: per problem, the expected best validation metric of k tuning trials.

Drawn on an Agg canvas without pyplot (no global state changes) with fixed
margins in inches (a layout engine costs more than the drawing). What one
figure draws is capped (settings per problem, optimizers per panel,
submissions) so a sweep of any size plots in about a second; a figure that
leaves something out says so.
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
from matplotlib.ticker import LogFormatterSciNotation
from matplotlib.transforms import blended_transform_factory

from analysis.stats import quantile_name
from analysis.style import legend_order, shades, style_of

log = logging.getLogger(__name__)

#: Inches per problem column, per panel row, per legend line; legend padding; legend columns.
PANEL_WIDTH = 4.5
PANEL_HEIGHT = 2.5
LEGEND_LINE = 0.22
LEGEND_PAD = 0.5
TOP_MARGIN = 0.8
LEGEND_COLUMNS = 2
#: Labels longer than this get a one-column legend (two columns of them overflow a panel's width).
LEGEND_LABEL_CHARS = 26
DPI = 100
ROWS = ("train", "valid", "test", "lr")
#: Caps on what one figure draws (a figure that leaves something out says "N of M ... shown").
MAX_SETTINGS = 12
MAX_OPTIMIZERS = 10
MAX_SUBMISSIONS = 12
#: Panels per row of the sensitivity and box figures, and their size in inches.
PANEL_COLUMNS = 3
SMALL_WIDTH = 4.6
SMALL_HEIGHT = 3.4


def plot_paths(stem: Path) -> tuple[Path, Path]:
    """``(<stem>.png, <stem>.svg)``; a stem already ending in .png or .svg loses that suffix."""
    stem = Path(stem)
    if stem.suffix in (".png", ".svg"):
        stem = stem.with_suffix("")
    return stem.parent / f"{stem.name}.png", stem.parent / f"{stem.name}.svg"


def save_figure(figure: Figure, stem: Path, dpi: int = DPI) -> Path:
    """Write ``figure`` as PNG and SVG beside each other; returns the PNG's path."""
    png, svg = plot_paths(stem)
    png.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(png, format="png", dpi=dpi)
    figure.savefig(svg, format="svg", metadata={"Date": None})
    width, height = figure.get_size_inches()
    log.info("wrote %s and %s (%g × %g in)", png, svg.name, width, height)
    return png


def _new_figure(width: float, height: float, dpi: int = DPI) -> Figure:
    figure = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(figure)
    return figure


def _text(value: object) -> str:
    """User text for a figure: a ``$`` would otherwise start mathtext."""
    return str(value).replace("$", r"\$")


class PlainLogFormatter(LogFormatterSciNotation):
    """Log-axis tick labels as plain numbers (0.3, 2, 1e-05) on the ticks matplotlib would label."""

    def __call__(self, x: float, pos: int | None = None) -> str:
        return f"{x:g}" if super().__call__(x, pos) else ""


def _log_scale(axis, which: str = "y") -> None:
    """A log scale whose tick labels stay narrow (no 2×10⁰), so fixed margins fit them."""
    low, high = axis.dataLim.intervaly if which == "y" else axis.dataLim.intervalx
    if 0 < low and high <= low * (1 + 1e-9):  # one value (a constant learning rate): a span around it
        (axis.set_ylim if which == "y" else axis.set_xlim)(low / 2, high * 2)
    (axis.set_yscale if which == "y" else axis.set_xscale)("log", nonpositive="mask")
    ticks = axis.yaxis if which == "y" else axis.xaxis
    ticks.set_major_formatter(PlainLogFormatter())
    ticks.set_minor_formatter(PlainLogFormatter(labelOnlyBase=False))


def optimizer_colors(optimizers: Sequence[str]) -> dict[str, tuple[float, float, float, float]]:
    """Each optimizer's colour (:mod:`analysis.style`) as RGBA, in legend order."""
    return {name: (*style_of(name).rgb, 1.0) for name in legend_order(optimizers)}


def _in_legend_order(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame``'s rows grouped by optimizer in legend order, keeping their order within an optimizer."""
    rank = {name: i for i, name in enumerate(legend_order(frame["optimizer"]))}
    return frame.iloc[np.argsort(frame["optimizer"].astype(str).map(rank).to_numpy(), kind="stable")]


# ----------------------------------------------------------------------------- curves


def figure_size(n_problems: int, most_settings: int, legend_columns: int = LEGEND_COLUMNS) -> tuple[float, float]:
    """Curves figure size in inches for ``n_problems`` columns whose longest legend has ``most_settings`` entries."""
    legend_lines = math.ceil(max(most_settings, 1) / legend_columns)
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
    stem: Path,
    primary: Mapping[str, str],
    quantiles: Sequence[float],
    order: Sequence[str] | None = None,
    title: str = "",
    limit: int = MAX_SETTINGS,
    dpi: int = DPI,
) -> Path:
    """Write the curves figure (:func:`curves_figure`) to ``<stem>.png`` and ``<stem>.svg``; returns the PNG."""
    return save_figure(curves_figure(curves, primary, quantiles, order, title, limit, dpi), stem, dpi)


def curves_figure(
    curves: pd.DataFrame,
    primary: Mapping[str, str],
    quantiles: Sequence[float],
    order: Sequence[str] | None = None,
    title: str = "",
    limit: int = MAX_SETTINGS,
    dpi: int = DPI,
) -> Figure:
    """DeepOBS's four rows per problem for ``curves`` (as :func:`analysis.aggregate.curves_table` makes it).

    ``order`` selects and ranks settings: only the settings it names are drawn, in its
    order. Per problem at most ``limit`` settings are drawn (the first in order) and the
    column title says "N of M settings shown".
    """
    settings = curves.drop_duplicates("setting_id")[["setting_id", "problem", "optimizer", "label"]]
    if order is not None:
        rank = {s: i for i, s in enumerate(order)}
        settings = settings.assign(_rank=settings["setting_id"].map(rank)).dropna(subset="_rank")
        settings = settings.sort_values("_rank", kind="stable")
    problems = list(dict.fromkeys(settings["problem"]))
    per_problem = {p: settings[settings["problem"] == p] for p in problems}
    most = max((min(len(s), limit) for s in per_problem.values()), default=1)
    longest = max((len(str(label)) for label in settings["label"]), default=0)
    legend_columns = LEGEND_COLUMNS if longest <= LEGEND_LABEL_CHARS else 1
    width, height = figure_size(len(problems), most, legend_columns)
    figure = _new_figure(width, height, dpi)
    legend_height = height - TOP_MARGIN - PANEL_HEIGHT * len(ROWS)
    grid = figure.add_gridspec(
        len(ROWS) + 1, max(len(problems), 1), height_ratios=[PANEL_HEIGHT] * len(ROWS) + [legend_height],
        left=0.75 / width, right=1 - 0.2 / width, top=1 - TOP_MARGIN / height, bottom=0.05 / height,
        wspace=0.8 / (PANEL_WIDTH - 0.95), hspace=0.55 / (PANEL_HEIGHT - 0.55),
    )
    low, high = quantile_name(min(quantiles)), quantile_name(max(quantiles))
    if title:
        figure.suptitle(f"{_text(title)} — median over seeds, band {low}–{high}", fontsize=12,
                        y=1 - 0.12 / height, va="top")
    if not problems:
        axis = figure.add_subplot(grid[:, 0])
        axis.set_axis_off()
        axis.text(0.5, 0.5, "no metrics yet", ha="center", va="center", fontsize=14, color="0.4")
    by_setting = {key: frame for key, frame in curves.groupby("setting_id", sort=False)}
    for column, problem in enumerate(problems):
        members = per_problem[problem]
        total = len(members)
        members = _in_legend_order(members.head(limit))
        colors = _shades(list(members["optimizer"]))
        styles = [style_of(o) for o in members["optimizer"]]
        frames = [by_setting[s] for s in members["setting_id"]]
        for row_index, row in enumerate(ROWS):
            axis = figure.add_subplot(grid[row_index, column])
            metric, ylabel = row_metric(row, primary.get(problem, "loss"))
            drawn = _draw(axis, frames, colors, metric, low, high, styles)
            _scale(axis, drawn, metric, (low, high), row)
            axis.set_ylabel(ylabel, fontsize=9)
            axis.tick_params(which="both", labelsize=8)
            axis.grid(True, which="major", alpha=0.3)
            if row_index == 0:
                heading = _text(problem)
                if total > len(members):
                    heading += f"\n{len(members)} of {total} settings shown"
                axis.set_title(heading, fontsize=10)
            if row_index == len(ROWS) - 1:
                axis.set_xlabel("epoch", fontsize=9)
            if not drawn:
                axis.text(0.5, 0.5, "no data", transform=axis.transAxes, ha="center", va="center", color="0.5")
        legend_axis = figure.add_subplot(grid[len(ROWS), column])
        legend_axis.set_axis_off()
        handles = [Line2D([], [], color=color, linewidth=_width(style), marker=style.marker, markersize=5)
                   for color, style in zip(colors, styles, strict=True)]
        legend_axis.legend(handles, [_text(label) for label in members["label"]], loc="upper center",
                           ncol=legend_columns, frameon=False, fontsize=8, handlelength=1.5)
    return figure


def _shades(optimizers: Sequence[str]) -> list[tuple[float, float, float]]:
    """A colour per setting: its optimizer's colour, in lighter to darker shades when it has several settings."""
    totals = {n: optimizers.count(n) for n in optimizers}
    palettes = {n: shades(style_of(n).colour, total) for n, total in totals.items()}
    seen: dict[str, int] = {}
    colors = []
    for optimizer in optimizers:
        seen[optimizer] = seen.get(optimizer, -1) + 1
        colors.append(palettes[optimizer][seen[optimizer]])
    return colors


def _width(style) -> float:
    """User optimizers' lines are drawn wider than the baselines'."""
    return 2.0 if style.user else 1.4


def _finite(frame: pd.DataFrame, column: str) -> np.ndarray:
    if column not in frame.columns:
        return np.full(len(frame), np.nan)
    values = frame[column].to_numpy(dtype=np.float64)
    return np.where(np.isfinite(values), values, np.nan)


def _draw(axis, frames: list[pd.DataFrame], colors: list, metric: str, low: str, high: str,
          styles: list) -> list[pd.DataFrame]:
    """Median lines and quantile bands of ``frames`` as two collections, each line's optimizer marker at its
    last point; returns the frames drawn."""
    lines, bands, line_colors, band_colors, widths, drawn = [], [], [], [], [], []
    for frame, color, style in zip(frames, colors, styles, strict=True):
        median = _finite(frame, f"{metric}_median")
        if np.all(np.isnan(median)):
            continue
        drawn.append(frame)
        epoch = frame["epoch"].to_numpy(dtype=np.float64)
        lines.append(np.column_stack([epoch, median]))
        line_colors.append(color)
        widths.append(_width(style))
        last = np.flatnonzero(~np.isnan(median))[-1]
        axis.plot([epoch[last]], [median[last]], linestyle="none", marker=style.marker, markersize=5, color=color,
                  zorder=3)
        lower, upper = _finite(frame, f"{metric}_{low}"), _finite(frame, f"{metric}_{high}")
        ok = ~(np.isnan(lower) | np.isnan(upper))
        if low != high and ok.sum() > 1:
            x = epoch[ok]
            bands.append(np.concatenate([np.column_stack([x, lower[ok]]), np.column_stack([x[::-1], upper[ok][::-1]])]))
            band_colors.append(color)
    if bands:
        axis.add_collection(PolyCollection(bands, facecolors=band_colors, alpha=0.18, linewidths=0))
    if lines:
        axis.add_collection(LineCollection(lines, colors=line_colors, linewidths=widths))
        axis.autoscale_view()
    return drawn


def _scale(axis, frames: list[pd.DataFrame], metric: str, bands: tuple[str, str], row: str) -> None:
    if not frames:
        return
    values = np.concatenate([_finite(f, f"{metric}_{s}") for f in frames for s in ("median", *bands)])
    values = values[~np.isnan(values)]
    if row == "lr":
        if np.any(values > 0):
            _log_scale(axis)
    elif metric.endswith("_loss") and len(values) and np.all(values > 0):
        _log_scale(axis)


# ----------------------------------------------------------------------------- panels per problem


def _panels(count: int, title: str, legend_lines: int, dpi: int = DPI) -> tuple[Figure, list]:
    """A figure with ``count`` panels, :data:`PANEL_COLUMNS` per row, a title and a legend strip on top."""
    columns = min(max(count, 1), PANEL_COLUMNS)
    rows = math.ceil(max(count, 1) / columns)
    top = 0.45 + LEGEND_LINE * 1.3 * legend_lines + 0.45
    width, height = columns * SMALL_WIDTH, top + rows * SMALL_HEIGHT + 0.1
    figure = _new_figure(width, height, dpi)
    figure.suptitle(title, fontsize=11, y=1 - 0.1 / height, va="top")
    return figure, panel_grid(figure, count, columns, top, "no settings yet")


def panel_grid(figure: Figure, count: int, columns: int, top: float, empty: str) -> list:
    """``count`` axes in rows of ``columns`` below ``top`` inches of title and legend; ``empty`` shown when none."""
    width, height = figure.get_size_inches()
    rows = math.ceil(max(count, 1) / columns)
    grid = figure.add_gridspec(rows, columns, left=0.85 / width, right=1 - 0.25 / width, top=1 - top / height,
                               bottom=0.75 / height, wspace=1.0 / (SMALL_WIDTH - 1.0),
                               hspace=1.35 / (SMALL_HEIGHT - 1.35))
    axes = [figure.add_subplot(grid[i // columns, i % columns]) for i in range(count)]
    if not count:
        axis = figure.add_subplot(grid[0, 0])
        axis.set_axis_off()
        axis.text(0.5, 0.5, empty, ha="center", va="center", fontsize=14, color="0.4")
    return axes


def _legend(figure: Figure, handles: list, labels: list[str]) -> None:
    """One legend for the whole figure, in the strip under its title."""
    if handles:
        height = figure.get_size_inches()[1]
        figure.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 1 - 0.45 / height),
                      ncol=min(len(handles), 6), frameon=False, fontsize=9)


def _problem_rows(summary: pd.DataFrame) -> list[tuple[str, pd.DataFrame, str]]:
    """(problem, its summary rows, its metric) in first-seen order."""
    out = []
    for problem in dict.fromkeys(summary["problem"]):
        rows = summary[summary["problem"] == problem]
        metric = str(rows["metric"].iloc[0]) if "metric" in rows.columns else "loss"
        out.append((str(problem), rows, metric))
    return out


def _column(frame: pd.DataFrame, name: str) -> np.ndarray:
    if name not in frame.columns:
        return np.full(len(frame), np.nan)
    return pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=np.float64)


def _no_result(frame: pd.DataFrame) -> np.ndarray:
    """Settings without any finished run (``n == 0``): their NaN is not a divergence."""
    if "n" not in frame.columns:
        return np.zeros(len(frame), dtype=bool)
    return _column(frame, "n") == 0


def _log_if_decades(values: np.ndarray) -> bool:
    """True when ``values`` are all positive and span more than one decade."""
    values = values[np.isfinite(values)]
    return bool(len(values) and np.all(values > 0) and values.max() > 10 * values.min())


# ----------------------------------------------------------------------------- sensitivity


def x_column(settings: pd.DataFrame) -> str | None:
    """The numeric hyperparameter that varies most among ``settings`` (one optimizer's grid).

    ``optimizer.lr`` whenever it varies; else the column with the most distinct values
    (``optimizer.*`` first on a tie); else ``optimizer.lr`` if the settings have one; else None.
    """
    counts = {}
    for column in (c for c in settings.columns if "." in c and not pd.api.types.is_bool_dtype(settings[c])):
        values = _column(settings, column)
        counts[column] = len(np.unique(values[np.isfinite(values)]))
    varying = [c for c, n in counts.items() if n > 1]
    if "optimizer.lr" in varying:
        return "optimizer.lr"
    if varying:
        return max(varying, key=lambda c: (counts[c], c.startswith("optimizer."), c))
    return "optimizer.lr" if counts.get("optimizer.lr") else None


def plot_sensitivity(
    summary: pd.DataFrame, stem: Path, quantiles: Sequence[float], outcome: str = "final_valid", dpi: int = DPI
) -> Path:
    """Write :func:`sensitivity_figure` to ``<stem>.png`` and ``<stem>.svg``; returns the PNG."""
    return save_figure(sensitivity_figure(summary, quantiles, outcome, dpi), stem, dpi)


def sensitivity_figure(
    summary: pd.DataFrame, quantiles: Sequence[float], outcome: str = "final_valid", dpi: int = DPI
) -> Figure:
    """Per problem, ``<outcome>_median`` against each optimizer's most varying hyperparameter.

    At each value of that hyperparameter the line goes through the best setting there
    (the other varying hyperparameters tuned), with that setting's quantile band; the
    other settings sharing the value are faint dots. The x-axis is logarithmic when its
    positive values span more than a decade. A setting whose median is not finite
    (diverged) is an ``x`` at the panel's worst edge; panel titles count them. An
    optimizer without a numeric hyperparameter is a horizontal line at its best median.
    """
    low, high = quantile_name(min(quantiles)), quantile_name(max(quantiles))
    problems = _problem_rows(summary)
    colors = optimizer_colors(list(summary["optimizer"]))
    figure, axes = _panels(len(problems), f"Hyperparameter sensitivity — {outcome.replace('_', ' ')} median over "
                           f"seeds, band {low}–{high}; line: best setting at each value", 1, dpi)
    extras = {"others": False, "diverged": False}
    for axis, (problem, rows, metric) in zip(axes, problems, strict=True):
        optimizers = legend_order(rows["optimizer"])
        diverged = 0
        names: dict[str, list[str]] = {}
        xs = []
        for optimizer in optimizers[:MAX_OPTIMIZERS]:
            group = rows[rows["optimizer"] == optimizer]
            column = x_column(group)
            result = sensitivity_line(axis, group, column, outcome, (low, high), metric, colors[str(optimizer)],
                                       style_of(optimizer).marker)
            diverged += result["diverged"]
            extras["others"] |= result["others"]
            extras["diverged"] |= result["diverged"] > 0
            if column is not None:
                names.setdefault(column.rsplit(".", 1)[-1], []).append(_text(optimizer))
                xs.append(_column(group, column))
        heading = f"{_text(problem)}\n{diverged} of {len(rows)} settings diverged"
        if len(optimizers) > MAX_OPTIMIZERS:
            heading += f" · {MAX_OPTIMIZERS} of {len(optimizers)} optimizers shown"
        axis.set_title(heading, fontsize=10)
        if xs and _log_if_decades(np.concatenate(xs)):
            _log_scale(axis, "x")
        values = _column(rows, f"{outcome}_median")
        if metric == "loss" and _log_if_decades(values):
            _log_scale(axis)
        if len(names) == 1:
            axis.set_xlabel(next(iter(names)), fontsize=9)
        elif names:
            axis.set_xlabel("; ".join(f"{n} ({', '.join(o)})" for n, o in names.items()), fontsize=8)
        axis.set_ylabel(f"{outcome.replace('_', ' ')} {metric}", fontsize=9)
        axis.tick_params(which="both", labelsize=8)
        axis.grid(True, which="major", alpha=0.3)
        if not np.isfinite(values).any():
            axis.text(0.5, 0.5, "no finite results", transform=axis.transAxes, ha="center", va="center", color="0.5")
    handles = [Line2D([], [], color=c, marker=style_of(o).marker, markersize=4, linewidth=1.5)
               for o, c in colors.items()]
    labels = [_text(o) for o in colors]
    if extras["others"]:
        handles.append(Line2D([], [], color="0.45", marker="o", markersize=3, linewidth=0, alpha=0.45))
        labels.append("other settings at that value")
    if extras["diverged"]:
        handles.append(Line2D([], [], color="0.2", marker="x", markersize=6, linewidth=0))
        labels.append("diverged (at the worst edge)")
    _legend(figure, handles, labels)
    return figure


def sensitivity_line(axis, group: pd.DataFrame, column: str | None, outcome: str, bands: tuple[str, str],
                      metric: str, color, marker: str = "o") -> dict:
    """Draw one optimizer's line, band, other settings and divergence marks; returns what it drew."""
    sign = -1.0 if metric == "accuracy" else 1.0
    y = _column(group, f"{outcome}_median")
    lower, upper = (_column(group, f"{outcome}_{b}") for b in bands)
    x = _column(group, column) if column else np.full(len(group), np.nan)
    finite = np.isfinite(y)
    diverged = ~finite & ~_no_result(group)
    drawn = {"diverged": int(diverged.sum()), "others": False}
    if column is None:
        if finite.any():
            best = int(np.nanargmin(np.where(finite, sign * y, np.nan)))
            axis.axhline(y[best], color=color, linewidth=1.5, linestyle="--")
            if np.isfinite(lower[best]) and np.isfinite(upper[best]):
                axis.axhspan(lower[best], upper[best], color=color, alpha=0.15, linewidth=0)
        return drawn
    ok = finite & np.isfinite(x)
    if ok.any():
        frame = pd.DataFrame({"x": x[ok], "score": sign * y[ok], "index": np.flatnonzero(ok)})
        chosen = frame.loc[frame.groupby("x")["score"].idxmin(), "index"].to_numpy()
        chosen = chosen[np.argsort(x[chosen], kind="stable")]
        axis.plot(x[chosen], y[chosen], color=color, marker=marker, markersize=3.5, linewidth=1.5)
        band = np.isfinite(lower[chosen]) & np.isfinite(upper[chosen])
        if band.sum() > 1:
            axis.fill_between(x[chosen], np.where(band, lower[chosen], np.nan), np.where(band, upper[chosen], np.nan),
                              color=color, alpha=0.15, linewidth=0, gid="band")
        others = np.setdiff1d(np.flatnonzero(ok), chosen)
        if len(others):
            axis.scatter(x[others], y[others], s=9, color=color, alpha=0.45, linewidths=0, gid="others")
            drawn["others"] = True
    marks = diverged & np.isfinite(x)
    if marks.any():
        edge = 0.03 if metric == "accuracy" else 0.97
        transform = blended_transform_factory(axis.transData, axis.transAxes)
        axis.scatter(x[marks], np.full(int(marks.sum()), edge), marker="x", s=30, color=color, linewidths=1.5,
                     transform=transform, clip_on=False, zorder=5, gid="diverged")
        axis.update_datalim(np.column_stack([x[marks], np.zeros(int(marks.sum()))]), updatey=False)
        axis.autoscale_view()
    return drawn


# ----------------------------------------------------------------------------- boxes


def plot_boxes(summary: pd.DataFrame, stem: Path, outcome: str = "final_valid", dpi: int = DPI) -> Path:
    """Write :func:`boxes_figure` to ``<stem>.png`` and ``<stem>.svg``; returns the PNG."""
    return save_figure(boxes_figure(summary, outcome, dpi), stem, dpi)


def boxes_figure(summary: pd.DataFrame, outcome: str = "final_valid", dpi: int = DPI) -> Figure:
    """Per problem, one box per optimizer over the finite ``<outcome>_median`` of its grid settings.

    Each setting is also a dot. Tick labels count the settings and those whose median is
    not finite (diverged, or no finished run yet), which the box leaves out.
    """
    problems = _problem_rows(summary)
    colors = optimizer_colors(list(summary["optimizer"]))
    figure, axes = _panels(len(problems), f"Spread over the grid — per-setting {outcome.replace('_', ' ')} median "
                           "(median over seeds), one box per optimizer", 0, dpi)
    for axis, (problem, rows, metric) in zip(axes, problems, strict=True):
        optimizers = legend_order(rows["optimizer"])
        shown = optimizers[:MAX_OPTIMIZERS]
        ticks, data, positions = [], [], []
        for position, optimizer in enumerate(shown, start=1):
            values = _column(rows[rows["optimizer"] == optimizer], f"{outcome}_median")
            finite = values[np.isfinite(values)]
            ticks.append(f"{_text(optimizer)}\n{len(values)} settings\n{len(values) - len(finite)} non-finite")
            if len(finite):
                data.append(finite)
                positions.append(position)
                color = colors[str(optimizer)]
                jitter = np.linspace(-0.18, 0.18, len(finite)) if len(finite) > 1 else np.zeros(1)
                axis.scatter(position + jitter, finite, s=10, color=color, alpha=0.6, linewidths=0, zorder=3)
        if data:
            boxes = axis.boxplot(data, positions=positions, widths=0.6, patch_artist=True, showfliers=False,
                                 medianprops={"color": "black", "linewidth": 1.5}, manage_ticks=False)
            for patch, position in zip(boxes["boxes"], positions, strict=True):
                color = colors[str(shown[position - 1])]
                patch.set_facecolor((*color[:3], 0.35))
                patch.set_edgecolor(color)
        else:
            axis.text(0.5, 0.5, "no finite results", transform=axis.transAxes, ha="center", va="center", color="0.5")
        axis.set_xticks(range(1, len(shown) + 1), ticks, fontsize=7.5)
        axis.set_xlim(0.4, len(shown) + 0.6)
        heading = _text(problem)
        if len(optimizers) > MAX_OPTIMIZERS:
            heading += f"\n{MAX_OPTIMIZERS} of {len(optimizers)} optimizers shown"
        axis.set_title(heading, fontsize=10)
        axis.set_ylabel(f"{outcome.replace('_', ' ')} {metric}", fontsize=9)
        axis.tick_params(axis="y", which="both", labelsize=8)
        axis.grid(True, axis="y", alpha=0.3)
        if data and metric == "loss" and _log_if_decades(np.concatenate(data)):
            _log_scale(axis)
    return figure


# ----------------------------------------------------------------------------- performance profiles


def plot_profiles(profiles: pd.DataFrame, scores: pd.DataFrame | None, stem: Path, r_max: float = 4.0,
                  dpi: int = DPI) -> Path:
    """Write :func:`profiles_figure` to ``<stem>.png`` and ``<stem>.svg``; returns the PNG."""
    return save_figure(profiles_figure(profiles, scores, r_max, dpi), stem, dpi)


def profiles_figure(profiles: pd.DataFrame, scores: pd.DataFrame | None, r_max: float = 4.0,
                    dpi: int = DPI) -> Figure:
    """Performance profiles ρ_s(τ) (``submission``, ``tau``, ``rho``) as step lines from τ=1 to ``r_max``.

    At most :data:`MAX_SUBMISSIONS` are drawn (the best scores), in legend order
    (:func:`analysis.style.legend_order`); the legend gives each one's score.
    """
    score_of = {}
    if scores is not None and len(scores):
        score_of = dict(zip(scores["submission"].astype(str), scores["score"].astype(float), strict=True))
    submissions = list(dict.fromkeys(profiles["submission"].astype(str)))
    submissions.sort(key=lambda s: -score_of.get(s, -math.inf))
    shown = legend_order(submissions[:MAX_SUBMISSIONS])
    figure = _new_figure(8.0, 5.0, dpi)
    axis = figure.add_axes((0.1, 0.12, 0.58, 0.76))
    title = "Performance profiles — share of problems a submission reaches within τ × the fastest time"
    if len(submissions) > len(shown):
        title += f"\n{len(shown)} of {len(submissions)} submissions shown (best scores)"
    figure.suptitle(title, fontsize=10, y=0.98, va="top")
    colors = optimizer_colors(shown)
    names = profiles["submission"].astype(str)
    for submission in shown:
        frame = profiles[names == submission].sort_values("tau")
        score = score_of.get(submission, math.nan)
        label = f"{_text(submission)} (score {score:.3f})" if math.isfinite(score) else f"{_text(submission)} (score —)"
        axis.step(frame["tau"].to_numpy(dtype=float), frame["rho"].to_numpy(dtype=float), where="post",
                  color=colors[submission], linewidth=1.8, label=label, marker=style_of(submission).marker,
                  markevery=[len(frame) - 1] if len(frame) else None)
    axis.set_xlim(1.0, r_max)
    axis.set_ylim(-0.02, 1.02)
    axis.set_xlabel("τ (time relative to the fastest submission)", fontsize=9)
    axis.set_ylabel("ρ(τ): share of problems", fontsize=9)
    axis.grid(True, alpha=0.3)
    axis.tick_params(which="both", labelsize=8)
    if shown:
        axis.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False, fontsize=9)
    else:
        axis.text(0.5, 0.5, "no profiles", transform=axis.transAxes, ha="center", va="center", color="0.5")
    return figure


# ----------------------------------------------------------------------------- tuning budgets


def plot_budgets(budgets: pd.DataFrame, budget_summary: pd.DataFrame, stem: Path, criterion: str = "final_valid",
                 marks: Sequence[int] = (25, 50), dpi: int = DPI) -> Path:
    """Per problem, the expected best validation metric of k trials against k (:mod:`analysis.budgets`).

    One line per optimizer with a ±1 std band (clipped at its best trial, which no
    budget beats), solid up to its number of trials and dashed beyond (drawn with
    replacement); where the expectation is not finite (a diverged trial) the median
    of the best of k is drawn dotted instead. A star at k = 1 is the one-shot
    (default hyperparameters) result; grey lines mark ``marks`` (Crowded Valley's
    small and large budgets). Writes ``<stem>.png`` and ``<stem>.svg``; returns the PNG.
    """
    problems = _problem_rows(budgets)
    colors = optimizer_colors(list(budgets["optimizer"]))
    outcome = criterion.replace("_", " ")
    columns = min(max(len(problems), 1), PANEL_COLUMNS)
    legend_columns = max(2, int(columns * SMALL_WIDTH // 1.7))
    shown = min(len(colors), MAX_OPTIMIZERS * max(len(problems), 1))
    figure, axes = _panels(len(problems), f"Tuning budgets: expected best {outcome} metric of k trials",
                           math.ceil((shown + 3) / legend_columns), dpi)
    summary = budget_summary.set_index(["problem", "optimizer", "budget"]) if len(budget_summary) else None

    def _summary_value(problem: str, optimizer: str, budget: str) -> float:  # one budget's valid; NaN without
        try:
            return float(summary.loc[(problem, optimizer, budget), "valid"])
        except (AttributeError, KeyError, TypeError, ValueError):
            return math.nan

    extras = {"beyond": False, "median": False, "one_shot": False}
    for axis, (problem, rows, metric) in zip(axes, problems, strict=True):
        optimizers = legend_order(rows["optimizer"])
        worst = []
        for optimizer in optimizers[:MAX_OPTIMIZERS]:
            frame = rows[rows["optimizer"] == optimizer].sort_values("k")
            color = colors[str(optimizer)]
            k, trials = _column(frame, "k"), _column(frame, "trials")
            expected, std, median = (_column(frame, c) for c in ("expected_valid", "valid_std", "valid_median"))
            y, style = np.where(np.isfinite(expected), expected, np.nan), "-"
            if not np.isfinite(expected).any():
                worst.append(_text(optimizer))
                y, style = np.where(np.isfinite(median), median, np.nan), ":"
                extras["median"] |= bool(np.isfinite(median).any())
            within, beyond = k <= trials, k >= trials  # the two parts meet at k = trials
            axis.plot(np.where(within, k, np.nan), y, color=color, linestyle=style, linewidth=1.6)
            if (k > trials).any():
                axis.plot(np.where(beyond, k, np.nan), y, color=color, linestyle="--" if style == "-" else ":",
                          linewidth=1.2, alpha=0.7)
                extras["beyond"] = True
            best = _summary_value(problem, optimizer, "best")
            lower, upper = expected - std, expected + std
            if np.isfinite(best):
                lower, upper = (np.minimum(lower, best), np.minimum(upper, best)) if metric == "accuracy" \
                    else (np.maximum(lower, best), np.maximum(upper, best))
            band = np.isfinite(lower) & np.isfinite(upper)
            if style == "-" and band.sum() > 1:
                axis.fill_between(k, np.where(band, lower, np.nan), np.where(band, upper, np.nan), color=color,
                                  alpha=0.15, linewidth=0)
            shot = _summary_value(problem, optimizer, "one-shot")
            if np.isfinite(shot):
                axis.scatter([1], [shot], marker="*", s=110, color=color, edgecolors="black", linewidths=0.6, zorder=5)
                extras["one_shot"] = True
        for mark in marks:
            axis.axvline(mark, color="0.55", linestyle="--", linewidth=0.9, zorder=0)
            axis.text(mark, 0.02, f" k={mark}", transform=blended_transform_factory(axis.transData, axis.transAxes),
                      fontsize=7, color="0.4", va="bottom")
        axis.set_xscale("log")
        axis.xaxis.set_major_formatter(PlainLogFormatter())
        heading = _text(problem)
        if worst:
            heading += f"\ndiverged trials, median shown: {', '.join(worst)}"
        if len(optimizers) > MAX_OPTIMIZERS:
            heading += f"\n{MAX_OPTIMIZERS} of {len(optimizers)} optimizers shown"
        axis.set_title(heading, fontsize=9)
        if metric == "loss" and _log_if_decades(np.concatenate([_column(rows, "expected_valid"),
                                                                _column(rows, "valid_median")])):
            _log_scale(axis)
        axis.set_xlabel("k (trials)", fontsize=9)
        axis.set_ylabel(f"best {outcome} {metric}", fontsize=9)
        axis.tick_params(which="both", labelsize=8)
        axis.grid(True, which="major", alpha=0.3)
    handles = [Line2D([], [], color=c, linewidth=1.6, marker=style_of(o).marker, markersize=4)
               for o, c in colors.items()]
    labels = [_text(o) for o in colors]
    if extras["one_shot"]:
        handles.append(Line2D([], [], color="0.5", marker="*", markersize=10, markeredgecolor="black", linewidth=0))
        labels.append("one-shot")
    if extras["beyond"]:
        handles.append(Line2D([], [], color="0.3", linestyle="--", linewidth=1.2))
        labels.append("k > trials")
    if extras["median"]:
        handles.append(Line2D([], [], color="0.3", linestyle=":", linewidth=1.6))
        labels.append("median")
    if handles:
        height = figure.get_size_inches()[1]
        figure.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 1 - 0.45 / height),
                      ncol=min(len(handles), legend_columns), frameon=False, fontsize=9)
    return save_figure(figure, stem, dpi)

