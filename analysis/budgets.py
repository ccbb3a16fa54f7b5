"""Tuning budgets: what k trials of tuning buy an optimizer, and what they cost.

A *trial* is one hyperparameter setting the tuner tried within a (problem,
optimizer): one setting (a run spec minus its seed), all its seeds together.
For a search that is one drawn point (the runs sharing a ``trial`` number: a
drawn point's seeds, and AlgoPerf's studies of it, share its setting); for a
grid every setting is a trial, and the grid is read as a pool of equally likely
choices, as Dodge et al. (2019) read theirs. A ``trial`` number shared by two
settings of one (problem, optimizer) means a grid axis crossed with the search
(the sweep numbers the draws again for every grid cell, e.g. every schedule),
so those are two trials, not one.

A trial's *validation value* is the summary's median over its seeds of the
selection criterion (``final_valid`` or ``best_valid``), its *test value* the
matching ``final_test`` / ``best_test`` median; a diverged seed counts as the
worst value (:mod:`analysis.tables`), so a mostly diverged trial is worst. The
``N`` trials with at least one finished (completed or diverged) run form the
pool; unfinished ones have no value and are left out of it.

Expected best of k (Dodge et al., "Show Your Work", EMNLP 2019): k trials drawn
with replacement from the pool, the best by validation kept. With the pool's
validation values sorted so that v(1) is the worst and v(N) the best,
``E[best of k] = Σ_i v(i) [(i/N)^k − ((i−1)/N)^k]``, exactly; its spread is
the standard deviation with the same weights (Dodge et al. report mean ± std).
The test value is that of the trial the k draws choose by validation: the same
weights on the test values ordered by validation. Trials tied in validation are
one outcome whose test value is the mean of theirs: the expected test value is
that of a uniformly random choice among the tied draws; the spread leaves out
the spread within a tied group. ``valid_median`` is the median of the best of
k (the worst value whose probability of not being beaten is at least ½).

Every trial has a positive weight for every k ((i^k − (i−1)^k) / N^k > 0), so
one infinite value makes :func:`expected_best_of_k` worst for every k and its
spread undefined (NaN): there is a chance, however small, that all k draws
diverge. Infinities are handled apart from the weighted sum (no 0 · ∞, no NaN
warning). The tables would then read ∞ for nearly every learning-rate search
(a few large rates always diverge), so :func:`tuning_budgets` first puts a
diverged trial (a non-finite value) at the floor of its problem's scale: the
worst finite value any trial of that problem measured, with any optimizer.
It stays worst (no trial that trained ranks below it, and it is never chosen
while a finite trial is drawn), and the expectation and spread stay finite;
``floored`` counts such trials beside each budget.

Budgets (Crowded Valley, Schmidt, Schneider & Hennig 2021): *one-shot* is the
trial whose optimizer hyperparameters are the optimizer's defaults (numbers
compared with ``math.isclose``, relative 1e-9; hyperparameters the trial does
not record are not compared; several matching trials, e.g. one per schedule,
give their mean); *small* and *large* are the expected best of 25 and 50
trials (Crowded Valley's random-search budgets; ``extrapolated`` when the pool
has fewer trials, drawn with replacement then); *best* is the best trial of the
pool, the limit k → ∞.

Compute: per run, the last evaluated epoch and the last ``time`` of its metrics
(the trainer's clock of training, without evaluations; not Slurm's accounting);
runs without metrics add nothing. Beside one-shot: its trial's compute; beside
small and large: k × the mean compute of a pool trial (the expected cost of k
trials); beside best: everything the (problem, optimizer) spent, unfinished
trials included.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from analysis.collect import flatten_spec
from analysis.labels import settings_table
from analysis.selection import check_criterion

#: Crowded Valley's small and large budgets: trials of random search.
SMALL = 25
LARGE = 50
#: The curves run from k = 1 to max(N, CURVE_TRIALS).
CURVE_TRIALS = LARGE
#: Relative tolerance of the default-hyperparameter comparison.
DEFAULT_RTOL = 1e-9
GROUP = ["problem", "optimizer"]
BUDGETS = ("one-shot", "small", "large", "best")
CURVE_COLUMNS = [*GROUP, "metric", "k", "expected_valid", "valid_std", "valid_median", "expected_test", "test_std",
                 "trials", "beyond"]
TRIAL_COLUMNS = [*GROUP, "setting_id", "label", "trial", "metric", "valid", "test", "finished", "runs", "epochs",
                 "device_seconds"]
SUMMARY_COLUMNS = [*GROUP, "metric", "criterion", "budget", "k", "valid", "valid_std", "valid_median", "test",
                   "test_std", "trials", "runs", "epochs", "device_seconds", "pool", "floored", "extrapolated",
                   "setting_id", "label", "note"]
NO_DEFAULTS = "no defaults known"
NO_DEFAULT_TRIAL = "no default trial"
NO_TRIAL = "no finished trial"


# ----------------------------------------------------------------------------- the exact expectation


def expected_best_of_k(valid: Sequence[float], test: Sequence[float], ks: Sequence[int],
                       maximize: bool) -> dict[str, np.ndarray]:
    """The best of k trials drawn with replacement from ``valid`` (and its test value), for each k of ``ks``.

    ``maximize`` says whether a larger validation value is better (accuracy) or a
    smaller one (loss); a NaN validation value counts as the worst. Returns arrays
    over ``ks``: ``expected_valid``, ``valid_std``, ``valid_median``,
    ``expected_test`` and ``test_std`` (see the module docstring).
    """
    ks = np.asarray(ks, dtype=np.float64)
    sign = 1.0 if maximize else -1.0
    goodness = sign * np.asarray(valid, dtype=np.float64)
    goodness = np.where(np.isnan(goodness), -np.inf, goodness)
    test = np.asarray(test, dtype=np.float64)
    n = len(goodness)
    shape = len(ks)
    if n == 0:
        empty = np.full(shape, np.nan)
        return {"expected_valid": empty, "valid_std": empty.copy(), "valid_median": empty.copy(),
                "expected_test": empty.copy(), "test_std": empty.copy()}
    values, inverse, counts = np.unique(goodness, return_inverse=True, return_counts=True)
    cdf = (np.cumsum(counts) / n)[None, :] ** ks[:, None]  # P(best of k ≤ values[j])
    weights = np.diff(cdf, axis=1, prepend=0.0)  # P(best of k = values[j]); ties summed
    expected, std = _weighted(values, weights)
    median = values[np.argmax(cdf >= 0.5, axis=1)]
    expected_test, test_std = _weighted(_tie_means(test, inverse, len(values)), weights)
    return {"expected_valid": sign * expected, "valid_std": std, "valid_median": sign * median,
            "expected_test": expected_test, "test_std": test_std}


def _weighted(values: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of value j with probability ``weights[:, j]``, for each row of ``weights``.

    Every weight is positive in exact arithmetic, so a non-finite value decides the
    mean (−∞ or +∞; NaN when both or a NaN) and leaves the spread undefined (NaN);
    no infinity is ever multiplied by a weight.
    """
    rows = weights.shape[0]
    finite = np.isfinite(values)
    if not finite.all():
        odd = values[~finite]
        fill = math.nan if np.isnan(odd).any() or odd.max() > 0 > odd.min() else float(odd[0])
        return np.full(rows, fill), np.full(rows, np.nan)
    mean = weights @ values
    variance = (weights * (values[None, :] - mean[:, None]) ** 2).sum(axis=1)
    return mean, np.sqrt(np.maximum(variance, 0.0))


