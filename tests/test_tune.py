"""The DeepOBS protocol end to end on a tiny grid: tune, select the best setting, rerun it with more seeds."""

from __future__ import annotations

import json
import re
import statistics
from pathlib import Path

import pytest

from orchestrator.store import ResultsStore

pytestmark = pytest.mark.integration  # runs real jobs

GRID = ("problem=rosenbrock", "problem.steps_per_epoch=5", "train.epochs=2", "logger=disabled",
        "optimizer=sgd,adam", "optimizer.lr=0.0001,0.001")


def final_valid_loss(results: Path, run_id: str) -> float:
    lines = (results / "runs" / run_id / "metrics.jsonl").read_text().splitlines()
    return json.loads(lines[-1])["valid_loss"]


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    from orchestrator.cli import main

    results = tmp_path_factory.mktemp("tune") / "results"
    status = main(["tune", *GRID, "--seeds", "3", "--results", str(results)])
    return status, results


def test_the_best_setting_per_optimizer_is_rerun_with_seeds_42_to_44(tuned):
    status, results = tuned
    assert status == 0
    store = ResultsStore(results)
    first = store.find_sweep("adhoc")
    second = store.find_sweep("adhoc-best")
    first_runs, second_runs = store.sweep_runs(first), store.sweep_runs(second)
    assert len(first_runs) == 4 and len(second_runs) == 6

    # The selection, worked out from the run folders by hand: per optimizer the lr with the lowest final valid loss.
    expected = {}
    for optimizer in ("sgd", "adam"):
        runs = [r for r in first_runs if r["spec"]["optimizer"]["name"] == optimizer]
        best = min(runs, key=lambda r: final_valid_loss(results, r["run_id"]))
        expected[optimizer] = best["spec"]["optimizer"]["lr"]
    chosen = {r["spec"]["optimizer"]["name"]: r["spec"]["optimizer"]["lr"] for r in second_runs}
    assert chosen == expected
    assert sorted(r["spec"]["seed"] for r in second_runs) == [42, 42, 43, 43, 44, 44]
    # Stage 2 keeps stage 1's setting ids: the spec is the same but for the seed.
    assert {r["setting_id"] for r in second_runs} <= {r["setting_id"] for r in first_runs}
    for run in second_runs:
        assert json.loads((results / "runs" / run["run_id"] / "status.json").read_text())["state"] == "completed"

    link = json.loads((first / "protocol.json").read_text())
    assert link["second_stage"] == second.name and link["criterion"] == "final_valid"
    recorded = json.loads((second / "sweep.json").read_text())["protocol"]
    assert recorded["stage"] == 2 and recorded["tuned_from"] == first.name and recorded["seeds"] == [42, 43, 44]


def test_continuing_again_starts_nothing_twice(tuned, optbench):
    _, results = tuned
    store = ResultsStore(results)
    before = {p.name: p.stat().st_mtime_ns for p in store.runs_dir.glob("*/status.json")}
    status, out, _ = optbench("tune", "--continue", store.find_sweep("adhoc").name, "--results", results)
    assert status == 0 and "Nothing to start" in out
    assert {p.name: p.stat().st_mtime_ns for p in store.runs_dir.glob("*/status.json")} == before


def test_the_aggregate_of_stage_2_reports_median_and_quartiles_of_10_seeds_worth(tuned, optbench):
    _, results = tuned
    status, _, _ = optbench("aggregate", "adhoc-best", "--results", results, "--no-wandb")
    assert status == 0
    store = ResultsStore(results)
    second = store.find_sweep("adhoc-best")
    import pandas as pd

    best = pd.read_csv(second / "aggregate" / "best.csv")
    assert len(best) == 2 and (best["n"] == 3).all()
    for row in best.itertuples():
        losses = [final_valid_loss(results, r["run_id"]) for r in store.sweep_runs(second)
                  if r["setting_id"] == row.setting_id]
        assert row.final_valid_median == pytest.approx(statistics.median(losses))


def test_default_grid_is_deepobs_36_learning_rates_at_seed_42(optbench, results):
    status, out, _ = optbench("tune", "problem=rosenbrock", "--dry-run", "--results", results)
    assert status == 0
    assert "would start 36 of 36 runs" in " ".join(out.split())
    lrs = sorted({float(m) for m in re.findall(r"lr=([0-9.e+-]+)", out)})
    assert len(lrs) == 36 and lrs[0] == pytest.approx(1e-5) and lrs[-1] == pytest.approx(1e2)


@pytest.mark.parametrize("arguments, expected", [
    (("--seeds", "0"), "--seeds takes a positive count"),
    (("optimizer=pal",), "Optimizer pal has no learning rate to tune"),
    (("--continue", "nosuch"), "There is no results folder"),
])
def test_bad_tune_requests_are_one_sentence(optbench, results, arguments, expected):
    status, _, err = optbench("tune", "problem=rosenbrock", *arguments, "--results", results)
    assert status == 2 and expected in " ".join(err.split())
    assert not (results / "sweeps").exists()
