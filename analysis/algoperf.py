"""AlgoPerf-style scoring: time to a target, performance profiles and their normalised area.

A run *reaches* a problem's target at its first evaluation point whose metric is at
least the target (a metric named ``*accuracy``, maximised) or at most it (``*loss``,
minimised). Only runs with a result (completed or diverged, with evaluation points)
count; one that never reaches the target has infinite steps, time and epochs, and so
ranks last, as a diverged run does in :mod:`analysis.tables`.

A *submission* (an optimizer, tuned over its settings) takes, per problem, the best
median time of its settings. With ``r = t / t_best`` per problem, its performance
profile is ``ρ(τ)`` = share of problems with ``r ≤ τ``, and its score the area under
``ρ`` from ``τ = 1`` to ``r_max`` divided by ``r_max − 1`` (1: fastest everywhere, 0:
never within ``r_max`` of the fastest). Problems no submission reached are left out.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np
import pandas as pd

from analysis.collect import metric_columns
from analysis.labels import settings_table
from analysis.stats import group_stats
from analysis.tables import RESULT_STATES, setting_order

log = logging.getLogger(__name__)

R_MAX = 4.0
HIT_COLUMNS = ("step_to_target", "time_to_target", "epoch_to_target")


def maximised(metric: str) -> bool:
    """``True`` for an accuracy (higher is better), ``False`` for a loss; a one-sentence ValueError otherwise."""
    if metric.endswith("accuracy"):
        return True
    if metric.endswith("loss"):
        return False
    raise ValueError(f"cannot tell whether {metric!r} is to be maximised; target metrics end in 'accuracy' or 'loss'.")


def target_metrics(primary: Mapping[str, str], split: str = "valid") -> dict[str, str]:
    """Problem → metric column of its targets: ``valid_accuracy`` or ``valid_loss`` after its primary metric."""
    return {problem: f"{split}_{kind}" for problem, kind in primary.items()}


def run_hits(
    runs: pd.DataFrame, metrics: pd.DataFrame, targets: Mapping[str, float], metric: Mapping[str, str]
) -> pd.DataFrame:
    """Per run with a result on a problem with a target: where it first reached the target.

    Columns ``run_id``, ``setting_id``, ``problem``, ``reached`` and the ``step``, ``time``
    and ``epoch`` of the first evaluation point at or beyond the target (``inf`` when never
    reached; NaN where the run did not log that column). ``metric`` maps each problem of
    ``targets`` to a column of ``metrics``.
    """
    missing = [p for p in targets if p not in metric]
    if missing:
        raise ValueError(f"problem {missing[0]!r} has a target but no metric to compare it with.")
    points = runs["points"].to_numpy() if "points" in runs.columns else np.ones(len(runs))
    chosen = runs["state"].isin(RESULT_STATES).to_numpy() & (points > 0) & runs["problem"].isin(list(targets))
    table = runs.loc[chosen, ["run_id", "setting_id", "problem"]].reset_index(drop=True)
    table["reached"] = False
    for column in HIT_COLUMNS:
        table[column] = np.inf
    if table.empty or metrics.empty:
        return table
    needed = {metric[p] for p in pd.unique(table["problem"])}
    absent = sorted(needed - set(metrics.columns))
    if absent:
        raise ValueError(f"no run logged the target metric {absent[0]!r}; "
                         f"the runs logged {', '.join(metric_columns(metrics))}.")

    # Each metrics row: its run's row in ``table`` (-1 for a run without a result) and that run's problem.
    row = pd.Index(table["run_id"]).get_indexer(metrics["run_id"].cat.categories)[metrics["run_id"].cat.codes]
    counted = np.flatnonzero(row >= 0)
    row = row[counted]
    problem = table["problem"].to_numpy(dtype=object)[row]
    value = np.full(len(counted), np.nan)
    sign = np.ones(len(counted))  # reached where sign·value <= sign·target
    target = np.full(len(counted), np.nan)
    for name in pd.unique(problem):
        rows = problem == name
        value[rows] = metrics[metric[name]].to_numpy(dtype=np.float64)[counted[rows]]
        sign[rows] = -1.0 if maximised(metric[name]) else 1.0
        target[rows] = targets[name]
    with np.errstate(invalid="ignore"):
        hit = np.flatnonzero(sign * value <= sign * target)  # NaN never reaches it
    epoch = metrics["epoch"].to_numpy(dtype=np.float64)[counted]
    hit = hit[np.lexsort((epoch[hit], row[hit]))]
    first = hit[np.r_[True, row[hit][1:] != row[hit][:-1]]] if len(hit) else hit
    where = row[first]
    table.loc[where, "reached"] = True
    for column, source in zip(HIT_COLUMNS, ("step", "time", "epoch"), strict=True):
        found = metrics[source].to_numpy(dtype=np.float64)[counted[first]] if source in metrics.columns else np.nan
        table.loc[where, column] = found
    return table


def targets_table(
    runs: pd.DataFrame,
    metrics: pd.DataFrame,
    targets: Mapping[str, float],
    metric: Mapping[str, str],
    labels: pd.Series,
) -> pd.DataFrame:
    """One row per setting of a problem with a target: how many of its runs reached it, and how fast.

    Columns ``problem``, ``optimizer``, ``setting_id``, ``label``, ``metric``, ``target``,
    ``n`` (runs with a result), ``reached``, ``steps_to_target_median``,
    ``time_to_target_median`` and ``epochs_to_target_median``: medians over the runs, a
    run that did not reach the target counting as infinitely slow, so a median is ``inf``
    when the median run did not reach it (half or more, by :func:`analysis.stats.group_stats`).
    """
    hits = run_hits(runs, metrics, targets, metric)
    targeted = set(runs.loc[runs["problem"].isin(list(targets)), "setting_id"])
    order = [s for s in setting_order(runs, labels) if s in targeted]
    first = settings_table(runs).reindex(order)
    problems = first["problem"].to_numpy(dtype=object)
    table = pd.DataFrame({
        "problem": problems,
        "optimizer": first["optimizer"].to_numpy(dtype=object),
        "setting_id": pd.Series(order, dtype=object),
        "label": labels.reindex(order).to_numpy(dtype=object),
        "metric": [metric[p] for p in problems],
        "target": np.array([targets[p] for p in problems], dtype=np.float64),
    })
    codes = pd.Index(order).get_indexer(hits["setting_id"])
    stats = group_stats(codes, hits[list(HIT_COLUMNS)].to_numpy(dtype=np.float64), len(order), ())
    # n counts the runs, not the values: a run that logged no time still counts in ``reached``.
    table["n"] = np.bincount(codes, minlength=len(order)).astype("int64")
    table["reached"] = np.bincount(codes, weights=hits["reached"].to_numpy(dtype=np.float64),
                                   minlength=len(order)).astype("int64")
    for j, name in enumerate(("steps_to_target_median", "time_to_target_median", "epochs_to_target_median")):
        table[name] = stats["median"][:, j]
    return table


def default_targets(summary: pd.DataFrame, metric_of_problem: Mapping[str, str]) -> dict[str, float]:
    """Per problem, the strictest valid value every tuned optimizer reached (its median best).

    For each optimizer, its best setting's ``best_valid_median``; the target is the worst of
    those over the optimizers, so every optimizer's best setting reaches it in the median run
    and the profiles rank how fast. An optimizer without a finite median (every setting
    diverged or without results) is left out of the choice; a problem with none gets no target.
    ``metric_of_problem`` must name the summary's metric on the valid split (``valid_accuracy``
    for an accuracy problem, ``valid_loss`` else); only its problems get a target.
    """
    targets: dict[str, float] = {}
    for problem, rows in summary.groupby("problem", sort=False):
        if problem not in metric_of_problem:
            continue
        expected = f"valid_{rows['metric'].iloc[0]}"
        if metric_of_problem[problem] != expected:
            raise ValueError(f"default targets of {problem!r} come from the summary's {expected!r}, "
                             f"not {metric_of_problem[problem]!r}; give that problem's target explicitly.")
        sign = -1.0 if maximised(expected) else 1.0  # minimise sign·value
        score = sign * rows["best_valid_median"].to_numpy(dtype=np.float64)
        finite = np.isfinite(score)
        if not finite.any():
            log.info("no default target for %s: no setting has a finite median best valid value", problem)
            continue
        best = pd.Series(score[finite]).groupby(rows["optimizer"].to_numpy(dtype=object)[finite]).min()
        targets[str(problem)] = float(sign * best.max())
    return targets


def submission_times(
    targets: pd.DataFrame, by: str = "optimizer", column: str = "time_to_target_median"
) -> pd.DataFrame:
    """Per (problem, submission): the fastest of its settings, i.e. the submission's tuned time.

    Columns ``problem``, ``submission`` (the value of ``by``), ``time`` (the minimum of
    ``column`` over the settings; ``inf`` when none reached the target), ``setting_id`` and
    ``label`` of the fastest setting (the first in table order on ties; of the first setting
    when none reached it).
    """
    time = targets[column].to_numpy(dtype=np.float64)
    frame = pd.DataFrame({
        "problem": targets["problem"].to_numpy(dtype=object),
        "submission": targets[by].to_numpy(dtype=object),
        "time": np.where(np.isnan(time), np.inf, time),
        "setting_id": targets["setting_id"].to_numpy(dtype=object),
        "label": targets["label"].to_numpy(dtype=object),
    })
    fastest = frame.groupby(["problem", "submission"], sort=False)["time"].idxmin()
    return frame.loc[fastest.to_numpy()].reset_index(drop=True)


def performance_profiles(
    times: pd.DataFrame, r_max: float = R_MAX, points: int = 400
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Performance profiles and scores of the submissions in ``times`` (``problem``, ``submission``, ``time``).

    ``r = t / min over submissions of t`` per problem (``r = 1`` for the fastest, also at
    ``t = 0``); a missing or NaN time counts as never reached (``r = inf``). Problems that
    no submission reached are left out (logged), so ``P`` counts the others.

    Returns ``profiles`` (``submission``, ``tau``, ``rho``) on a linear grid of ``points``
    values from 1 to ``r_max`` plus every ratio in that range (the steps of ``ρ``), and
    ``scores`` (``submission``, ``score``, ``problems`` = P, ``reached`` = problems with a
    finite time). The score is the exact area of the step function, not a sum over the grid:
    ``Σ_p max(r_max − max(r_p, 1), 0) / ((r_max − 1) · P)``; NaN when ``P = 0``.
    """
    if not r_max > 1.0:
        raise ValueError(f"r_max must be greater than 1, e.g. 4; got {r_max!r}.")
    submissions = list(pd.unique(times["submission"]))
    table = times.groupby(["problem", "submission"], sort=False)["time"].min().unstack("submission")
    t = table.reindex(columns=submissions).to_numpy(dtype=np.float64)  # problems × submissions
    t = np.where(np.isnan(t), np.inf, t)
    best = t.min(axis=1, initial=np.inf)
    unreached = ~np.isfinite(best)
    if unreached.any():
        log.info("performance profiles leave out %d problem(s) no submission reached: %s",
                 int(unreached.sum()), ", ".join(map(str, table.index[unreached])))
    t, best = t[~unreached], best[~unreached]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(t == best[:, None], 1.0, t / best[:, None])  # t/0 is inf for the slower ones
    n_problems = len(t)
    inside = ratio[(ratio >= 1.0) & (ratio <= r_max)]
    tau = np.unique(np.r_[np.linspace(1.0, r_max, points), inside])
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = (ratio[:, :, None] <= tau).sum(axis=0) / n_problems  # submissions × tau; NaN without problems
    profiles = pd.DataFrame({
        "submission": np.repeat(np.asarray(submissions, dtype=object), len(tau)),
        "tau": np.tile(tau, len(submissions)),
        "rho": rho.ravel(),
    })
    area = np.clip(r_max - np.maximum(ratio, 1.0), 0.0, None).sum(axis=0)
    scores = pd.DataFrame({
        "submission": pd.Series(submissions, dtype=object),
        "score": area / ((r_max - 1.0) * n_problems) if n_problems else np.full(len(submissions), np.nan),
        "problems": np.full(len(submissions), n_problems, dtype=np.int64),
        "reached": np.isfinite(ratio).sum(axis=0).astype(np.int64),
    })
    return profiles, scores
