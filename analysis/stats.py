"""Statistics over the seeds of a setting: median, mean, std, count and quantiles.

:func:`group_stats` is the one vectorised kernel: it sorts every group's values
(a dense ``groups × seeds`` sort when the groups are about equally large, the
usual case, else one :func:`numpy.lexsort`) and reads quantiles off the sorted
values with NumPy's default ("linear") definition. NaN values are left out of
every statistic of their own group only; ``n`` says how many values were used.
There is no Python loop over groups. :func:`bootstrap_median_ci` adds a
percentile-bootstrap confidence interval of each group's median.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from analysis.collect import metric_columns

DEFAULT_QUANTILES: tuple[float, ...] = (0.25, 0.75)
#: Upper bound on the resample indices :func:`bootstrap_median_ci` holds at once (resamples are drawn in chunks).
BOOTSTRAP_CHUNK = 1 << 22
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
    from there); between a finite value and an infinity the result is the infinity, equal
    infinities stay infinite, and a quantile that falls on a value is that value even with an
    infinity next to it (NumPy returns NaN for all three, e.g. the median of ``[1, 2, inf]``).
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
    value = np.where((a == b) | (t == 0), a, value)  # at t = 0 NumPy's inf · 0 would give NaN
    # Towards an infinity the interpolation is that infinity (NumPy gives NaN from inf - inf).
    value = np.where(np.isinf(b) & np.isfinite(a) & (t > 0), b, value)
    value = np.where(np.isinf(a) & np.isfinite(b), a, value)
    return np.where(has, value, np.nan)


def bootstrap_median_ci(
    codes: np.ndarray,
    values: np.ndarray,
    n_groups: int,
    confidence: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Percentile-bootstrap confidence interval of each group's median: ``(low, high)``.

    Groups as in :func:`group_stats`; the bounds have the shape of ``values`` with rows
    replaced by groups (``n_groups`` for 1-D values, ``n_groups × columns`` else). NaN
    values are left out of their group; a group with fewer than two values has NaN bounds
    (one value says nothing about the spread). Infinities are values like any other, so a
    resample whose median is infinite makes the bound infinite rather than NaN; the rare
    resample whose two middle values are ``-inf`` and ``+inf`` has no median and is left out.

    Each resample draws ``n`` positions into the group's sorted values as
    ``floor(u · n)`` with ``u`` from ``numpy.random.default_rng(seed).random`` — for one
    group of one column, ``resamples × n`` uniforms in row order — and the bounds are the
    linear ``(1 ± confidence) / 2`` quantiles of the resample medians. Groups of equal size
    are resampled together (a loop over the distinct sizes, not over groups), in chunks of
    resamples that keep about :data:`BOOTSTRAP_CHUNK` indices in memory.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie strictly between 0 and 1, e.g. 0.95; got {confidence!r}.")
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1; got {resamples!r}.")
    codes = np.asarray(codes, dtype=np.int64)
    values = np.asarray(values, dtype=np.float64)
    one_column = values.ndim == 1
    if one_column:
        values = values[:, None]
    n_rows, n_columns = values.shape
    if len(codes) != n_rows:
        raise ValueError(f"bootstrap_median_ci got {len(codes)} group codes for {n_rows} rows.")
    low = np.full((n_groups, n_columns), np.nan)
    high = np.full((n_groups, n_columns), np.nan)
    rng = np.random.default_rng(seed)
    tail = (1.0 - confidence) / 2
    for j in range(n_columns):
        column = values[:, j]
        valid = ~np.isnan(column)
        group, column = codes[valid], column[valid]
        order = np.lexsort((column, group))
        group, column = group[order], column[order]
        sizes = np.bincount(group, minlength=n_groups)
        starts = np.zeros(n_groups, dtype=np.int64)
        np.cumsum(sizes[:-1], out=starts[1:])
        for size in np.unique(sizes[sizes >= 2]):
            members = np.flatnonzero(sizes == size)
            sample = column[starts[members, None] + np.arange(size)]  # members × size, each row sorted
            medians = _resample_medians(sample, resamples, rng)
            medians.sort(axis=1)  # NaN (no median) sorts last
            counted = (~np.isnan(medians)).sum(axis=1)
            first = np.arange(len(members), dtype=np.int64) * resamples
            with np.errstate(invalid="ignore"):
                low[members, j] = _sorted_quantile(medians.ravel(), first, counted, tail)
                high[members, j] = _sorted_quantile(medians.ravel(), first, counted, 1.0 - tail)
    if one_column:
        return low[:, 0], high[:, 0]
    return low, high


def _resample_medians(sample: np.ndarray, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """``groups × resamples`` medians of bootstrap resamples of each row of ``sample`` (rows sorted)."""
    groups, size = sample.shape
    middle = [(size - 1) // 2, size // 2]
    medians = np.empty((groups, resamples))
    rows = np.arange(groups)[None, :, None]
    chunk = max(1, BOOTSTRAP_CHUNK // (groups * size))
    for start in range(0, resamples, chunk):
        count = min(chunk, resamples - start)
        positions = np.minimum((rng.random((count, groups, size)) * size).astype(np.int64), size - 1)
        # The rows are sorted, so the middle positions of a resample point at its middle values.
        positions.partition(middle, axis=2)
        pair = sample[rows, positions[:, :, middle]]
        with np.errstate(invalid="ignore"):
            medians[:, start : start + count] = (0.5 * pair[..., 0] + 0.5 * pair[..., 1]).T
    return medians


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