def _tie_means(test: np.ndarray, inverse: np.ndarray, groups: int) -> np.ndarray:
    """Per group of trials tied in validation, the mean of their test values (NaN with a NaN; ±∞ with one sign)."""
    inverse = np.asarray(inverse).reshape(-1)
    means = np.full(groups, np.nan)
    for j in range(groups):
        members = test[inverse == j]
        infinite = set(members[np.isinf(members)])
        if np.isfinite(members).all():
            means[j] = members.mean()
        elif not np.isnan(members).any() and len(infinite) == 1:
            means[j] = infinite.pop()
    return means


def best_trial(valid: Sequence[float], test: Sequence[float], maximize: bool) -> dict[str, float]:
    """The limit k → ∞: the best validation value and the mean test value of the trials tied at it."""
    sign = 1.0 if maximize else -1.0
    goodness = sign * np.asarray(valid, dtype=np.float64)
    goodness = np.where(np.isnan(goodness), -np.inf, goodness)
    if not len(goodness):
        return {"valid": math.nan, "test": math.nan}
    tied = goodness == goodness.max()
    test = _tie_means(np.asarray(test, dtype=np.float64)[tied], np.zeros(int(tied.sum()), dtype=int), 1)[0]
    return {"valid": float(sign * goodness.max()), "test": float(test)}


