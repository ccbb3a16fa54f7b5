"""AlgoPerf-style scoring against hand-computed first hits, targets, profiles and scores."""

from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd
import pytest
from analysis_factory import make_spec

from analysis.algoperf import (
    default_targets,
    maximised,
    performance_profiles,
    run_hits,
    study_table,
    study_times,
    target_metrics,
    targets_table,
)
from analysis.collect import collect_sweep
from analysis.labels import setting_labels

INF = math.inf
QUADRATIC = {"name": "quadratic_deep"}
DIGITS = {"name": "digits_mlp", "hidden": 32}
MNIST = {"name": "mnist_logreg"}
SGD = {"name": "sgd", "lr": 0.1, "momentum": 0.0}
FAST_SGD = {"name": "sgd", "lr": 1.0, "momentum": 0.0}
ADAM = {"name": "adam", "lr": 0.001, "beta1": 0.9}


def _records(values, key):
    """Epochs 0.. with step 10·e, time 1.5·e and the given values of ``key``.

    Accuracy runs also log a valid_loss that would reach a loss target at once, so a hit must
    come from the target's metric.
    """
    records = []
    for e, v in enumerate(values):
        record = {"epoch": e, "step": 10 * e, "time": 1.5 * e, "valid_loss": 0.001}
        record[key] = v
        records.append(record)
    return records


@pytest.fixture
def sweep(builder):
    """quadratic_deep (valid_loss, target 1.0) and digits_mlp (valid_accuracy, target 0.9); see each run's note."""
    loss = "valid_loss"
    runs = {
        # setting sgd lr=0.1: reached at epochs 2, 1 (exactly on the target) and 1 (then diverged)
        ("q", "sgd", 0): (QUADRATIC, SGD, 0, "completed", _records([3, 2, 0.9, 0.5], loss)),
        ("q", "sgd", 1): (QUADRATIC, SGD, 1, "completed", _records([3, 1.0, 2, 0.5], loss)),
        ("q", "sgd", 2): (QUADRATIC, SGD, 2, "diverged", _records([3, 0.8, math.nan], loss)),
        # setting sgd lr=1: diverged before, never, epoch 1; failed/running/pending runs do not count
        ("q", "fast", 0): (QUADRATIC, FAST_SGD, 0, "diverged", _records([3, math.nan], loss)),
        ("q", "fast", 1): (QUADRATIC, FAST_SGD, 1, "completed", _records([3, 2, 1.5, 1.2], loss)),
        ("q", "fast", 2): (QUADRATIC, FAST_SGD, 2, "completed", _records([3, 0.95, 2], loss)),
        ("q", "fast", 3): (QUADRATIC, FAST_SGD, 3, "failed", _records([0.1], loss)),
        ("q", "fast", 4): (QUADRATIC, FAST_SGD, 4, "running", _records([0.1], loss)),
        ("q", "fast", 5): (QUADRATIC, FAST_SGD, 5, None, None),
        # digits: accuracy is maximised (its valid_loss 0.001 would hit a loss target at epoch 0)
        ("d", "adam", 0): (DIGITS, ADAM, 0, "completed", _records([0.5, 0.95, 0.85], "valid_accuracy")),
        ("d", "adam", 1): (DIGITS, ADAM, 1, "completed", _records([0.5, 0.7, 0.9], "valid_accuracy")),
        # a problem without a target is left out
        ("m", "adam", 0): (MNIST, ADAM, 0, "completed", _records([0.5], "valid_accuracy")),
    }
    ids = {key: builder.add(make_spec(p, o, seed), state, records)
           for key, (p, o, seed, state, records) in runs.items()}
    builder.write()
    data = collect_sweep(builder.sweep_dir, builder.runs_dir)
    targets = {"quadratic_deep": 1.0, "digits_mlp": 0.9}
    metric = {"quadratic_deep": "valid_loss", "digits_mlp": "valid_accuracy"}
    return data, ids, targets, metric


def test_direction_comes_from_the_metric_name():
    assert maximised("valid_accuracy") and maximised("test_accuracy")
    assert not maximised("valid_loss") and not maximised("train_loss")
    with pytest.raises(ValueError, match="'lr'"):
        maximised("lr")
    assert target_metrics({"a": "accuracy", "b": "loss"}) == {"a": "valid_accuracy", "b": "valid_loss"}


