"""Random and quasi-random search: AlgoPerf's Halton sequence, reproducible draws, search spaces, bad input."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from scipy import stats

from orchestrator import halton, tune
from orchestrator.config import ConfigTree
from orchestrator.search import Dimension, Search, draw, from_file
from orchestrator.store import ResultsStore
from orchestrator.sweep import expand

LR = "optimizer.lr=tag(log,interval(1e-4,1e-1))"


def test_halton_digits_worked_by_hand():
    """Base 3, digits scrambled 1→2, 2→1: i = 1, 2, 3=10₃, 4=11₃, 5=12₃ → 2/3, 1/3, 2/9, 8/9, 5/9."""
    assert halton.dimension(5, 3, [0, 2, 1], None) == pytest.approx([2 / 3, 1 / 3, 2 / 9, 8 / 9, 5 / 9])
    shifted = halton.dimension(5, 3, [0, 2, 1], 0.5)
    assert shifted == pytest.approx([1 / 6, 5 / 6, 13 / 18, 7 / 18, 1 / 18])


def test_halton_bases_are_the_odd_primes_below_the_largest_under_1000():
    assert halton.bases(1) == [991] and halton.bases(2) == [983, 991] and halton.bases(3) == [977, 983, 991]
    assert len(halton.odd_primes_below(1000)) == 167  # 168 primes below 1000, less 2
    assert halton.bases(200)[-1] == 1997  # beyond 166 dimensions: odd primes below 2000, less the largest (1999)


def test_halton_points_are_fixed_and_the_seed_only_orders_them():
    """AlgoPerf shuffles with numpy's global generator: the same set of points whatever the seed."""
    first, second = halton.sequence(7, 2, seed=0), halton.sequence(7, 2, seed=1)
    assert sorted(first) == sorted(second) and first != second
    digits, shift = halton.digit_permutation(983)
    unshuffled = halton.dimension(107, 983, digits, shift)[100:]
    assert sorted(p[0] for p in first) == sorted(unshuffled)
    expected = list(zip(unshuffled, halton.dimension(107, 991, *halton.digit_permutation(991))[100:], strict=True))
    np.random.seed(0)
    np.random.shuffle(expected)  # what numpy.random.seed(0) before AlgoPerf's generate_search gives
    assert first == expected
    assert all(0 <= x < 1 for point in first for x in point)


def test_values_are_scaled_as_algoperf_scales_them():
    assert halton.scale_log(0.5, 1e-4, 1e-2) == pytest.approx(1e-3)
    assert halton.scale_linear(0.25, 0.0, 0.8) == pytest.approx(0.2)
    assert halton.pick(0.999, ["a", "b", "c"]) == "c" and halton.pick(0.0, ["a", "b"]) == "a"


def test_random_draws_are_reproducible_and_distributed_as_asked():
    """2,000 draws at a fixed seed: Kolmogorov-Smirnov against the asked distributions (deterministic)."""
    dims = [Dimension("a", 1e-5, 1e-1, log=True), Dimension("b", 0.0, 0.9), Dimension("c", values=(8, 16, 32, 64))]
    search = Search("random", 2000, 7, None)
    points = draw(search, dims)
    assert points == draw(search, dims) and points != draw(Search("random", 2000, 8, None), dims)
    a = np.log10([p["a"] for p in points])
    assert stats.kstest(a, stats.uniform(-5, 4).cdf).pvalue > 0.05
    assert stats.kstest([p["b"] for p in points], stats.uniform(0, 0.9).cdf).pvalue > 0.05
    counts = [sum(p["c"] == v for p in points) for v in (8, 16, 32, 64)]
    assert stats.chisquare(counts).pvalue > 0.05
    assert stats.kstest(a, stats.uniform(-4, 3).cdf).pvalue < 1e-6  # the test can tell a wrong range apart