# ----------------------------------------------------------------------------- trials and their compute


def run_compute(runs: pd.DataFrame, metrics: pd.DataFrame) -> pd.DataFrame:
    """Per run (index ``run_id``): ``epochs`` (the last evaluated epoch, 0 without metrics), ``device_seconds``.

    ``device_seconds`` is the last logged ``time`` (training seconds on the trainer's
    clock); NaN for a run without any.
    """
    index = pd.Index(runs["run_id"], name="run_id")
    out = pd.DataFrame({"epochs": np.zeros(len(index)), "device_seconds": np.full(len(index), np.nan)}, index=index)
    if metrics.empty:
        return out
    frame = pd.DataFrame({"run_id": metrics["run_id"].astype(object).to_numpy(),
                          "epoch": metrics["epoch"].to_numpy(dtype=np.float64)})
    frame["time"] = metrics["time"].to_numpy(dtype=np.float64) if "time" in metrics.columns else np.nan
    last = frame.groupby("run_id", sort=False)[["epoch", "time"]].max()
    out["epochs"] = last["epoch"].reindex(index).fillna(0.0).to_numpy()
    out["device_seconds"] = last["time"].reindex(index).to_numpy()
    return out


def trials_table(runs: pd.DataFrame, metrics: pd.DataFrame, summary: pd.DataFrame,
                 criterion: str = "final_valid") -> pd.DataFrame:
    """One row per trial (setting of ``summary``): its values, its ``trial`` number where drawn, its compute.

    ``runs`` counts the runs with at least one evaluation point (the ones that spent
    measurable compute).
    """
    check_criterion(criterion)
    if summary.empty:
        return pd.DataFrame(columns=TRIAL_COLUMNS)
    split = criterion.split("_", 1)[0]
    compute = run_compute(runs, metrics)
    per_run = pd.DataFrame({
        "setting_id": runs["setting_id"].to_numpy(dtype=object),
        "runs": (runs["points"].to_numpy() > 0).astype(np.int64),
        "epochs": compute["epochs"].to_numpy(),
        "device_seconds": compute["device_seconds"].to_numpy(),
    })
    grouped = per_run.groupby("setting_id", sort=False)
    spent = pd.DataFrame({"runs": grouped["runs"].sum(), "epochs": grouped["epochs"].sum(),
                          "device_seconds": grouped["device_seconds"].sum(min_count=1)})
    if "trial" in runs.columns:
        numbers = runs[["setting_id", "trial"]].dropna().drop_duplicates("setting_id").set_index("setting_id")["trial"]
    else:
        numbers = pd.Series(dtype="Int64")
    ids = summary["setting_id"]
    return pd.DataFrame({
        "problem": summary["problem"].to_numpy(dtype=object),
        "optimizer": summary["optimizer"].to_numpy(dtype=object),
        "setting_id": ids.to_numpy(dtype=object),
        "label": summary["label"].to_numpy(dtype=object) if "label" in summary.columns else None,
        "trial": pd.array(ids.map(numbers).to_numpy(dtype=object), dtype="Int64"),
        "metric": summary["metric"].to_numpy(dtype=object),
        "valid": summary[f"{criterion}_median"].to_numpy(dtype=np.float64),
        "test": summary[f"{split}_test_median"].to_numpy(dtype=np.float64),
        "finished": summary["n"].to_numpy() > 0,
        "runs": ids.map(spent["runs"]).fillna(0).to_numpy(dtype=np.int64),
        "epochs": ids.map(spent["epochs"]).fillna(0.0).to_numpy(dtype=np.float64),
        "device_seconds": ids.map(spent["device_seconds"]).to_numpy(dtype=np.float64),
    })[TRIAL_COLUMNS]


# ----------------------------------------------------------------------------- one-shot: the defaults