def test_first_hit_of_each_run(sweep):
    data, ids, targets, metric = sweep
    hits = run_hits(data.runs, data.metrics, targets, metric).set_index("run_id")
    expected = {  # run: (reached, step, time, epoch)
        ("q", "sgd", 0): (True, 20, 3.0, 2),
        ("q", "sgd", 1): (True, 10, 1.5, 1),
        ("q", "sgd", 2): (True, 10, 1.5, 1),
        ("q", "fast", 0): (False, INF, INF, INF),
        ("q", "fast", 1): (False, INF, INF, INF),
        ("q", "fast", 2): (True, 10, 1.5, 1),
        ("d", "adam", 0): (True, 10, 1.5, 1),
        ("d", "adam", 1): (True, 20, 3.0, 2),
    }
    assert set(hits.index) == {ids[key] for key in expected}  # failed, running, pending and untargeted left out
    assert list(hits.columns) == ["setting_id", "problem", "reached", "step_to_target", "time_to_target",
                                  "epoch_to_target"]
    for key, (reached, step, time, epoch) in expected.items():
        row = hits.loc[ids[key]]
        assert (row["reached"], row["step_to_target"], row["time_to_target"], row["epoch_to_target"]) == (
            reached, step, time, epoch), key
        assert row["problem"] == {"q": "quadratic_deep", "d": "digits_mlp"}[key[0]]


def test_first_hit_does_not_depend_on_row_order():
    runs = pd.DataFrame({"run_id": ["a", "b", "c"], "setting_id": ["s", "s", "t"], "state": "completed",
                         "problem": ["p", "p", "p"], "points": [4, 3, 1]})
    metrics = pd.DataFrame({
        "run_id": pd.Categorical(["a"] * 4 + ["b"] * 3 + ["c"], categories=["a", "b", "c"]),
        "setting_id": pd.Categorical(["s"] * 7 + ["t"]),
        "epoch": [0, 1, 2, 3, 0, 1, 2, 0],
        "step": [0, 5, 10, 15, 0, 7, 14, 0],
        "test_accuracy": [0.1, 0.5, 0.7, 0.9, 0.8, 0.2, 0.9, 0.2],
    })
    shuffled = metrics.iloc[np.random.default_rng(0).permutation(len(metrics))]
    for table in (metrics, shuffled):
        hits = run_hits(runs, table, {"p": 0.6}, {"p": "test_accuracy"}).set_index("run_id")
        assert list(hits.loc[["a", "b", "c"], "step_to_target"]) == [10, 0, INF]
        assert list(hits.loc[["a", "b", "c"], "epoch_to_target"]) == [2, 0, INF]
        assert hits["time_to_target"].loc[["a", "b"]].isna().all()  # reached, but no time logged
        assert hits.loc["c", "time_to_target"] == INF


def test_bad_target_metrics_raise(sweep):
    data, _, targets, metric = sweep
    with pytest.raises(ValueError, match="'digits_mlp' has a target but no metric"):
        run_hits(data.runs, data.metrics, targets, {"quadratic_deep": "valid_loss"})
    with pytest.raises(ValueError, match="'valid_acuracy'"):
        run_hits(data.runs, data.metrics, targets, dict(metric, digits_mlp="valid_acuracy"))
    with pytest.raises(ValueError, match="'step' is to be maximised"):
        run_hits(data.runs, data.metrics, {"quadratic_deep": 1.0}, {"quadratic_deep": "step"})