def test_a_search_draws_the_same_points_for_every_grid_combination_and_records_them(tmp_path):
    sweep = expand(["search=random", "search.trials=4", LR, "optimizer.momentum=interval(0,0.9)",
                    "optimizer=sgd", "problem=quadratic_deep,digits_mlp", "seed=0,1"])
    assert len(sweep.runs) == 16 and [r.trial for r in sweep.runs[:4]] == [0, 1, 2, 3]
    points = {(r.spec["problem"]["name"], r.trial): (r.spec["optimizer"]["lr"], r.spec["optimizer"]["momentum"])
              for r in sweep.runs}
    assert points[("quadratic_deep", 2)] == points[("digits_mlp", 2)]  # paired across the grid
    assert all(1e-4 <= lr < 1e-1 and 0 <= m < 0.9 for lr, m in points.values())
    again = expand(["search=random", "search.trials=4", LR, "optimizer.momentum=interval(0,0.9)", "optimizer=sgd",
                    "problem=quadratic_deep,digits_mlp", "seed=0,1"])
    assert [r.run_id for r in again.runs] == [r.run_id for r in sweep.runs]  # same command and seed, same runs
    assert sweep.search["space"]["optimizer.lr"] == {"min": 1e-4, "max": 1e-1, "scaling": "log"}
    store = ResultsStore(tmp_path)
    loaded = store.load_sweep(store.record(sweep))
    assert [(r.trial, r.study) for r in loaded.runs] == [(r.trial, None) for r in sweep.runs]
    assert loaded.search == sweep.search


def test_choice_and_range_are_dimensions_while_plain_lists_and_logspace_stay_grids():
    sweep = expand(["search=quasirandom", "search.trials=3", "optimizer=sgd", "optimizer.momentum=choice(0.0,0.9)",
                    "train.batch_size=range(16,64,16)", "optimizer.lr=logspace(1e-3,1e-1,2)"])
    assert len(sweep.runs) == 6  # 2 grid values × 3 draws
    assert set(sweep.search["space"]) == {"optimizer.momentum", "train.batch_size"}
    assert {r.spec["train"]["batch_size"] for r in sweep.runs} <= {16, 32, 48}


def test_an_algoperf_search_space_file_draws_as_its_overrides_would(tmp_path):
    space = tmp_path / "space.json"
    space.write_text(json.dumps({"optimizer.lr": {"min": 1e-4, "max": 1e-1, "scaling": "log"},
                                 "optimizer.momentum": {"feasible_points": [0.0, 0.9]}}))
    from_json = expand(["search=quasirandom", "search.trials=5", f"search.space={space}", "optimizer=sgd"])
    from_overrides = expand(["search=quasirandom", "search.trials=5", LR, "optimizer.momentum=choice(0.0,0.9)",
                             "optimizer=sgd"])
    assert [r.run_id for r in from_json.runs] == [r.run_id for r in from_overrides.runs]
    assert [d.key for d in from_file(space)] == ["optimizer.lr", "optimizer.momentum"]  # the file's order


def test_the_algoperf_protocol_runs_each_trial_once_per_study(optbench, tmp_path):
    conf = tmp_path / "conf" / "sweep"
    conf.mkdir(parents=True)
    (conf / "ap.yaml").write_text("params:\n  optimizer: sgd\n  search: quasirandom\n  search.trials: 5\n"
                                  "  optimizer.lr: tag(log,interval(1e-4,1e-1))\nprotocol:\n  name: algoperf\n")
    status, out, err = optbench("launch", "--config-dir", tmp_path / "conf", "sweep=ap", "--dry-run",
                                "--results", tmp_path / "results")
    assert status == 0 and "would start 15 of 15 runs" in out, err
    tree = ConfigTree(user_dirs=[tmp_path / "conf"])
    studies = tune.algoperf_studies(expand(["sweep=ap"], tree), tune.Protocol.from_config({"name": "algoperf"}),
                                    lambda extra: expand(["sweep=ap", *extra], tree))
    assert sorted((r.study, r.trial) for r in studies.runs) == [(s, t) for s in range(3) for t in range(5)]
    assert all(r.spec["seed"] == r.study for r in studies.runs)
    lrs = {s: sorted(r.spec["optimizer"]["lr"] for r in studies.runs if r.study == s) for s in range(3)}
    assert lrs[0] == lrs[1] == lrs[2]  # the same trials in every study, as AlgoPerf's Halton draws give


