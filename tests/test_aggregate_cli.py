"""optbench aggregate / report / export on a real launched sweep: several inputs, targets, DeepOBS files, W&B."""

from __future__ import annotations

import json

import pandas as pd
import pytest

pytestmark = pytest.mark.integration  # runs real jobs

TINY = ("problem=rosenbrock", "problem.steps_per_epoch=5", "train.epochs=2", "optimizer=sgd,adam",
        "optimizer.lr=0.0001,0.001")


@pytest.fixture(scope="module")
def launched(tmp_path_factory):
    from orchestrator.cli import main

    results = tmp_path_factory.mktemp("cli") / "results"
    assert main(["launch", *TINY, "seed=0,1", "logger=offline", "--results", str(results)]) == 0
    assert main(["launch", *TINY, "seed=2", "logger=disabled", "--results", str(results)]) == 0
    return results


def test_aggregate_logs_a_summary_run_to_wandb_in_the_sweeps_group(launched, optbench):
    (sweep,) = [d for d in (launched / "sweeps").iterdir() if json.loads((d / "sweep.json").read_text())["runs"] == 8]
    status, out, err = optbench("aggregate", sweep.name, "--results", launched)
    assert status == 0, err
    (run,) = (sweep / "aggregate" / "wandb").glob("offline-run-*")
    assert "W&B summary run:" in out and run.name in "".join(out.split())
    tables = {p.name.split("_")[0] for p in (run / "files" / "media" / "table").rglob("*.table.json")}
    assert {"summary", "best", "robustness", "speed"} <= tables


def test_two_sweeps_exported_to_deepobs_and_imported_beside_them(launched, optbench, tmp_path):
    sweeps = sorted(d.name for d in (launched / "sweeps").iterdir())
    status, out, err = optbench("export", "deepobs", sweeps[0], "--output", tmp_path / "deepobs", "--results", launched)
    assert status == 0, err
    files = list((tmp_path / "deepobs").rglob("random_seed__*.json"))
    assert files and all(f.relative_to(tmp_path / "deepobs").parts[0] == "rosenbrock" for f in files)

    status, _, err = optbench("aggregate", *sweeps, "--deepobs", tmp_path / "deepobs", "--no-wandb",
                              "--target", "valid_loss=1e9", "--results", launched)
    assert status == 0, err
    out = launched / "aggregates" / "+".join([*sweeps, "deepobs-deepobs"])
    runs = pd.read_csv(out / "runs.csv")
    assert len(runs) == 12 and runs["run_id"].is_unique  # the imported runs are the same runs, counted once
    targets = pd.read_csv(out / "targets.csv")
    assert (targets["target"] == 1e9).all() and (targets["reached"] == targets["n"]).all()
    assert (targets["steps_to_target_median"] == 0).all()  # a target of 1e9 is reached at the first evaluation
    status, _, err = optbench("report", *sweeps, "--results", launched)
    assert status == 0, err
    html = (launched / "aggregates" / "+".join(sweeps) / "report.html").read_text()
    assert all(sweep in html for sweep in sweeps) and "12 runs in 4 settings" in html


@pytest.mark.parametrize("arguments, expected", [
    (("--target", "valid_accuracy"), "is not [PROBLEM:]METRIC=VALUE"),
    (("--target", "speed=3"), "is not [PROBLEM:]METRIC=VALUE"),
    (("--deepobs", "/nonexistent"), "is not a folder"),
    (("--quantiles", "0.5,2"), "strictly between 0 and 1"),
])
def test_bad_aggregate_requests_are_one_sentence(launched, optbench, arguments, expected):
    status, _, err = optbench("aggregate", "adhoc", *arguments, "--no-wandb", "--results", launched)
    assert status == 2 and expected in " ".join(err.split())
