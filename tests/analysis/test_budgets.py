"""Tuning budgets: the exact expected best of k against brute force, trials, one-shot, compute, the aggregate."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pandas as pd
import pytest
from analysis_factory import curve, make_spec

from analysis.aggregate import Options, aggregate_sweep, load_aggregate
from analysis.budgets import (
    NO_DEFAULT_TRIAL,
    NO_DEFAULTS,
    best_trial,
    default_settings,
    expected_best_of_k,
    has_tuning,
    same_value,
    trials_table,
    tuning_budgets,
)
from analysis.collect import collect_sweep
from analysis.labels import setting_labels
from analysis.report import write_report
from analysis.tables import summary_table

QUADRATIC = {"name": "quadratic_deep"}
DIGITS = {"name": "digits_mlp"}


# ----------------------------------------------------------------------------- exact against brute force


def brute_force(valid, test, k, maximize):
    """Every one of the N^k ordered draws with replacement, equally likely: the best by validation of each.

    Trials tied in validation are one outcome whose test value is their mean (the rule under test).
    Returns the mean and std (population) of the best validation and of its test value, and the
    median of the best (the worst value the best of k stays at or above with probability ≥ ½).
    """
    sign = 1.0 if maximize else -1.0
    tied_test = [np.mean([t for v2, t in zip(valid, test, strict=True) if v2 == v]) for v in valid]
    bests, tests = [], []
    for draw in itertools.product(range(len(valid)), repeat=k):
        chosen = max(draw, key=lambda i: sign * valid[i])
        bests.append(valid[chosen])
        tests.append(tied_test[chosen])
    ordered = sorted(bests, key=lambda v: sign * v)
    median = ordered[math.ceil(len(ordered) / 2) - 1]
    return np.mean(bests), np.std(bests), np.mean(tests), np.std(tests), median


@pytest.mark.parametrize(("valid", "test", "maximize"), [
    ([0.31, 0.87, 0.55, 0.62], [0.30, 0.80, 0.57, 0.60], True),  # accuracy, maximised
    ([1.9, 0.42, 0.77, 1.3], [2.1, 0.45, 0.70, 1.4], False),  # loss, minimised
    ([0.5, 0.9, 0.5, 0.7], [0.1, 0.85, 0.3, 0.66], True),  # a tie in validation
    ([0.8, 0.3, 0.3, 0.3], [0.9, 0.2, 0.5, 0.35], False),  # three tied at the best loss
])
def test_expected_best_of_k_equals_the_brute_force_mean_and_std_over_all_draws(valid, test, maximize):
    ks = [1, 2, 3]
    result = expected_best_of_k(valid, test, ks, maximize)
    for i, k in enumerate(ks):
        mean, std, test_mean, test_std, median = brute_force(valid, test, k, maximize)
        assert result["expected_valid"][i] == pytest.approx(mean, abs=1e-12)
        assert result["valid_std"][i] == pytest.approx(std, abs=1e-12)
        assert result["expected_test"][i] == pytest.approx(test_mean, abs=1e-12)
        assert result["test_std"][i] == pytest.approx(test_std, abs=1e-12)
        assert result["valid_median"][i] == median


def test_a_tied_group_gives_the_expected_test_value_of_a_random_choice_among_the_tied_draws():
    valid, test = [0.5, 0.9, 0.9, 0.7], [0.1, 0.2, 0.6, 0.66]
    for k in (1, 2, 3):
        picks = []
        for draw in itertools.product(range(4), repeat=k):
            best = max(valid[i] for i in draw)
            picks.append(np.mean([test[i] for i in draw if valid[i] == best]))  # uniform over the tied draws
        assert expected_best_of_k(valid, test, [k], True)["expected_test"][0] == pytest.approx(np.mean(picks),
                                                                                                abs=1e-12)


def test_one_trial_is_the_mean_and_many_approach_the_best():
    valid, test = [0.2, 0.6, 0.4, 0.9, 0.75], [0.25, 0.55, 0.41, 0.88, 0.7]
    result = expected_best_of_k(valid, test, [1, 10_000], maximize=True)
    assert result["expected_valid"][0] == pytest.approx(np.mean(valid), abs=1e-15)
    assert result["valid_std"][0] == pytest.approx(np.std(valid), abs=1e-15)
    assert result["expected_test"][0] == pytest.approx(np.mean(test), abs=1e-15)
    assert result["expected_valid"][1] == pytest.approx(0.9, abs=1e-12)
    assert result["expected_test"][1] == pytest.approx(0.88, abs=1e-12)
    assert result["valid_std"][1] == pytest.approx(0.0, abs=1e-6)
    curve_ = expected_best_of_k(valid, test, range(1, 60), maximize=True)["expected_valid"]
    assert np.all(np.diff(curve_) >= 0) and curve_[-1] < 0.9  # rises towards the best, never past it
    assert best_trial(valid, test, True) == {"valid": 0.9, "test": 0.88}
    assert best_trial([1.0, 0.5, 0.5], [1.0, 0.4, 0.6], False) == pytest.approx({"valid": 0.5, "test": 0.5})


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize(("valid", "test", "maximize", "worst"), [
    ([0.6, -math.inf, 0.8, 0.7], [0.55, -math.inf, 0.79, 0.7], True, -math.inf),  # a diverged accuracy trial
    ([0.3, math.inf, 0.2], [0.31, math.inf, 0.22], False, math.inf),  # a diverged loss trial
    ([0.3, math.nan, 0.2], [0.31, math.nan, 0.22], False, math.inf),  # NaN validation: worst too
])
def test_a_diverged_trial_makes_the_expectation_worst_for_every_k_without_warnings(valid, test, maximize, worst):
    ks = [1, 2, 25, 50, 1000, 10**6]  # (1/N)^k underflows to 0 at the large ones: still worst
    result = expected_best_of_k(valid, test, ks, maximize)
    assert np.all(result["expected_valid"] == worst)
    assert np.all(np.isnan(result["valid_std"])) and np.all(np.isnan(result["test_std"]))
    if not math.isnan(test[1]):
        assert np.all(result["expected_test"] == worst)
    assert np.isfinite(result["valid_median"][1:]).all()  # the median is the robust reading
    assert best_trial(valid, test, maximize)["valid"] == (0.8 if maximize else 0.2)


def test_no_trials_give_nan():
    result = expected_best_of_k([], [], [1, 2], True)
    assert all(np.isnan(values).all() for values in result.values())


# ----------------------------------------------------------------------------- trials from sweeps


def _tables(builder):
    builder.write()
    data = collect_sweep(builder.sweep_dir, builder.runs_dir)
    labels = setting_labels(data.runs)
    return data, summary_table(data.runs, data.metrics, labels)


def _add(builder, optimizer, seed, *, rate=0.5, trial=None, state="completed", problem=QUADRATIC, epochs=4,
         **sections):
    run_id = builder.add(make_spec(problem, optimizer, seed, **sections), state,
                         None if state is None else curve(epochs, rate=rate, accuracy=problem is DIGITS))
    if trial is not None:
        builder.entries[-1]["trial"] = trial
    return run_id


def test_the_seeds_of_a_drawn_trial_are_one_trial_valued_at_their_median(builder):
    rates = {0: (0.2, 0.3, 0.9), 1: (0.5, 0.6, 0.7), 2: (1.0, 1.1, 0.1)}
    for trial, lr in enumerate((0.03, 0.3, 0.1)):
        for seed, rate in enumerate(rates[trial]):
            _add(builder, {"name": "sgd", "lr": lr, "momentum": 0.0}, seed, rate=rate, trial=trial)
    data, summary = _tables(builder)
    trials = trials_table(data.runs, data.metrics, summary)
    assert sorted(trials["trial"].tolist()) == [0, 1, 2] and (trials["runs"] == 3).all()
    loss = {t: 1.1 * (2.0 * math.exp(-np.median(r) * 3) + 0.01) for t, r in rates.items()}
    assert dict(zip(trials["trial"], trials["valid"], strict=True)) == pytest.approx(loss)
    budgets, table = tuning_budgets(data.runs, data.metrics, summary)
    assert (budgets["trials"] == 3).all() and list(budgets["k"]) == list(range(1, 51))
    assert list(budgets["beyond"]) == [k > 3 for k in range(1, 51)]
    assert budgets["expected_valid"].iloc[0] == pytest.approx(np.mean(list(loss.values())))
    best = table[table["budget"] == "best"].iloc[0]
    assert best["valid"] == pytest.approx(min(loss.values())) and best["pool"] == 3


def test_a_diverged_trial_counts_at_the_worst_finite_value_of_its_problem(builder):
    """sgd: lr 0.1 and 0.3 train, lr 10 diverges; adam (same problem) trains worse than all of sgd's."""
    for lr, rate in ((0.1, 0.5), (0.3, 0.9)):
        _add(builder, {"name": "sgd", "lr": lr, "momentum": 0.0}, 0, rate=rate)
    _add(builder, {"name": "sgd", "lr": 10.0, "momentum": 0.0}, 0, state="diverged")
    _add(builder, {"name": "adam", "lr": 0.001}, 0, rate=0.05)
    data, summary = _tables(builder)
    budgets, table = tuning_budgets(data.runs, data.metrics, summary)
    valid = {lr: 1.1 * (2.0 * math.exp(-rate * 3) + 0.01) for lr, rate in ((0.1, 0.5), (0.3, 0.9))}
    floor = 1.1 * (2.0 * math.exp(-0.05 * 3) + 0.01)  # adam's: the worst finite loss of quadratic_deep
    sgd = budgets[budgets["optimizer"] == "sgd"]
    pool = sorted([*valid.values(), floor])  # best (lowest) first; loss is minimised

    def expected(k):  # Dodge et al.'s sum, v(i) sorted worst first: here the i-th best gets ((3-i)/3)^k - ((2-i)/3)^k
        return sum(v * (((3 - i) / 3) ** k - ((2 - i) / 3) ** k) for i, v in enumerate(pool))

    assert sgd["expected_valid"].iloc[0] == pytest.approx(np.mean(pool))
    assert sgd["expected_valid"].iloc[1] == pytest.approx(expected(2))
    assert np.isfinite(sgd["expected_valid"]).all() and np.isfinite(sgd["valid_std"]).all()
    rows = table[table["optimizer"] == "sgd"].set_index("budget")
    assert rows.loc["small", "floored"] == 1 and rows.loc["small", "valid"] == pytest.approx(expected(25))
    assert table[table["optimizer"] == "adam"]["floored"].eq(0).all()