def test_targets_table_medians_over_seeds(sweep):
    data, ids, targets, metric = sweep
    labels = setting_labels(data.runs)
    table = targets_table(data.runs, data.metrics, targets, metric, labels)
    assert list(table.columns) == ["problem", "optimizer", "setting_id", "label", "metric", "target", "n", "reached",
                                   "steps_to_target_median", "time_to_target_median", "epochs_to_target_median"]
    assert set(table["problem"]) == {"quadratic_deep", "digits_mlp"} and len(table) == 3
    rows = table.set_index("setting_id")
    sgd = rows.loc[data.runs.set_index("run_id").loc[ids[("q", "sgd", 0)], "setting_id"]]
    fast = rows.loc[data.runs.set_index("run_id").loc[ids[("q", "fast", 0)], "setting_id"]]
    adam = rows.loc[data.runs.set_index("run_id").loc[ids[("d", "adam", 0)], "setting_id"]]
    # sgd: steps 20, 10, 10 → 10; times 3, 1.5, 1.5 → 1.5; epochs 2, 1, 1 → 1
    assert (sgd["n"], sgd["reached"], sgd["steps_to_target_median"], sgd["time_to_target_median"],
            sgd["epochs_to_target_median"]) == (3, 3, 10, 1.5, 1)
    assert (sgd["metric"], sgd["target"], sgd["label"]) == ("valid_loss", 1.0, "sgd lr=0.1")
    # lr=1: inf, inf, 10 → the median run did not reach it
    assert (fast["n"], fast["reached"], fast["steps_to_target_median"]) == (3, 1, INF)
    assert fast["time_to_target_median"] == INF
    # adam on digits: steps 10, 20 → 15
    assert (adam["n"], adam["reached"], adam["steps_to_target_median"], adam["time_to_target_median"]) == (
        2, 2, 15, 2.25)
    assert (adam["metric"], adam["target"]) == ("valid_accuracy", 0.9)


def test_half_of_the_runs_unreached_makes_the_median_infinite(sweep):
    data, _, _, _ = sweep
    labels = setting_labels(data.runs)
    table = targets_table(data.runs, data.metrics, {"digits_mlp": 0.93}, {"digits_mlp": "valid_accuracy"}, labels)
    assert (table["n"].iloc[0], table["reached"].iloc[0], table["steps_to_target_median"].iloc[0]) == (2, 1, INF)


def test_default_targets_are_the_worst_of_the_optimizers_best():
    summary = pd.DataFrame({
        "problem": ["p"] * 6 + ["q"] * 4 + ["r", "s"],
        "optimizer": ["sgd", "sgd", "sgd", "adam", "adam", "pal", "sgd", "sgd", "adam", "adam", "sgd", "sgd"],
        "metric": ["loss"] * 6 + ["accuracy"] * 4 + ["loss", "loss"],
        "best_valid_median": [0.5, 0.3, INF, 0.4, 0.2, INF, 0.9, 0.8, 0.85, math.nan, INF, 0.1],
    })
    metric = {"p": "valid_loss", "q": "valid_accuracy", "r": "valid_loss"}  # s: no target asked for
    # p: sgd's best 0.3, adam's 0.2, pal has none → 0.3; q: sgd 0.9, adam 0.85 → 0.85; r: nothing finite
    assert default_targets(summary, metric) == {"p": 0.3, "q": 0.85}
    with pytest.raises(ValueError, match="'valid_accuracy', not 'valid_loss'"):
        default_targets(summary, {"q": "valid_loss"})


def test_default_targets_are_reached_by_every_optimizers_best_setting(sweep):
    """End to end: from the summary's targets, every optimizer's best setting reaches it in the median run."""
    from analysis.tables import summary_table

    data, _, _, _ = sweep
    labels = setting_labels(data.runs)
    summary = summary_table(data.runs, data.metrics, labels)
    metric = target_metrics({"quadratic_deep": "loss"})
    targets = default_targets(summary, metric)
    assert targets == {"quadratic_deep": pytest.approx(0.5)}  # one optimizer: its best setting's median best
    table = targets_table(data.runs, data.metrics, targets, metric, labels)
    assert np.isfinite(table.groupby("optimizer")["steps_to_target_median"].min()).all()  # each one's best setting


