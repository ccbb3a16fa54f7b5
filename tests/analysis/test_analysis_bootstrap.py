"""bootstrap_median_ci against a NumPy reference, the exact bootstrap distribution and its coverage."""

from __future__ import annotations

import math

import numpy as np
import pytest

from analysis import stats
from analysis.stats import bootstrap_median_ci, group_stats


def _reference(values, confidence=0.95, resamples=2000, seed=0):
    """One group, drawn the documented way: resamples × n uniforms → positions into the sorted values."""
    sample = np.sort(values[~np.isnan(values)])
    n = len(sample)
    u = np.random.default_rng(seed).random((resamples, n))
    medians = np.median(sample[np.minimum((u * n).astype(int), n - 1)], axis=1)
    tail = (1 - confidence) / 2
    return np.quantile(medians, [tail, 1 - tail])


@pytest.mark.parametrize("n, confidence, seed", [(2, 0.95, 0), (7, 0.95, 3), (12, 0.9, 11), (31, 0.99, 5)])
def test_one_group_equals_the_numpy_reference_for_the_same_seed(n, confidence, seed):
    values = np.random.default_rng(100 + n).normal(size=n)
    low, high = bootstrap_median_ci(np.zeros(n, dtype=int), values, 1, confidence, 2000, seed)
    assert low.shape == high.shape == (1,)
    assert [low[0], high[0]] == pytest.approx(_reference(values, confidence, 2000, seed), rel=1e-12, abs=1e-12)


def test_resampling_in_chunks_draws_the_same_numbers(monkeypatch):
    rng = np.random.default_rng(2)
    codes = np.repeat(np.arange(6), 9)
    values = rng.normal(size=(len(codes), 2))
    whole = bootstrap_median_ci(codes, values, 6, resamples=500, seed=4)
    monkeypatch.setattr(stats, "BOOTSTRAP_CHUNK", 100)  # under two resamples of all six groups at once
    chunked = bootstrap_median_ci(codes, values, 6, resamples=500, seed=4)
    assert np.array_equal(whole[0], chunked[0]) and np.array_equal(whole[1], chunked[1])
    monkeypatch.setattr(stats, "BOOTSTRAP_CHUNK", 1)
    assert np.array_equal(whole[1], bootstrap_median_ci(codes, values, 6, resamples=500, seed=4)[1])


def _exact_bootstrap_quantile(sample, q):
    """The q-quantile of the exact bootstrap distribution of the median of an odd-sized sample.

    The resample median is the k-th smallest value x_(k) or below exactly when at least
    (n+1)/2 of the n draws fall on x_(1..k), which happens with a binomial probability.
    """
    n = len(sample)
    for k in range(1, n + 1):
        p = k / n
        cdf = sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range((n + 1) // 2, n + 1))
        if cdf >= q:
            return k - 1  # 0-based index into the sorted sample
    return n - 1


def test_unequal_groups_with_nan_match_their_exact_bootstrap_distribution():
    rng = np.random.default_rng(8)
    sizes = [5, 9, 9, 21, 1, 0, 7]  # groups 4 (one value) and 5 (none) have no interval
    codes = np.repeat(np.arange(len(sizes)), sizes)
    values = rng.normal(size=len(codes)) + 10.0 * codes  # far apart: a mixed-up group would show
    nan_codes = np.array([0, 3, 3, 6])  # NaN rows do not count towards a group's size
    codes = np.r_[codes, nan_codes]
    values = np.r_[values, np.full(len(nan_codes), np.nan)]
    order = rng.permutation(len(codes))
    low, high = bootstrap_median_ci(codes[order], values[order], len(sizes) + 1, resamples=20000, seed=1)
    assert np.isnan(low[4:6]).all() and np.isnan(high[4:6]).all() and np.isnan([low[7], high[7]]).all()
    for g in (0, 1, 2, 3, 6):
        sample = np.sort(values[(codes == g) & ~np.isnan(values)])
        for bound, q in ((low[g], 0.025), (high[g], 0.975)):
            k = _exact_bootstrap_quantile(sample, q)
            assert sample[max(k - 1, 0)] <= bound <= sample[min(k + 1, len(sample) - 1)], (g, q)
        assert low[g] <= np.median(sample) <= high[g]


def test_nan_values_are_left_out_of_their_group():
    values = np.array([1.0, np.nan, 3.0, 2.0, np.nan, 5.0, 4.0])
    with_nan = bootstrap_median_ci(np.zeros(7, dtype=int), values, 1, seed=9)
    without = bootstrap_median_ci(np.zeros(5, dtype=int), values[~np.isnan(values)], 1, seed=9)
    assert with_nan == without


def test_the_95_percent_interval_covers_the_true_median_about_95_percent_of_the_time():
    rng = np.random.default_rng(12)
    groups, n = 400, 25
    codes = np.repeat(np.arange(groups), n)
    values = rng.normal(loc=3.0, size=groups * n)  # true median 3
    low, high = bootstrap_median_ci(codes, values, groups, resamples=1000, seed=0)
    coverage = np.mean((low <= 3.0) & (3.0 <= high))
    assert 0.90 <= coverage <= 0.98, coverage
    assert np.all(high - low > 0)


def test_same_seed_same_interval_other_seed_other_interval():
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 5, size=60)
    values = rng.normal(size=(60, 3))
    first = bootstrap_median_ci(codes, values, 5, seed=21)
    again = bootstrap_median_ci(codes, values, 5, seed=21)
    other = bootstrap_median_ci(codes, values, 5, seed=22, resamples=50)
    assert first[0].shape == (5, 3)
    assert np.array_equal(first[0], again[0]) and np.array_equal(first[1], again[1])
    assert not np.array_equal(first[0], other[0])