def test_a_grid_is_a_pool_of_its_settings_and_a_trial_number_crossed_with_a_grid_axis_is_several_trials(builder):
    for lr in (0.01, 0.1, 0.3, 1.0):  # a grid: no trial numbers
        for seed in range(2):
            _add(builder, {"name": "sgd", "lr": lr, "momentum": 0.0}, seed, rate=lr)
    for schedule in ({"name": "constant"}, {"name": "cosine"}):  # a search of 2 trials crossed with 2 schedules
        for trial, lr in enumerate((0.001, 0.01)):
            for seed in range(2):
                _add(builder, {"name": "adam", "lr": lr}, seed, rate=100 * lr, trial=trial, schedule=schedule)
    data, summary = _tables(builder)
    trials = trials_table(data.runs, data.metrics, summary)
    sgd, adam = trials[trials["optimizer"] == "sgd"], trials[trials["optimizer"] == "adam"]
    assert len(sgd) == 4 and sgd["trial"].isna().all()
    assert len(adam) == 4 and sorted(adam["trial"].tolist()) == [0, 0, 1, 1]
    budgets, table = tuning_budgets(data.runs, data.metrics, summary)
    assert set(budgets.groupby("optimizer")["trials"].first()) == {4}
    assert has_tuning(table)


# ----------------------------------------------------------------------------- one-shot and compute