def test_tune_draws_deepobs_learning_rates_when_asked_to_search(optbench, tmp_path):
    status, out, err = optbench("tune", "search=random", "search.trials=4", "problem=quadratic_deep", "--dry-run",
                                "--results", tmp_path / "results")
    assert status == 0 and "would start 4 of 4 runs" in out, err
    lrs = [float(t) for t in re.findall(r"lr=([0-9.e-]+)", out)]
    assert len(lrs) == 4 and all(1e-5 <= lr < 1e2 for lr in lrs)


@pytest.mark.parametrize(("overrides", "fragment"), [
    (("search=random", "optimizer.lr=tag(log,interval(0,0.1))"), "a log scale needs bounds > 0 (got 0)"),
    (("search=random", "optimizer.lr=interval(0.1,0.1)"), "the interval from 0.1 to 0.1 is empty"),
    (("search=random", "search.trials=0", LR), "search.trials must be >= 1 (got 0)."),
    (("search=random", "optimizer.nesterov=interval(0,1)"), "optimizer.nesterov is not a number"),
    (("search=random",), "search=random needs a search space"),
    (("search=random,quasirandom", LR), "search cannot be swept"),
    (("optimizer.lr=interval(1e-4,1e-1)",), "is an interval; a grid needs values"),
    (("search.space=space.json",), "search.space needs a search that draws points"),
    (("search=random", "search.space=nowhere.json"), "search.space=nowhere.json cannot be read"),
    (("optimizer=algoperf_is_no_optimizer",), "Unknown optimizer"),
])
def test_bad_search_input_is_one_sentence(optbench, tmp_path, monkeypatch, overrides, fragment):
    monkeypatch.chdir(tmp_path)
    status, _, err = optbench("launch", *overrides, "--results", tmp_path / "results")
    text = " ".join(err.split())
    assert status == 2 and fragment in text and text.count("optbench: error") == 1, text
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize(("content", "fragment"), [
    ("{not json", "is not valid JSON"),
    ("[]", "must map config keys to ranges"),
    ('{"optimizer.lr": {"min": 1e-4, "max": 1e-1}}', "key 'optimizer.lr' must be"),
    ('{"optimizer.lr": {"min": 1e-4, "max": 1e-1, "scaling": "cubic"}}', "key 'optimizer.lr' must be"),
    ('{"optimizer.lr": {"feasible_points": []}}', "key 'optimizer.lr' must be"),
    ('{"optimizer.lr": {"min": -1, "max": 1e-1, "scaling": "log"}}', "a log scale needs bounds > 0"),
])
def test_a_malformed_search_space_file_is_one_sentence(optbench, tmp_path, content, fragment):
    space = tmp_path / "space.json"
    space.write_text(content)
    status, _, err = optbench("launch", "search=random", f"search.space={space}", "--results", tmp_path / "r")
    assert status == 2 and fragment in " ".join(err.split())


def test_a_key_in_the_space_file_and_on_the_command_line_is_refused(optbench, tmp_path):
    space = tmp_path / "space.json"
    space.write_text('{"optimizer.lr": {"min": 1e-4, "max": 1e-1, "scaling": "log"}}')
    status, _, err = optbench("launch", "search=random", f"search.space={space}", "optimizer.lr=0.1,0.01",
                              "--results", tmp_path / "r")
    assert status == 2 and "and also given as 'optimizer.lr=0.1,0.01'; give each key one way" in " ".join(err.split())


def test_the_algoperf_protocol_refuses_what_it_cannot_score(optbench, tmp_path):
    conf = tmp_path / "conf" / "sweep"
    conf.mkdir(parents=True)
    (conf / "grid.yaml").write_text("params:\n  optimizer.lr: 0.1,0.01\nprotocol:\n  name: algoperf\n")
    (conf / "seeded.yaml").write_text(f"params:\n  search: random\n  optimizer.lr: '{LR.split('=', 1)[1]}'\n"
                                      "seeds: range(2)\nprotocol:\n  name: algoperf\n")
    for name, fragment in (("grid", "scores trials drawn by a search"), ("seeded", "sets the seeds, one per study")):
        status, _, err = optbench("launch", "--config-dir", tmp_path / "conf", f"sweep={name}", "--dry-run")
        assert status == 2 and fragment in " ".join(err.split()), err
