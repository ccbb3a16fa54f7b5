"""Statistics over seeds against NumPy computed group by group."""

from __future__ import annotations

import math

import numpy as np
import pytest
from analysis_factory import curve, make_spec

from analysis.collect import collect_sweep
from analysis.stats import curve_stats, group_stats, quantile_name, validate_quantiles


def _by_hand(codes, values, n_groups, quantiles):
    """Independent truth: numpy per group, NaN left out."""
    expected = {k: np.full((n_groups, values.shape[1]), np.nan) for k in ("median", "mean", "std", "n")}
    for q in quantiles:
        expected[quantile_name(q)] = np.full((n_groups, values.shape[1]), np.nan)
    for g in range(n_groups):
        for j in range(values.shape[1]):
            v = values[codes == g, j]
            v = v[~np.isnan(v)]
            expected["n"][g, j] = len(v)
            if len(v):
                expected["median"][g, j] = np.median(v)
                expected["mean"][g, j] = np.mean(v)
                for q in quantiles:
                    expected[quantile_name(q)][g, j] = np.quantile(v, q)
            if len(v) > 1:
                expected["std"][g, j] = np.std(v, ddof=1)
    return expected


@pytest.mark.parametrize("layout", ["equal", "ragged"])
def test_group_stats_equal_numpy_per_group(layout):
    rng = np.random.default_rng(1)
    if layout == "equal":  # the dense path: every group the same size
        codes = np.repeat(np.arange(7), 5)
    else:  # the lexsort path: one huge group, many tiny ones, one empty
        codes = np.r_[np.zeros(400, dtype=int), np.arange(1, 30), np.arange(1, 30)]
    rng.shuffle(codes)
    values = rng.normal(size=(len(codes), 3))
    values[rng.random(values.shape) < 0.15] = np.nan
    n_groups = int(codes.max()) + 2  # the last group has no rows
    quantiles = (0.1, 0.25, 0.75, 0.9)
    result = group_stats(codes, values, n_groups, quantiles)
    expected = _by_hand(codes, values, n_groups, quantiles)
    for name, truth in expected.items():
        assert np.allclose(result[name], truth, equal_nan=True, rtol=1e-12, atol=1e-12), name


def test_group_stats_keeps_infinities_and_all_nan_groups():
    codes = np.array([0, 0, 0, 1, 1])
    values = np.array([np.inf, np.inf, 1.0, np.nan, np.nan])
    result = group_stats(codes, values, 2, (0.25, 0.75))
    assert result["median"][0, 0] == np.inf  # equal infinities do not become NaN
    assert result["q25"][0, 0] == np.inf and result["n"][0, 0] == 3  # between 1 and inf
    low = group_stats(np.zeros(3, dtype=int), np.array([-np.inf, 1.0, 2.0]), 1, (0.25,))
    assert low["q25"][0, 0] == -np.inf and low["median"][0, 0] == 1.0
    assert np.isnan(result["median"][1, 0]) and result["n"][1, 0] == 0


def test_curve_stats_match_numpy_per_setting_and_epoch(demo_sweep):
    data = collect_sweep(demo_sweep.sweep_dir, demo_sweep.runs_dir)
    quantiles = (0.25, 0.75)
    curves = curve_stats(data.metrics, quantiles)
    metrics = data.metrics
    assert len(curves) == len(metrics.groupby(["setting_id", "epoch"], observed=True))
    for (setting, epoch), group in metrics.groupby(["setting_id", "epoch"], observed=True):
        row = curves[(curves["setting_id"] == setting) & (curves["epoch"] == epoch)]
        assert len(row) == 1
        for metric in ("train_loss", "valid_loss", "lr"):
            v = group[metric].to_numpy()
            v = v[~np.isnan(v)]
            assert row[f"{metric}_n"].iloc[0] == len(v)
            if len(v) == 0:
                assert np.isnan(row[f"{metric}_median"].iloc[0])
                continue
            assert row[f"{metric}_median"].iloc[0] == pytest.approx(np.median(v))
            assert row[f"{metric}_q25"].iloc[0] == pytest.approx(np.quantile(v, 0.25))
            assert row[f"{metric}_q75"].iloc[0] == pytest.approx(np.quantile(v, 0.75))
            assert row[f"{metric}_mean"].iloc[0] == pytest.approx(np.mean(v))
            if len(v) > 1:
                assert row[f"{metric}_std"].iloc[0] == pytest.approx(np.std(v, ddof=1))


def test_a_setting_with_nan_does_not_poison_another(builder):
    for seed in range(3):
        builder.add(make_spec(seed=seed), "completed", curve(3, scale=1 + seed))
        bad = curve(3, scale=1 + seed, lr=0.5)
        bad[1]["train_loss"] = math.nan
        builder.add(make_spec(optimizer={"name": "sgd", "lr": 0.5}, seed=seed), "completed", bad)
    builder.write()
    data = collect_sweep(builder.sweep_dir, builder.runs_dir)
    curves = curve_stats(data.metrics)
    clean = curves[curves["setting_id"] == builder.entries[0]["setting_id"]]
    dirty = curves[curves["setting_id"] == builder.entries[1]["setting_id"]]
    truth = [np.median([curve(3, scale=1 + s)[e]["train_loss"] for s in range(3)]) for e in range(3)]
    assert np.allclose(clean["train_loss_median"], truth)
    assert list(clean["train_loss_n"]) == [3, 3, 3]
    assert list(dirty["train_loss_n"]) == [3, 0, 3]
    assert np.isnan(dirty["train_loss_median"].iloc[1])
    assert np.allclose(dirty["train_loss_median"].iloc[[0, 2]], [truth[0], truth[2]])


@pytest.mark.parametrize("bad, message", [
    ((0.0, 0.75), "strictly between 0 and 1"),
    ((0.25, 1.0), "strictly between 0 and 1"),
    ((), "at least one"),
    (("a",), "numbers"),
    ((float("nan"),), "strictly between 0 and 1"),
])
def test_validate_quantiles_rejects_bad_values_in_one_sentence(bad, message):
    with pytest.raises(ValueError, match=message) as error:
        validate_quantiles(bad)
    text = str(error.value).replace("e.g.", "eg")
    assert text.count(". ") == 0 and text.endswith(".")


def test_validate_quantiles_sorts_and_names():
    assert validate_quantiles([0.75, 0.25, 0.25]) == (0.25, 0.75)
    assert [quantile_name(q) for q in (0.25, 0.75, 0.025, 0.5)] == ["q25", "q75", "q2.5", "q50"]