# Hand-computed profiles. Times (r = t / fastest per problem):
#        A          B          C
# p1    10 (1)     20 (2)     50 (5)
# p2    30 (2)     15 (1)     15 (1)
# p3    inf (inf)  40 (1)     100 (2.5)
# p4    inf        inf        —  (no submission reached it: r = inf for all, C has no row at all)
# Changed with AlgoPerf's rules (issue 19): p4 used to be left out (P = 3, scores 5/9, 8/9, 1/2);
# AlgoPerf divides by the number of workloads, reached or not, so P = 4 and no ρ reaches 1.
# ρ_A: 1/4 on [1, 2), 2/4 from 2.   ρ_B: 2/4 on [1, 2), 3/4 from 2.   ρ_C: 1/4 on [1, 2.5), 2/4 from 2.5.
# Scores, r_max = 4: Σ_p (4 − r_p)⁺ / (3 · 4):
#   A: (3 + 2 + 0 + 0) / 12 = 5/12    B: (2 + 3 + 3 + 0) / 12 = 2/3    C: (0 + 3 + 1.5 + 0) / 12 = 3/8
TIMES = pd.DataFrame({
    "problem": ["p1", "p1", "p1", "p2", "p2", "p2", "p3", "p3", "p3", "p4", "p4"],
    "submission": ["A", "B", "C", "A", "B", "C", "A", "B", "C", "A", "B"],
    "time": [10, 20, 50, 30, 15, 15, INF, 40, 100, INF, math.nan],
})


def _rho_at(profiles, submission, tau):
    """ρ at any τ from the profile: its value at the largest grid point not above τ (a right-continuous step)."""
    rows = profiles[(profiles["submission"] == submission) & (profiles["tau"] <= tau + 1e-12)]
    return rows.sort_values("tau")["rho"].iloc[-1]


def test_performance_profiles_by_hand(caplog):
    with caplog.at_level(logging.INFO, logger="analysis.algoperf"):
        profiles, scores = performance_profiles(TIMES)
    assert "count 1 problem(s) no submission reached as r = inf for all: p4" in caplog.text
    assert list(profiles.columns) == ["submission", "tau", "rho"]
    assert {2.0, 2.5} <= set(profiles["tau"]) and profiles["tau"].min() == 1 and profiles["tau"].max() == 4
    expected = {
        "A": {1.0: 1 / 4, 1.5: 1 / 4, 1.999: 1 / 4, 2.0: 2 / 4, 2.5: 2 / 4, 4.0: 2 / 4},
        "B": {1.0: 2 / 4, 1.5: 2 / 4, 1.999: 2 / 4, 2.0: 3 / 4, 2.5: 3 / 4, 4.0: 3 / 4},
        "C": {1.0: 1 / 4, 1.5: 1 / 4, 2.0: 1 / 4, 2.499: 1 / 4, 2.5: 2 / 4, 4.0: 2 / 4},
    }
    for submission, values in expected.items():
        for tau, value in values.items():
            assert _rho_at(profiles, submission, tau) == pytest.approx(value), (submission, tau)
    assert list(scores.columns) == ["submission", "score", "problems", "reached"]
    scores = scores.set_index("submission")
    assert scores["score"].to_dict() == pytest.approx({"A": 5 / 12, "B": 2 / 3, "C": 3 / 8})
    assert scores["problems"].to_dict() == {"A": 4, "B": 4, "C": 4}
    assert scores["reached"].to_dict() == {"A": 2, "B": 3, "C": 3}


def test_grid_holds_the_breakpoints_so_its_step_sum_is_the_exact_score():
    times = pd.DataFrame({"problem": ["a", "a", "b", "b", "c", "c"], "submission": ["x", "y"] * 3,
                          "time": [1.0, 1.2345, 3.0, 1.0, 7.0, 2.0]})  # y/x ratios 1.2345, 3, 3.5
    profiles, scores = performance_profiles(times, r_max=4.0, points=5)  # 1, 1.75, 2.5, 3.25, 4
    for submission, group in profiles.groupby("submission"):
        tau, rho = group["tau"].to_numpy(), group["rho"].to_numpy()
        assert tau[0] == 1.0 and tau[-1] == 4.0 and np.all(np.diff(tau) > 0)
        area = np.sum(rho[:-1] * np.diff(tau)) / 3.0  # ρ is right-continuous: constant on [τ_i, τ_{i+1})
        assert area == pytest.approx(scores.set_index("submission").loc[submission, "score"], abs=1e-12)
    tau = set(profiles["tau"])
    assert {1.2345, 3.0, 3.5} <= tau and len(tau) == 5 + 3
    # x: r = 1 on a, 3 on b, 3.5 on c: (3 + 1 + 0.5) / 9; y: r = 1.2345 on a, 1 on b and c
    assert scores.set_index("submission")["score"].to_dict() == pytest.approx(
        {"x": (3 + 1 + 0.5) / 9, "y": (4 - 1.2345 + 3 + 3) / 9})