def default_settings(runs: pd.DataFrame, optimizer: str, defaults: Mapping[str, Any]) -> list[str]:
    """The settings of ``optimizer`` in ``runs`` whose ``optimizer.*`` hyperparameters equal ``defaults``.

    ``defaults`` maps hyperparameter names to values (``{"lr": 0.01, "momentum": 0.0}``,
    nested mappings and lists as in a config file; ``name`` is ignored). Only the ones
    a setting records are compared, and at least one must be.
    """
    wanted = {k: v for k, v in flatten_spec({"optimizer": dict(defaults)}).items() if k != "optimizer.name"}
    settings = settings_table(runs)
    chosen = []
    for setting_id, row in zip(settings.index, settings.to_dict("records"), strict=True):
        if row.get("optimizer") != optimizer:
            continue
        compared = [(row[key], value) for key, value in wanted.items() if key in row and not _missing(row[key])]
        if compared and all(same_value(have, want) for have, want in compared):
            chosen.append(str(setting_id))
    return chosen


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def same_value(have: Any, want: Any) -> bool:
    """Equal hyperparameter values: numbers within a relative 1e-9, lists (or their JSON text) elementwise."""
    have, want = _parsed(have), _parsed(want)
    if isinstance(have, list) or isinstance(want, list):
        return (isinstance(have, list) and isinstance(want, list) and len(have) == len(want)
                and all(same_value(a, b) for a, b in zip(have, want, strict=True)))
    if isinstance(have, bool | np.bool_) or isinstance(want, bool | np.bool_):
        return isinstance(have, bool | np.bool_) and isinstance(want, bool | np.bool_) and bool(have) == bool(want)
    if isinstance(have, int | float | np.number) and isinstance(want, int | float | np.number):
        return math.isclose(float(have), float(want), rel_tol=DEFAULT_RTOL, abs_tol=0.0)
    return have == want


def _parsed(value: Any) -> Any:
    """A list's JSON text (how the runs table keeps lists) as the list; a tuple as a list."""
    if isinstance(value, str) and value.startswith("["):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return list(value) if isinstance(value, tuple) else value


# ----------------------------------------------------------------------------- the tables


