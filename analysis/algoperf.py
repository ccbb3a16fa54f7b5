"""AlgoPerf's scoring: time to a target, the trial each study picks, performance profiles and scores.

A run *reaches* a problem's target at its first evaluation point whose metric is at
least the target (a metric named ``*accuracy``, maximised) or at most it (``*loss``,
minimised). Only runs with a result (completed or diverged, with evaluation points)
count; one that never reaches the target has infinite steps, time and epochs, and so
ranks last, as a diverged run does in :mod:`analysis.tables`.

AlgoPerf's rules, read from mlcommons/algorithmic-efficiency (``scoring/performance_profile.py``,
``scoring/score_submissions.py``, ``scoring/scoring_utils.py``), and what this module does:

* **Trial per study** (``get_best_trial_index``): for each trial of a study, the index of its
  first evaluation that reaches the target (``np.argmax`` of the reached flags); the study
  takes the trial with the smallest such *evaluation index* (``idxmin``: the first trial in
  its table, i.e. directory-listing order, on ties) and its time is that trial's
  ``accumulated_submission_time`` (the ``score`` column, ``time_col='score'``) at that
  evaluation; ``inf`` when no trial reached. So "earliest" is counted in evaluations, not in
  seconds: AlgoPerf evaluates every ``eval_period_time_sec`` of submission time, so its
  evaluation index is a coarse clock. :func:`study_table` does the same with our evaluation
  points, which are at epoch boundaries: the trial whose first hit has the smallest ``epoch``
  (``earliest='epoch'``, the default; ``'step'`` or ``'time'`` on request), ties going to the
  shorter time, then the lower ``trial`` number, then the earlier setting in table order (a
  deterministic stand-in for AlgoPerf's listing order), and reports that run's time.
* **Median over studies** (``get_workloads_time_to_target``): ``np.median`` of the studies'
  times, an unreached study counting as ``inf``; so the time is ``inf`` when the median study
  did not reach (2 of 3), and with an even number of studies the mean of the middle two (``inf``
  if either is). A study without any trial log is absent there; here a study whose runs have
  no result yet is listed (``trials = 0``) but not counted (:func:`study_times`).
* **Studies without a ``study``** (ordinary sweeps): each seed is a study (``study`` = the
  run's seed; runs without one are numbered by their position within their setting), and
  the settings are the trials: per seed the setting that reached the target earliest.
* **Workload table** (``compute_performance_profiles``): submissions × workloads; a time more
  than 4× the workload's fastest becomes ``inf``; ``r`` = time / fastest time of the workload.
  A workload no submission reached has fastest ``inf`` and ``r = inf/inf = NaN``, and
  ``rho`` counts ``r <= tau``, which is false for ``inf`` and NaN alike.
* **Denominator** (``rho``): ``(r <= tau).sum() / NUM_BASE_WORKLOADS``, the fixed number of
  workloads (8): every workload counts, reached or not, by anyone or not. Here ``P`` is every
  problem in the times table: a submission that never reached a problem (or has no time for
  it) gets ``r = inf`` there, so its ``ρ`` never reaches 1; a problem no submission reached
  gives every submission ``r = inf`` and stays in ``P`` (what AlgoPerf's NaN amounts to).
  One difference: a fastest time of 0 gives ``r = 1`` here (AlgoPerf's 0/0 is NaN).
* **Score** (``compute_leaderboard_score``): ``np.trapz`` of ``ρ`` over 100 linear points
  from ``τ = 1`` to ``4``, divided by ``4 − 1``. Here the score is the *exact* area of the
  step function ``ρ``, ``Σ_p max(r_max − max(r_p, 1), 0) / ((r_max − 1) · P)``; the
  trapezoid rule on a grid of spacing ``h`` errs by at most ``h / 2`` per unit jump of ``ρ``,
  so the two scores differ by at most ``h / (2 (r_max − 1))`` = 1/198 for AlgoPerf's grid.

:func:`targets_table` keeps the per-setting view (medians over seeds); the profiles and scores
use :func:`study_table` and :func:`study_times`, not "the median per setting, then the
submission's best setting", which ranks differently where a submission's best trial differs
from seed to seed.
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


STUDY_COLUMNS = ("problem", "submission", "study", "trials", "reached", "trial", "setting_id", "label", "run_id",
                 "epoch", "step", "time")
EARLIEST = ("epoch", "step", "time")


def study_table(
    runs: pd.DataFrame,
    metrics: pd.DataFrame,
    targets: Mapping[str, float],
    metric: Mapping[str, str],
    labels: pd.Series,
    by: str = "optimizer",
    earliest: str = "epoch",
) -> pd.DataFrame:
    """Per (problem, submission, study): the trial that reached the target at the earliest evaluation.

    A study is the runs' ``study`` (the algoperf protocol's), else their ``seed``; its trials
    are its runs (one per setting). ``by`` names the submission: a runs column (``optimizer``)
    or ``label``. The chosen trial is the one whose first hit has the smallest ``earliest``
    (``epoch``: AlgoPerf's earliest evaluation; or ``step``, ``time``), ties going to the
    shorter time, the lower ``trial`` number, then the earlier setting in table order.

    Columns :data:`STUDY_COLUMNS`: ``trials`` (runs of the study with a result), ``reached``
    (how many of them reached the target), then the chosen run's ``trial``, ``setting_id``,
    ``label``, ``run_id`` and the ``epoch``, ``step`` and ``time`` of its hit: ``inf`` when no
    trial reached the target, NaN (and no run) when no run of the study has a result yet.
    """
    if earliest not in EARLIEST:
        raise ValueError(f"earliest must be one of {', '.join(EARLIEST)}; got {earliest!r}.")
    hits = run_hits(runs, metrics, targets, metric).set_index("run_id")
    targeted = runs[runs["problem"].isin(list(targets))]
    order = [s for s in setting_order(runs, labels) if s in set(targeted["setting_id"])]
    rank = pd.Series(np.arange(len(order)), index=pd.Index(order, dtype=object))
    frame = pd.DataFrame({
        "rank": rank.reindex(targeted["setting_id"]).to_numpy(dtype=np.int64),
        "problem": targeted["problem"].to_numpy(dtype=object),
        "submission": _submissions(targeted, by, labels),
        "study": _study_numbers(targeted),
        "trial": (targeted["trial"] if "trial" in targeted.columns else pd.Series(pd.NA, index=targeted.index))
        .astype("Int64").to_numpy(),
        "setting_id": targeted["setting_id"].to_numpy(dtype=object),
        "label": labels.reindex(targeted["setting_id"]).to_numpy(dtype=object),
        "run_id": targeted["run_id"].to_numpy(dtype=object),
    })
    frame = frame.sort_values("rank", kind="stable").reset_index(drop=True)
    frame["result"] = frame["run_id"].isin(hits.index).to_numpy()
    found = hits.reindex(frame["run_id"])
    frame["reached"] = found["reached"].eq(True).to_numpy()
    for column, source in zip(EARLIEST, ("epoch_to_target", "step_to_target", "time_to_target"), strict=True):
        frame[column] = found[source].to_numpy(dtype=np.float64)
    key = ["problem", "submission", "study"]
    # Groups in the order their problem, submission and study first appear in the setting order.
    frame["problem_rank"] = pd.factorize(frame["problem"])[0]
    frame["submission_rank"] = pd.factorize(frame["submission"])[0]
    groups = frame.groupby(["problem_rank", "submission_rank", "study"], sort=True)
    table = groups[["problem", "submission", "study"]].first().reset_index(drop=True)
    table["trials"] = groups["result"].sum().to_numpy(dtype=np.int64)
    table["reached"] = groups["reached"].sum().to_numpy(dtype=np.int64)
    reached = frame[frame["reached"]]
    tie_breaks = [earliest, *(c for c in ("time", "step", "epoch") if c != earliest), "trial", "rank"]
    chosen = reached.sort_values(tie_breaks, kind="stable", na_position="last").drop_duplicates(key)
    chosen = table[key].merge(chosen, on=key, how="left")
    for column in ("trial", "setting_id", "label", "run_id"):
        table[column] = chosen[column].to_numpy()
    for column in EARLIEST:
        unreached = np.where(table["trials"].to_numpy() > 0, np.inf, np.nan)
        table[column] = np.where(chosen["reached"].eq(True).to_numpy(), chosen[column].to_numpy(dtype=np.float64),
                                 unreached)
    table["trial"] = table["trial"].astype("Int64")
    table["study"] = table["study"].astype("Int64")
    return table[list(STUDY_COLUMNS)]


def _submissions(runs: pd.DataFrame, by: str, labels: pd.Series) -> np.ndarray:
    """Each run's submission: its setting's label for ``by='label'``, else its value of the column ``by``."""
    if by == "label" and "label" not in runs.columns:
        return labels.reindex(runs["setting_id"]).to_numpy(dtype=object)
    if by not in runs.columns:
        raise ValueError(f"cannot group submissions by {by!r}: the runs have no such column; use 'optimizer'.")
    return runs[by].to_numpy(dtype=object)


def _study_numbers(runs: pd.DataFrame) -> np.ndarray:
    """Each run's study: its ``study``, else its ``seed``, else its position among its setting's runs."""
    position = runs.groupby("setting_id", sort=False).cumcount().astype("Int64")
    study = runs["study"].astype("Int64") if "study" in runs.columns else pd.Series(pd.NA, index=runs.index,
                                                                                      dtype="Int64")
    seed = pd.to_numeric(runs["seed"], errors="coerce").astype("Int64") if "seed" in runs.columns else position
    return study.fillna(seed).fillna(position).to_numpy(dtype=np.int64)


def study_times(studies: pd.DataFrame, column: str = "time") -> pd.DataFrame:
    """Per (problem, submission): AlgoPerf's time, the median over studies of each study's chosen time.

    Columns ``problem``, ``submission``, ``time`` (``numpy.median`` over the studies with a
    result, a study that did not reach the target, or reached it without logging ``column``,
    counting as ``inf``; ``inf`` without any such study), ``studies`` (how many were counted)
    and ``reached`` (how many of them reached the target). ``column`` is ``time``, ``step``
    or ``epoch`` of :func:`study_table`.
    """
    rows = []
    for (problem, submission), group in studies.groupby(["problem", "submission"], sort=False):
        counted = group[group["trials"] > 0]
        times = counted[column].to_numpy(dtype=np.float64)
        times = np.where(np.isnan(times), np.inf, times)
        rows.append((problem, submission, float(np.median(times)) if len(times) else np.inf, len(counted),
                     int((counted["reached"] > 0).sum())))
    table = pd.DataFrame(rows, columns=["problem", "submission", "time", "studies", "reached"])
    return table.astype({"problem": object, "submission": object, "time": np.float64, "studies": np.int64,
                         "reached": np.int64})


def performance_profiles(
    times: pd.DataFrame, r_max: float = R_MAX, points: int = 400
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Performance profiles and scores of the submissions in ``times`` (``problem``, ``submission``, ``time``).

    ``r = t / min over submissions of t`` per problem (``r = 1`` for the fastest, also at
    ``t = 0``); a missing or NaN time counts as never reached (``r = inf``). Every problem
    counts in ``P``, as in AlgoPerf: one a submission never reached gives it ``r = inf`` (so
    its ``ρ`` stays below 1), one no submission reached gives everyone ``r = inf`` (logged).

    Returns ``profiles`` (``submission``, ``tau``, ``rho``) on a linear grid of ``points``
    values from 1 to ``r_max`` plus every ratio in that range (the steps of ``ρ``), and
    ``scores`` (``submission``, ``score``, ``problems`` = P, ``reached`` = problems with a
    finite time). The score is the exact area of the step function, not AlgoPerf's trapezoid
    rule on a grid: ``Σ_p max(r_max − max(r_p, 1), 0) / ((r_max − 1) · P)``; NaN when ``P = 0``.
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
        log.info("performance profiles count %d problem(s) no submission reached as r = inf for all: %s",
                 int(unreached.sum()), ", ".join(map(str, table.index[unreached])))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(t == best[:, None], 1.0, t / best[:, None])  # t/0 is inf for the slower ones
    ratio[unreached] = np.inf  # AlgoPerf's inf/inf = NaN: never within any τ
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
