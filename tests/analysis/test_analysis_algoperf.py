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
    submission_times,
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
    times = submission_times(table, column="steps_to_target_median")
    assert np.isfinite(times["time"]).all()


# Hand-computed profiles. Times (r = t / fastest per problem):
#        A          B          C
# p1    10 (1)     20 (2)     50 (5)
# p2    30 (2)     15 (1)     15 (1)
# p3    inf (inf)  40 (1)     100 (2.5)
# p4    inf        inf        —  (no submission reached it: left out, P = 3; C has no row at all)
# ρ_A: 1/3 on [1, 2), 2/3 from 2.   ρ_B: 2/3 on [1, 2), 1 from 2.   ρ_C: 1/3 on [1, 2.5), 2/3 from 2.5.
# Scores, r_max = 4: Σ_p (4 − r_p)⁺ / (3 · 3):
#   A: (3 + 2 + 0) / 9 = 5/9    B: (2 + 3 + 3) / 9 = 8/9    C: (0 + 3 + 1.5) / 9 = 1/2
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
    assert "leave out 1 problem(s) no submission reached: p4" in caplog.text
    assert list(profiles.columns) == ["submission", "tau", "rho"]
    assert {2.0, 2.5} <= set(profiles["tau"]) and profiles["tau"].min() == 1 and profiles["tau"].max() == 4
    expected = {
        "A": {1.0: 1 / 3, 1.5: 1 / 3, 1.999: 1 / 3, 2.0: 2 / 3, 2.5: 2 / 3, 4.0: 2 / 3},
        "B": {1.0: 2 / 3, 1.5: 2 / 3, 1.999: 2 / 3, 2.0: 1.0, 2.5: 1.0, 4.0: 1.0},
        "C": {1.0: 1 / 3, 1.5: 1 / 3, 2.0: 1 / 3, 2.499: 1 / 3, 2.5: 2 / 3, 4.0: 2 / 3},
    }
    for submission, values in expected.items():
        for tau, value in values.items():
            assert _rho_at(profiles, submission, tau) == pytest.approx(value), (submission, tau)
    assert list(scores.columns) == ["submission", "score", "problems", "reached"]
    scores = scores.set_index("submission")
    assert scores["score"].to_dict() == pytest.approx({"A": 5 / 9, "B": 8 / 9, "C": 1 / 2})
    assert scores["problems"].to_dict() == {"A": 3, "B": 3, "C": 3}
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
    nobody = pd.DataFrame({"problem": ["a", "a"], "submission": ["x", "y"], "time": [INF, INF]})
    profiles, scores = performance_profiles(nobody)
    assert scores["problems"].tolist() == [0, 0] and scores["score"].isna().all()
    assert profiles["rho"].isna().all() and set(profiles["submission"]) == {"x", "y"}
    with pytest.raises(ValueError, match="greater than 1"):
        performance_profiles(times, r_max=1.0)


def test_submission_times_take_each_optimizers_fastest_setting():
    table = pd.DataFrame({
        "problem": ["p", "p", "p", "p", "q", "q"],
        "optimizer": ["sgd", "sgd", "adam", "adam", "sgd", "adam"],
        "setting_id": ["s1", "s2", "a1", "a2", "s3", "a3"],
        "label": ["sgd lr=1", "sgd lr=0.1", "adam lr=1", "adam lr=0.1", "sgd", "adam"],
        "time_to_target_median": [5.0, 3.0, INF, math.nan, 2.0, INF],
        "steps_to_target_median": [50, 70, INF, 10, 20, INF],
    })
    times = submission_times(table)
    assert list(times.columns) == ["problem", "submission", "time", "setting_id", "label"]
    by = times.set_index(["problem", "submission"])
    assert by.loc[("p", "sgd"), ["time", "setting_id"]].tolist() == [3.0, "s2"]
    assert by.loc[("p", "adam"), "time"] == INF  # NaN (no result) counts as never reached
    assert by.loc[("q", "sgd"), "time"] == 2.0 and by.loc[("q", "adam"), "time"] == INF
    steps = submission_times(table, column="steps_to_target_median").set_index(["problem", "submission"])
    assert steps.loc[("p", "sgd"), "setting_id"] == "s1" and steps.loc[("p", "adam"), "setting_id"] == "a2"
    by_label = submission_times(table, by="label")
    assert len(by_label) == 6


def test_no_targets_no_rows(sweep):
    data, _, _, _ = sweep
    table = targets_table(data.runs, data.metrics, {}, {}, setting_labels(data.runs))
    assert table.empty and "time_to_target_median" in table.columns
    assert run_hits(data.runs, data.metrics, {}, {}).empty