def test_zero_best_time_and_edge_cases():
    times = pd.DataFrame({"problem": ["a", "a", "a"], "submission": ["x", "y", "z"], "time": [0.0, 0.0, 5.0]})
    _, scores = performance_profiles(times)
    assert scores.set_index("submission")["score"].to_dict() == {"x": 1.0, "y": 1.0, "z": 0.0}
    # Changed with AlgoPerf's rules (issue 19): a problem nobody reached used to be left out (P = 0, score NaN);
    # it now counts, r = inf for everyone (AlgoPerf's inf/inf = NaN is never <= τ), so ρ = 0 and the score is 0.
    nobody = pd.DataFrame({"problem": ["a", "a"], "submission": ["x", "y"], "time": [INF, INF]})
    profiles, scores = performance_profiles(nobody)
    assert scores["problems"].tolist() == [1, 1] and scores["score"].tolist() == [0.0, 0.0]
    assert scores["reached"].tolist() == [0, 0]
    assert (profiles["rho"] == 0).all() and set(profiles["submission"]) == {"x", "y"}
    _, scores = performance_profiles(nobody.iloc[:0])
    assert scores.empty
    with pytest.raises(ValueError, match="greater than 1"):
        performance_profiles(times, r_max=1.0)


def test_no_targets_no_rows(sweep):
    data, _, _, _ = sweep
    table = targets_table(data.runs, data.metrics, {}, {}, setting_labels(data.runs))
    assert table.empty and "time_to_target_median" in table.columns
    assert run_hits(data.runs, data.metrics, {}, {}).empty


# ----------------------------------------------------------------------------- AlgoPerf's studies and trials


def _study_runs(hits):
    """Runs and metrics from ``{(problem, optimizer, lr): (first epoch at the target per study, s per epoch)}``.

    Every run is evaluated at epochs 0..10 (step 10·e, time cost·e) with valid_loss 2 before its
    hit and 0.5 from it (the target is 1; ``None``: never). The settings of a (problem, optimizer)
    are its trials 0, 1, ..., the k-th entry its study k (seed 10 + k, so a study is not a seed).
    """
    runs, metrics, trial = [], [], {}
    for (problem, optimizer, lr), (epochs, cost) in hits.items():
        number = trial[(problem, optimizer)] = trial.get((problem, optimizer), -1) + 1
        for study, hit in enumerate(epochs):
            run_id = f"{problem}-{optimizer}-{lr}-{study}"
            runs.append({"run_id": run_id, "setting_id": f"{problem}-{optimizer}-{lr}", "seed": 10 + study,
                         "state": "completed", "problem": problem, "optimizer": optimizer, "points": 11,
                         "error": None, "trial": number, "study": study, "optimizer.lr": lr})
            metrics += [{"run_id": run_id, "epoch": e, "step": 10 * e, "time": cost * e,
                         "valid_loss": 0.5 if hit is not None and e >= hit else 2.0} for e in range(11)]
    runs = pd.DataFrame(runs).astype({"trial": "Int64", "study": "Int64"})
    metrics = pd.DataFrame(metrics)
    metrics["run_id"] = pd.Categorical(metrics["run_id"], categories=list(runs["run_id"]))
    return runs, metrics


NEVER = (None, None, None)
# Two submissions (sgd, adam) × 3 problems × 3 studies × 2–3 trials; the epoch of each run's first hit per
# study (time = epoch, except adam lr=0.2: 0.5 s per epoch).
STUDIES = {
    ("p", "sgd", 0.1): ((2, 6, None), 1.0),
    ("p", "sgd", 0.2): ((None, 2, 9), 1.0),
    ("p", "sgd", 0.3): ((5, None, 3), 1.0),
    ("p", "adam", 0.1): ((4, 4, 4), 1.0),
    ("p", "adam", 0.2): ((None, 6, 5), 0.5),
    ("q", "sgd", 0.1): ((3, None, None), 1.0),
    ("q", "sgd", 0.2): ((None, 4, None), 1.0),
    ("q", "adam", 0.1): (NEVER, 1.0),
    ("q", "adam", 0.2): (NEVER, 1.0),
    ("r", "sgd", 0.1): (NEVER, 1.0),
    ("r", "sgd", 0.2): (NEVER, 1.0),
    ("r", "adam", 0.1): (NEVER, 1.0),
    ("r", "adam", 0.2): (NEVER, 1.0),
}
TARGET = {"p": 1.0, "q": 1.0, "r": 1.0}
LOSS = {"p": "valid_loss", "q": "valid_loss", "r": "valid_loss"}


