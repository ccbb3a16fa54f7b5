"""Statistics over the seeds of a setting: median, mean, std, count and quantiles.

:func:`group_stats` is the one vectorised kernel: it sorts every group's values
(a dense ``groups × seeds`` sort when the groups are about equally large, the
usual case, else one :func:`numpy.lexsort`) and reads quantiles off the sorted
values with NumPy's default ("linear") definition. NaN values are left out of
every statistic of their own group only; ``n`` says how many values were used.
There is no Python loop over groups.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from analysis.collect import metric_columns

DEFAULT_QUANTILES: tuple[float, ...] = (0.25, 0.75)
#: Statistic names in the order they appear as column suffixes (quantiles follow).
BASE_STATS = ("median", "mean", "std", "n")


def validate_quantiles(quantiles: Iterable[float]) -> tuple[float, ...]:
    """Sorted, de-duplicated quantiles, each strictly between 0 and 1, or a one-sentence ValueError."""
    try:
        values = [float(q) for q in quantiles]
    except (TypeError, ValueError):
        raise ValueError(f"quantiles must be numbers between 0 and 1, e.g. (0.25, 0.75); got {quantiles!r}.") from None
    if not values:
        raise ValueError("quantiles must name at least one quantile, e.g. (0.25, 0.75).")
    bad = [q for q in values if not (0.0 < q < 1.0) or math.isnan(q)]
    if bad:
        raise ValueError(f"quantiles must lie strictly between 0 and 1; {bad[0]!r} does not.")
    return tuple(sorted(set(values)))


def quantile_name(q: float) -> str:
    """Column suffix of a quantile: 0.25 → ``q25``, 0.025 → ``q2.5``."""
    return f"q{round(q * 100, 6):g}"


def stat_names(quantiles: Sequence[float]) -> list[str]:
    return [*BASE_STATS, *(quantile_name(q) for q in quantiles)]


def group_stats(
    codes: np.ndarray, values: np.ndarray, n_groups: int, quantiles: Sequence[float] = DEFAULT_QUANTILES
) -> dict[str, np.ndarray]:
    """Per-group statistics of ``values`` (rows × columns, or one column).

    ``codes[i]`` in ``[0, n_groups)`` is the group of row ``i``. Returns, for each
    name of :func:`stat_names`, an array ``n_groups × columns``. ``std`` is the
    sample standard deviation (``ddof=1``; NaN for fewer than two values).
    """
    codes = np.asarray(codes, dtype=np.int64)
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 1:
        values = values[:, None]
    n_rows, n_columns = values.shape
    if len(codes) != n_rows:
        raise ValueError(f"group_stats got {len(codes)} group codes for {n_rows} rows.")
    out = {name: np.full((n_groups, n_columns), np.nan) for name in stat_names(quantiles)}
    out["n"] = np.zeros((n_groups, n_columns))
    if n_rows == 0 or n_groups == 0:
        return out
    order = np.argsort(codes, kind="stable")
    codes_sorted = codes[order]
    sizes = np.bincount(codes_sorted, minlength=n_groups)
    starts = np.zeros(n_groups, dtype=np.int64)
    np.cumsum(sizes[:-1], out=starts[1:])
    width = int(sizes.max())
    dense = n_groups * width <= 2 * n_rows + 1024
    if dense:
        slot = np.arange(n_rows, dtype=np.int64) - starts[codes_sorted]
        row_starts = np.arange(n_groups, dtype=np.int64) * width
    for j in range(n_columns):
        column = values[order, j]
        valid = ~np.isnan(column)
        n = np.bincount(codes_sorted, weights=valid, minlength=n_groups)
        if dense:
            grid = np.full((n_groups, width), np.nan)
            grid[codes_sorted, slot] = column
            grid.sort(axis=1)  # NaN sort last
            flat, first = grid.ravel(), row_starts
        else:
            flat, first = column[np.lexsort((column, codes_sorted))], starts
        with np.errstate(invalid="ignore", divide="ignore"):
            for name, q in (("median", 0.5), *((quantile_name(q), q) for q in quantiles)):
                out[name][:, j] = _sorted_quantile(flat, first, n, q)
            total = np.bincount(codes_sorted, weights=np.where(valid, column, 0.0), minlength=n_groups)
            mean = np.where(n > 0, total / n, np.nan)
            deviation = np.where(valid, column - mean[codes_sorted], 0.0)
            squares = np.bincount(codes_sorted, weights=deviation * deviation, minlength=n_groups)
            out["mean"][:, j] = mean
            out["std"][:, j] = np.where(n > 1, np.sqrt(squares / (n - 1)), np.nan)
        out["n"][:, j] = n
    return out


def _sorted_quantile(flat: np.ndarray, first: np.ndarray, n: np.ndarray, q: float) -> np.ndarray:
    """NumPy's linear quantile of each group, read off group-contiguous sorted values.

    Interpolates like :func:`numpy.quantile` (``a + (b-a)·t`` below t=0.5, ``b - (b-a)·(1-t)``
    from there); between a finite value and an infinity the result is the infinity, and
    equal infinities stay infinite (NumPy returns NaN for both).
    """
    position = (n - 1) * q
    low = np.floor(position)
    t = position - low
    has = n > 0
    low_index = first + np.where(has, low, 0).astype(np.int64)
    high_index = first + np.where(has, np.minimum(low + 1, n - 1), 0).astype(np.int64)
    last = len(flat) - 1
    a = flat[np.minimum(low_index, last)]
    b = flat[np.minimum(high_index, last)]
    difference = b - a
    value = np.where(t >= 0.5, b - difference * (1 - t), a + difference * t)
    value = np.where(a == b, a, value)
    # Towards an infinity the interpolation is that infinity (NumPy gives NaN from inf - inf).
    value = np.where(np.isinf(b) & np.isfinite(a) & (t > 0), b, value)
    value = np.where(np.isinf(a) & np.isfinite(b), a, value)
    return np.where(has, value, np.nan)


def curve_stats(metrics: pd.DataFrame, quantiles: Sequence[float] = DEFAULT_QUANTILES) -> pd.DataFrame:
    """Statistics over seeds of every metric at every evaluation point of every setting.

    One row per (``setting_id``, ``epoch``); columns ``<metric>_<stat>`` for each
    metric of the metrics table and each name of :func:`stat_names`.
    """
    metrics_names = metric_columns(metrics)
    stats = stat_names(quantiles)
    if metrics.empty:
        return pd.DataFrame(columns=["setting_id", "epoch", *(f"{m}_{s}" for m in metrics_names for s in stats)])
    setting = metrics["setting_id"]
    setting_codes = setting.cat.codes.to_numpy().astype(np.int64)
    epochs, epoch_codes = np.unique(metrics["epoch"].to_numpy(), return_inverse=True)
    keys, codes = np.unique(setting_codes * len(epochs) + epoch_codes, return_inverse=True)
    values = metrics[metrics_names].to_numpy(dtype=np.float64)
    result = group_stats(codes, values, len(keys), quantiles)
    columns: dict[str, object] = {
        "setting_id": np.asarray(setting.cat.categories, dtype=object)[keys // len(epochs)],
        "epoch": epochs[keys % len(epochs)],
    }
    for j, metric in enumerate(metrics_names):
        for name in stats:
            column = result[name][:, j]
            columns[f"{metric}_{name}"] = column.astype(np.int64) if name == "n" else column
    return pd.DataFrame(columns)
