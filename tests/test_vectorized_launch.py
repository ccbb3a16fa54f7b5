"""``launcher.vectorize``: a local launch trains groups of runs in warm workers, each run its own as before."""

from __future__ import annotations

import pytest

from jobs.run_folder import METRICS, PROVENANCE, RunFolder, read_json, read_jsonl
from orchestrator.ledger import Ledger
from orchestrator.store import ResultsStore

GRID = ("problem=digits_mlp", "optimizer.lr=0.01,0.1", "seed=0,1", "train.epochs=2", "logger=disabled")


def _metrics(results, run_id):
    """The run's evaluation records without ``time`` (the clock is the one thing that differs)."""
    return [{k: v for k, v in r.items() if k != "time"} for r in read_jsonl(results / "runs" / run_id / METRICS)]


@pytest.mark.integration
def test_a_vectorised_launch_gives_every_run_its_unvectorised_metrics(optbench, tmp_path):
    grouped, alone = tmp_path / "grouped", tmp_path / "alone"
    status, out, err = optbench("launch", *GRID, "problem.dropout=0,0.5", "launcher.vectorize=4", "--dry-run",
                                "--results", grouped)
    assert status == 0, err
    text = " ".join(out.split())
    assert "launcher.vectorize=4: 4 runs would train in 1 group, 4 alone." in text
    assert text.count("Alone: problem digits_mlp with dropout:") == 1  # the reason once, not once per run

    status, _, err = optbench("launch", *GRID, "launcher.vectorize=4", "--results", grouped)
    assert status == 0, err
    status, _, err = optbench("launch", *GRID, "--results", alone)
    assert status == 0, err
    store = ResultsStore(grouped)
    sweep_dir = store.find_sweep("adhoc")
    runs = [r["run_id"] for r in store.sweep_runs(sweep_dir)]
    assert len(runs) == 4
    for run_id in runs:
        assert RunFolder(grouped / "runs" / run_id).state == "completed"
        assert _metrics(grouped, run_id) == _metrics(alone, run_id)  # == on floats: bitwise (digits_mlp, CPU)
        assert read_json(grouped / "runs" / run_id / PROVENANCE)["vectorized"]["members"] == 4
    assignments, _ = Ledger(sweep_dir).read()
    assert len({a.job_id for a in assignments.values()}) == 1  # the group was one job of one worker


@pytest.mark.parametrize(("overrides", "fragment"), [
    (("launcher.vectorize=0",), "launcher.vectorize must be >= 1"),
    (("launcher.vectorize=many",), "launcher.vectorize"),
    (("launcher.vectorize=4", "launcher.warm=false"), "launcher.vectorize=4 trains groups in warm workers"),
])
def test_bad_vectorize_settings_are_one_sentence(optbench, results, overrides, fragment):
    status, out, err = optbench("launch", *GRID, *overrides, "--results", results)
    assert status == 2, out + err
    assert fragment in " ".join(err.split()) and not results.exists()