def test_algoperf_studies_and_the_unreached_rule_by_hand():
    """AlgoPerf's rule (best trial per study, median over studies) ranks sgd first; the old rule ranked adam first.

    Per study, the trial whose first hit is at the earliest evaluation (epoch), and its time:
      p, sgd:  study 0: lr=0.1 at 2 (lr=0.3 at 5) → 2;  study 1: lr=0.2 at 2 → 2;  study 2: lr=0.3 at 3 → 3.
               median(2, 2, 3) = 2.
      p, adam: lr=0.1 at epoch 4 (time 4) in every study; lr=0.2 reaches at epochs 6 and 5 but in less
               time (3 and 2.5): the earliest evaluation wins, as in AlgoPerf → median(4, 4, 4) = 4.
      q, sgd:  3, 4, never → median(3, 4, inf) = 4.       q, adam: never → inf (ρ_adam never reaches 1).
      r:       nobody reaches it: r = inf for both, still one of P = 3 problems.
    Profiles: p: sgd r = 1, adam r = 2; q: sgd 1, adam inf; r: inf, inf.
      ρ_sgd = 2/3 on [1, 4];  ρ_adam = 0 on [1, 2), 1/3 on [2, 4].
    Scores Σ_p (4 − r_p)⁺ / (3 · 3): sgd (3 + 3 + 0) / 9 = 2/3;  adam (2 + 0 + 0) / 9 = 2/9.

    The old rule (median over seeds per setting, then the best setting):
      p, sgd: lr=0.1 median(2, 6, inf) = 6, lr=0.2 median(inf, 2, 9) = 9, lr=0.3 median(5, inf, 3) = 5 → 5;
      p, adam: lr=0.1 4, lr=0.2 median(inf, 3, 2.5) = 3 → 3;  q, sgd: both settings' medians inf → inf.
    So p: adam r = 1, sgd r = 5/3; q and r: nobody. Scores (P = 3): adam 3/9 = 1/3, sgd (4 − 5/3)/9 = 7/27.
    """
    runs, metrics = _study_runs(STUDIES)
    labels = setting_labels(runs)
    studies = study_table(runs, metrics, TARGET, LOSS, labels)
    assert list(studies.columns) == ["problem", "submission", "study", "trials", "reached", "trial", "setting_id",
                                     "label", "run_id", "epoch", "step", "time"]
    assert len(studies) == 3 * 2 * 3
    by = studies.set_index(["problem", "submission", "study"])
    chosen = {  # (problem, submission, study): (trials, reached, trial, lr, time)
        ("p", "sgd", 0): (3, 2, 0, 0.1, 2.0), ("p", "sgd", 1): (3, 2, 1, 0.2, 2.0),
        ("p", "sgd", 2): (3, 2, 2, 0.3, 3.0),
        ("p", "adam", 0): (2, 1, 0, 0.1, 4.0), ("p", "adam", 1): (2, 2, 0, 0.1, 4.0),
        ("p", "adam", 2): (2, 2, 0, 0.1, 4.0),
        ("q", "sgd", 0): (2, 1, 0, 0.1, 3.0), ("q", "sgd", 1): (2, 1, 1, 0.2, 4.0),
    }
    for key, (trials, reached, trial, lr, time) in chosen.items():
        row = by.loc[key]
        assert (row["trials"], row["reached"], row["trial"], row["time"]) == (trials, reached, trial, time), key
        assert row["setting_id"] == f"{key[0]}-{key[1]}-{lr}" and row["run_id"] == f"{key[0]}-{key[1]}-{lr}-{key[2]}"
        assert row["epoch"] == time and row["step"] == 10 * time
    unreached = by.drop(index=list(chosen))
    assert len(unreached) == 10 and (unreached["reached"] == 0).all() and (unreached["time"] == INF).all()
    assert unreached["run_id"].isna().all() and unreached["trial"].isna().all()

    times = study_times(studies).set_index(["problem", "submission"])
    assert list(times.columns) == ["time", "studies", "reached"]
    assert times["time"].to_dict() == {("p", "adam"): 4.0, ("p", "sgd"): 2.0, ("q", "adam"): INF, ("q", "sgd"): 4.0,
                                       ("r", "adam"): INF, ("r", "sgd"): INF}
    assert (times["studies"] == 3).all()
    assert times["reached"].to_dict() == {("p", "adam"): 3, ("p", "sgd"): 3, ("q", "adam"): 0, ("q", "sgd"): 2,
                                          ("r", "adam"): 0, ("r", "sgd"): 0}

    profiles, scores = performance_profiles(times.reset_index())
    scores = scores.set_index("submission")
    assert scores["score"].to_dict() == pytest.approx({"sgd": 2 / 3, "adam": 2 / 9})
    assert scores["problems"].to_dict() == {"sgd": 3, "adam": 3}
    assert scores["reached"].to_dict() == {"sgd": 2, "adam": 1}
    for tau, rho_sgd, rho_adam in ((1.0, 2 / 3, 0.0), (1.999, 2 / 3, 0.0), (2.0, 2 / 3, 1 / 3), (4.0, 2 / 3, 1 / 3)):
        assert _rho_at(profiles, "sgd", tau) == pytest.approx(rho_sgd)
        assert _rho_at(profiles, "adam", tau) == pytest.approx(rho_adam)

    # The old rule on the same runs (median over seeds per setting, then each optimizer's fastest setting)
    # ranks the other way round.
    per_setting = targets_table(runs, metrics, TARGET, LOSS, labels)
    old = (per_setting.assign(submission=per_setting["optimizer"], time=per_setting["time_to_target_median"])
           .groupby(["problem", "submission"], as_index=False, sort=False)["time"].min())
    assert old.set_index(["problem", "submission"])["time"].to_dict() == {
        ("p", "adam"): 3.0, ("p", "sgd"): 5.0, ("q", "adam"): INF, ("q", "sgd"): INF, ("r", "adam"): INF,
        ("r", "sgd"): INF}
    _, old_scores = performance_profiles(old)
    assert old_scores.set_index("submission")["score"].to_dict() == pytest.approx({"adam": 1 / 3, "sgd": 7 / 27})