def test_one_shot_is_the_trial_with_the_default_hyperparameters(builder):
    for lr, rate in ((0.1, 0.9), (0.010000000001, 0.3), (0.001, 0.1)):  # 0.01 within the relative 1e-9
        for seed in range(2):
            _add(builder, {"name": "sgd", "lr": lr, "momentum": 0.0}, seed, rate=rate)
    for lr in (0.001, 0.01):
        _add(builder, {"name": "adam", "lr": lr, "betas": [0.9, 0.999]}, 0, rate=lr * 10)
    _add(builder, {"name": "rmsprop", "lr": 0.01}, 0)
    data, summary = _tables(builder)
    defaults = {"sgd": {"name": "sgd", "lr": 0.01, "momentum": 0.0, "not_recorded": 1},
                "adam": {"lr": 0.01, "betas": (0.9, 0.999)}, "rmsprop": {"lr": 0.5}}
    _, table = tuning_budgets(data.runs, data.metrics, summary, defaults=defaults)
    shots = table[table["budget"] == "one-shot"].set_index("optimizer")
    chosen = summary[summary["label"].str.contains("lr=0.01") & (summary["optimizer"] == "sgd")].iloc[0]
    assert shots.loc["sgd", "setting_id"] == chosen["setting_id"]
    assert shots.loc["sgd", "valid"] == chosen["final_valid_median"]
    assert shots.loc["sgd", "test"] == chosen["final_test_median"]
    assert shots.loc["sgd", "note"] == "" and shots.loc["sgd", "runs"] == 2
    adam = summary[(summary["optimizer"] == "adam") & summary["label"].str.contains("lr=0.01")].iloc[0]
    assert shots.loc["adam", "setting_id"] == adam["setting_id"]  # betas compared as lists
    assert math.isnan(shots.loc["rmsprop", "valid"]) and shots.loc["rmsprop", "note"] == NO_DEFAULT_TRIAL

    _, table = tuning_budgets(data.runs, data.metrics, summary, defaults={})
    shots = table[table["budget"] == "one-shot"].set_index("optimizer")
    assert shots["valid"].isna().all() and shots["test"].isna().all()
    assert shots.loc["sgd", "note"] == f"{NO_DEFAULTS} for sgd"
    assert default_settings(data.runs, "sgd", {"lr": 0.0100001}) == []