def tuning_budgets(runs: pd.DataFrame, metrics: pd.DataFrame, summary: pd.DataFrame, criterion: str = "final_valid",
                   defaults: Mapping[str, Mapping[str, Any]] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(budgets, budget_summary)``: the expected-best-of-k curves and the four budgets per (problem, optimizer).

    ``budgets`` has a row per (problem, optimizer) and k = 1 … max(N, 50)
    (:data:`CURVE_COLUMNS`; ``beyond``: k > N, drawn with replacement); ``budget_summary``
    a row per (problem, optimizer) and budget of :data:`BUDGETS` (:data:`SUMMARY_COLUMNS`).
    ``defaults`` maps an optimizer name to its default hyperparameters.
    """
    trials = trials_table(runs, metrics, summary, criterion)
    floored = ~np.isfinite(trials["valid"].to_numpy(dtype=np.float64)) & trials["finished"].to_numpy(dtype=bool)
    trials = _floored(trials)
    defaults = defaults or {}
    curves, rows = [], []
    for (problem, optimizer), group in trials.groupby(GROUP, sort=False):
        metric = str(group["metric"].iloc[0])
        maximize = metric == "accuracy"
        pool = group[group["finished"]]
        n = len(pool)
        if n:
            ks = np.arange(1, max(n, CURVE_TRIALS) + 1)
            result = expected_best_of_k(pool["valid"], pool["test"], ks, maximize)
            curves.append(pd.DataFrame({"problem": problem, "optimizer": optimizer, "metric": metric, "k": ks,
                                        **result, "trials": n, "beyond": ks > n}))
        base = {"problem": problem, "optimizer": optimizer, "metric": metric, "criterion": criterion, "pool": n,
                "floored": int(floored[group.index].sum())}
        rows.append({**base, **_one_shot(runs, group, str(optimizer), defaults, maximize)})
        for budget, k in (("small", SMALL), ("large", LARGE)):
            rows.append({**base, **_budget(pool, budget, k, maximize)})
        rows.append({**base, **_best(group, pool, maximize)})
    budgets = pd.concat(curves, ignore_index=True)[CURVE_COLUMNS] if curves else pd.DataFrame(columns=CURVE_COLUMNS)
    table = pd.DataFrame.from_records(rows).reindex(columns=SUMMARY_COLUMNS) if rows \
        else pd.DataFrame(columns=SUMMARY_COLUMNS)
    return budgets, table


def _floored(trials: pd.DataFrame) -> pd.DataFrame:
    """Non-finite validation and test values at the worst finite value of their problem (any optimizer)."""
    trials = trials.copy()
    for _, group in trials.groupby("problem", sort=False):
        maximize = str(group["metric"].iloc[0]) == "accuracy"
        for column in ("valid", "test"):
            values = group[column].to_numpy(dtype=np.float64)
            finite = values[np.isfinite(values)]
            if len(finite):
                floor = finite.min() if maximize else finite.max()
                trials.loc[group.index[~np.isfinite(values)], column] = floor
    return trials


def _cost(trials: pd.DataFrame, k: float) -> dict[str, float]:
    """Runs, epochs and device seconds of k trials at the mean of ``trials``."""
    if trials.empty:
        return {"runs": math.nan, "epochs": math.nan, "device_seconds": math.nan}
    seconds = trials["device_seconds"].to_numpy(dtype=np.float64)
    return {"runs": k * float(trials["runs"].mean()), "epochs": k * float(trials["epochs"].mean()),
            "device_seconds": k * float(np.mean(seconds)) if np.isfinite(seconds).any() else math.nan}


def _one_shot(runs: pd.DataFrame, group: pd.DataFrame, optimizer: str, defaults: Mapping[str, Mapping[str, Any]],
              maximize: bool) -> dict[str, Any]:
    row: dict[str, Any] = {"budget": "one-shot", "k": 1, "trials": 1, "extrapolated": False}
    if optimizer not in defaults:
        return {**row, "note": f"{NO_DEFAULTS} for {optimizer}"}
    matched = set(default_settings(runs[runs["problem"] == group["problem"].iloc[0]], optimizer, defaults[optimizer]))
    chosen = group[group["setting_id"].isin(matched)]
    finished = chosen[chosen["finished"]]
    if chosen.empty:
        return {**row, "note": NO_DEFAULT_TRIAL}
    if finished.empty:
        return {**row, **_cost(chosen, 1), "setting_id": chosen["setting_id"].iloc[0],
                "label": chosen["label"].iloc[0], "note": f"{NO_DEFAULT_TRIAL} finished"}
    result = expected_best_of_k(finished["valid"], finished["test"], [1], maximize)
    note = f"mean of {len(finished)} default trials" if len(finished) > 1 else ""
    return {**row, "valid": result["expected_valid"][0], "valid_std": result["valid_std"][0],
            "valid_median": result["valid_median"][0], "test": result["expected_test"][0],
            "test_std": result["test_std"][0], **_cost(finished, 1), "setting_id": finished["setting_id"].iloc[0],
            "label": finished["label"].iloc[0], "note": note}


def _budget(pool: pd.DataFrame, budget: str, k: int, maximize: bool) -> dict[str, Any]:
    row: dict[str, Any] = {"budget": budget, "k": k, "trials": k, "extrapolated": k > len(pool)}
    if pool.empty:
        return {**row, "note": NO_TRIAL}
    result = expected_best_of_k(pool["valid"], pool["test"], [k], maximize)
    return {**row, **{name.removeprefix("expected_"): float(values[0]) for name, values in result.items()},
            **_cost(pool, k), "note": f"extrapolated from {len(pool)} trials" if k > len(pool) else ""}


def _best(group: pd.DataFrame, pool: pd.DataFrame, maximize: bool) -> dict[str, Any]:
    """The best trial of the pool (k → ∞) beside everything the group spent."""
    seconds = group["device_seconds"].to_numpy(dtype=np.float64)
    spent = {"trials": len(group), "runs": float(group["runs"].sum()), "epochs": float(group["epochs"].sum()),
             "device_seconds": float(np.nansum(seconds)) if np.isfinite(seconds).any() else math.nan}
    row: dict[str, Any] = {"budget": "best", "k": len(pool), "extrapolated": False, **spent}
    if pool.empty:
        return {**row, "note": NO_TRIAL}
    best = best_trial(pool["valid"], pool["test"], maximize)
    sign = 1.0 if maximize else -1.0
    scores = np.where(np.isnan(pool["valid"].to_numpy(dtype=np.float64)), -np.inf, sign * pool["valid"].to_numpy())
    top = pool.iloc[int(np.argmax(scores))]
    tied = int((scores == scores.max()).sum())
    return {**row, "valid": best["valid"], "valid_std": 0.0, "valid_median": best["valid"], "test": best["test"],
            "test_std": 0.0, "setting_id": top["setting_id"], "label": top["label"],
            "note": f"{tied} trials tied; test: their mean" if tied > 1 else ""}


def has_tuning(budget_summary: pd.DataFrame | None) -> bool:
    """Whether some (problem, optimizer) has two trials or more (else there is no tuning to show)."""
    if budget_summary is None or budget_summary.empty or "pool" not in budget_summary.columns:
        return False
    return bool((pd.to_numeric(budget_summary["pool"], errors="coerce") >= 2).any())