def test_earliest_by_time_and_the_tie_breaks():
    runs, metrics = _study_runs({
        ("p", "sgd", 0.1): ((4, 4, 4), 1.0),
        ("p", "sgd", 0.2): ((None, 6, 5), 0.5),
        # q, study 0: lr=0.1 and lr=0.2 reach at epoch 3, lr=0.2 in less time (1.5 s); study 1: lr=0.1 and
        # lr=0.3 at epoch 2 after 2 s, so the lower trial number: lr=0.3 (renumbered 0; lr=0.1 is trial 2).
        ("q", "sgd", 0.1): ((3, 2), 1.0),
        ("q", "sgd", 0.2): ((3, 2), 0.5),
        ("q", "sgd", 0.3): ((None, 2), 1.0),
    })
    runs.loc[runs["setting_id"] == "q-sgd-0.2", "study"] = [0, 5]  # study 5 has one trial: lr=0.2, 1 s
    runs.loc[runs["setting_id"] == "q-sgd-0.1", "trial"] = 2
    runs.loc[runs["setting_id"] == "q-sgd-0.3", "trial"] = 0
    labels = setting_labels(runs)
    target, loss = {"p": 1.0, "q": 1.0}, {"p": "valid_loss", "q": "valid_loss"}
    by_time = study_table(runs, metrics, target, loss, labels, earliest="time")
    # p by time: study 0: 4; study 1: lr=0.2's 3 s (epoch 6) beats lr=0.1's 4 s (epoch 4); study 2: 2.5 s
    # → median 3 (by epoch: 4, 4, 4 → 4). q: 1.5, 2, 1 → 1.5 either way.
    assert by_time.set_index(["problem", "study"]).loc["p", "time"].tolist() == [4.0, 3.0, 2.5]
    assert study_times(by_time)["time"].tolist() == [3.0, 1.5]
    by_epoch = study_table(runs, metrics, target, loss, labels)
    assert study_times(by_epoch)["time"].tolist() == [4.0, 1.5]
    by_epoch = by_epoch.set_index(["problem", "study"])
    assert by_epoch.loc[("q", 0), ["setting_id", "time"]].tolist() == ["q-sgd-0.2", 1.5]  # same epoch: less time
    assert by_epoch.loc[("q", 1), ["setting_id", "trial", "time"]].tolist() == ["q-sgd-0.3", 0, 2.0]  # then trial
    assert by_epoch.loc[("q", 5), ["trials", "setting_id", "time"]].tolist() == [1, "q-sgd-0.2", 1.0]
    runs["trial"] = pd.NA  # without trial numbers: the first setting in table order (lr=0.1)
    by_order = study_table(runs, metrics, target, loss, labels).set_index(["problem", "study"])
    assert by_order.loc[("q", 1), "setting_id"] == "q-sgd-0.1"
    with pytest.raises(ValueError, match="earliest must be one of epoch, step, time; got 'evaluation'"):
        study_table(runs, metrics, target, loss, labels, earliest="evaluation")