def test_same_value_compares_numbers_lists_and_flags():
    assert same_value(0.01, 0.010000000001) and not same_value(0.01, 0.0100001)
    assert same_value("[0.9, 0.999]", [0.9, 0.999]) and not same_value("[0.9, 0.99]", (0.9, 0.999))
    assert same_value(False, np.bool_(False)) and not same_value(False, 0.0) and same_value(0, 0.0)
    assert same_value("cosine", "cosine") and not same_value("cosine", "constant")


def test_compute_spent_sums_epochs_and_training_seconds_of_the_runs(builder):
    # curve(n): epochs 0 … n-1, time 0.5 s per epoch
    for seed, epochs in ((0, 4), (1, 6)):
        _add(builder, {"name": "sgd", "lr": 0.1, "momentum": 0.0}, seed, epochs=epochs)  # trial A: 3 + 5 epochs
    _add(builder, {"name": "sgd", "lr": 0.01, "momentum": 0.0}, 0, epochs=3)  # trial B: 2 epochs
    _add(builder, {"name": "sgd", "lr": 0.01, "momentum": 0.0}, 1, state=None)  # pending: nothing spent
    _add(builder, {"name": "sgd", "lr": 1.0, "momentum": 0.0}, 0, epochs=2, state="failed")  # unfinished trial C
    data, summary = _tables(builder)
    trials = trials_table(data.runs, data.metrics, summary).set_index("label")
    assert trials.loc["sgd lr=0.1", ["runs", "epochs", "device_seconds"]].tolist() == [2, 8.0, 4.0]
    assert trials.loc["sgd lr=0.01", ["runs", "epochs", "device_seconds"]].tolist() == [1, 2.0, 1.0]
    assert not trials.loc["sgd lr=1", "finished"]
    _, table = tuning_budgets(data.runs, data.metrics, summary, defaults={"sgd": {"lr": 0.1, "momentum": 0.0}})
    rows = table.set_index("budget")
    assert rows.loc["best", ["trials", "runs", "epochs", "device_seconds", "pool"]].tolist() == [3, 4, 11.0, 5.5, 2]
    assert rows.loc["small", ["trials", "runs", "epochs", "device_seconds"]].tolist() == [25, 37.5, 125.0, 62.5]
    assert rows.loc["large", "epochs"] == 250.0 and rows.loc["large", "extrapolated"]
    assert rows.loc["one-shot", ["runs", "epochs", "device_seconds"]].tolist() == [2, 8.0, 4.0]