def test_group_quantiles_that_fall_on_a_value_next_to_an_infinity_are_that_value():
    """NumPy's quantile gives NaN here (inf · 0); an odd number of seeds with one diverged run hit it."""
    codes = np.repeat(np.arange(3), [3, 3, 5])
    values = np.array([1.0, 2.0, np.inf, -np.inf, 2.0, 3.0, 1.0, 2.0, 3.0, 4.0, np.inf])
    result = group_stats(codes, values, 3, (0.25, 0.75))
    assert result["median"][:, 0].tolist() == [2.0, 2.0, 3.0]
    assert result["q25"][:, 0].tolist() == [1.5, -np.inf, 2.0]
    assert result["q75"][:, 0].tolist() == [np.inf, 2.5, 4.0]


@pytest.mark.parametrize("resamples", [2000, 2001, 41])
def test_infinities_give_infinite_bounds_never_nan(resamples):
    codes = np.repeat(np.arange(5), [4, 5, 5, 2, 3])
    values = np.array([
        1.0, 2.0, 3.0, np.inf,  # one diverged run of four: the upper bound is inf
        1.0, 2.0, np.inf, np.inf, np.inf,  # three of five: nearly every resample median is inf
        -np.inf, -np.inf, -np.inf, 0.5, 0.7,  # accuracies ranked worst
        -np.inf, np.inf,  # the two middle values of a mixed resample have no median
        np.inf, np.inf, np.inf,
    ])
    low, high = bootstrap_median_ci(codes, values, 5, resamples=resamples)
    assert not np.isnan(low).any() and not np.isnan(high).any()
    assert 1.0 <= low[0] <= 2.0 and high[0] == np.inf
    assert 1.0 <= low[1] and high[1] == np.inf
    assert low[2] == -np.inf and -np.inf < high[2] <= 0.7
    assert (low[3], high[3]) == (-np.inf, np.inf)
    assert (low[4], high[4]) == (np.inf, np.inf)


@pytest.mark.parametrize("kwargs, message", [
    ({"confidence": 1.0}, "strictly between 0 and 1"),
    ({"confidence": 0.0}, "strictly between 0 and 1"),
    ({"resamples": 0}, "at least 1"),
])
def test_bad_arguments_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        bootstrap_median_ci(np.zeros(3, dtype=int), np.ones(3), 1, **kwargs)


def test_code_count_must_match_rows_and_empty_input_gives_nan():
    with pytest.raises(ValueError, match="2 group codes for 3 rows"):
        bootstrap_median_ci(np.zeros(2, dtype=int), np.ones(3), 1)
    low, high = bootstrap_median_ci(np.zeros(0, dtype=int), np.zeros((0, 2)), 3)
    assert low.shape == (3, 2) and np.isnan(low).all() and np.isnan(high).all()