def test_even_studies_and_studies_without_results():
    studies = pd.DataFrame({
        "problem": ["p"] * 5 + ["q"] * 2, "submission": ["a", "a", "b", "b", "b", "a", "a"],
        "study": [0, 1, 0, 1, 2, 0, 1], "trials": [2, 2, 3, 3, 0, 0, 0], "reached": [1, 1, 1, 0, 0, 0, 0],
        "time": [2.0, 4.0, 2.0, INF, math.nan, math.nan, math.nan],
    })
    times = study_times(studies).set_index(["problem", "submission"])
    # a: mean of the middle two, as numpy.median; b: median(2, inf) = inf, its study 2 has no result and does
    # not count; q: no study with a result → inf.
    assert times["time"].to_dict() == {("p", "a"): 3.0, ("p", "b"): INF, ("q", "a"): INF}
    assert times["studies"].to_dict() == {("p", "a"): 2, ("p", "b"): 2, ("q", "a"): 0}
    assert times["reached"].to_dict() == {("p", "a"): 2, ("p", "b"): 1, ("q", "a"): 0}


def test_without_studies_each_seed_is_a_study(sweep):
    """An ordinary sweep: study = seed, trial = setting (the fixture's runs have no study or trial)."""
    data, ids, targets, metric = sweep
    assert data.runs["study"].isna().all()
    labels = setting_labels(data.runs)
    studies = study_table(data.runs, data.metrics, targets, metric, labels)
    by = studies.set_index(["problem", "study"])
    run = data.runs.set_index("run_id")
    # quadratic seed 0: sgd lr=0.1 at epoch 2 (lr=1 diverged); 1: lr=0.1 at 1 (lr=1 never); 2: both at epoch 1
    # after 1.5 s, so the first setting in table order (lr=0.1); seeds 3–5 ran only lr=1 and have no result.
    sgd = run.loc[ids[("q", "sgd", 0)], "setting_id"]
    assert by.loc["quadratic_deep", "setting_id"].tolist()[:3] == [sgd, sgd, sgd]
    assert by.loc["quadratic_deep", "time"].tolist()[:3] == [3.0, 1.5, 1.5]
    assert by.loc["quadratic_deep", "trials"].tolist() == [2, 2, 2, 0, 0, 0]
    assert by.loc["quadratic_deep", "time"].iloc[3:].isna().all()
    assert by.loc["digits_mlp", "time"].tolist() == [1.5, 3.0]
    times = study_times(studies).set_index("problem")
    assert times["time"].to_dict() == {"digits_mlp": 2.25, "quadratic_deep": 1.5}
    assert times["studies"].to_dict() == {"digits_mlp": 2, "quadratic_deep": 3}