# ----------------------------------------------------------------------------- aggregate and report


def _small_sweep(builder, lrs=(0.3, 0.1, 0.01)):
    for problem in (QUADRATIC, DIGITS):
        for optimizer, grid in (("sgd", lrs), ("adam", lrs[:2])):
            for lr in grid:
                for seed in range(2):
                    _add(builder, {"name": optimizer, "lr": lr}, seed, rate=3 * lr + 0.1 * seed, problem=problem)
    builder.write()


def test_the_aggregate_writes_the_budgets_their_figure_and_the_report_section(builder):
    _small_sweep(builder)
    options = Options(defaults={"sgd": {"lr": 0.1}, "adam": {"lr": 0.001}})
    result = aggregate_sweep(builder.sweep_dir, builder.runs_dir, options)
    out = builder.sweep_dir / "aggregate"
    for name in ("budgets.csv", "budgets.parquet", "budget_summary.csv", "budget_summary.parquet",
                 "budget_summary.md", "budget_summary.tex", "plots/budgets.png", "plots/budgets.svg"):
        assert (out / name).is_file(), name
    assert len(result.budgets) == 4 * 50 and len(result.budget_summary) == 4 * 4
    assert set(result.budget_summary["budget"]) == {"one-shot", "small", "large", "best"}
    meta = json.loads((out / "aggregate.json").read_text())
    assert {"budgets", "budget_summary"} <= set(meta["tables"]) and meta["defaults"]["sgd"] == {"lr": 0.1}
    loaded = load_aggregate(out)
    pd.testing.assert_frame_equal(loaded.budgets, result.budgets, check_dtype=False)
    pd.testing.assert_frame_equal(loaded.budget_summary, result.budget_summary, check_dtype=False)
    assert loaded.options == result.options and loaded.figures["budgets"] == result.figures["budgets"]
    html = write_report([builder.sweep_dir], builder.runs_dir).read_text()
    assert 'id="budgets"' in html and 'href="#budgets"' in html and 'id="figure-budgets"' in html
    assert "no default trial" in html  # adam's lr=0.001 was not run
    assert "sgd lr=0.1" in html


def test_one_trial_per_optimizer_leaves_the_section_and_figure_out(builder):
    _small_sweep(builder, lrs=(0.1,))
    result = aggregate_sweep(builder.sweep_dir, builder.runs_dir)
    assert "budgets" not in result.figures and not has_tuning(result.budget_summary)
    assert (builder.sweep_dir / "aggregate" / "budget_summary.csv").is_file()
    html = write_report([builder.sweep_dir], builder.runs_dir).read_text()
    assert 'id="budgets"' not in html and 'href="#budgets"' not in html


def test_options_keep_the_defaults_and_read_old_aggregates():
    options = Options(defaults={"sgd": {"lr": 0.01, "momentum": 0.0}, "adam": {"betas": [0.9, 0.999]}})
    assert Options.from_dict(json.loads(json.dumps(options.as_dict()))) == options
    assert options.checked() == options
    assert Options.from_dict({"quantiles": [0.25, 0.75], "criterion": "best_valid"}).defaults == {}


def test_the_command_line_finds_the_defaults_of_the_optimizers_in_the_sweep(builder):
    from orchestrator.analysis_commands import Inputs, optimizer_defaults, with_defaults

    _small_sweep(builder)
    where = Inputs([builder.sweep_dir], [], builder.sweep_dir / "aggregate")
    options = with_defaults(Options(defaults={"adam": {"lr": 0.5}}), where)
    assert options.defaults["adam"] == {"lr": 0.5}  # what the caller gave wins
    assert options.defaults["sgd"]["lr"] == 0.01 and "name" not in options.defaults["sgd"]
    assert optimizer_defaults(["no_such_optimizer"]) == {}
