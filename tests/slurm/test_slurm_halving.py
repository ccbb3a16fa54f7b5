"""Successive halving on Slurm: each rung is decided by a controller job that waits for the last (afterany)."""

from __future__ import annotations

import subprocess
import time

from slurm_helpers import sacct

from jobs.run_folder import HALVING_FILE, RunFolder, read_jsonl
from orchestrator.ledger import Ledger
from orchestrator.store import ResultsStore

TINY = ("problem=rosenbrock", "problem.steps_per_epoch=5", "train.epochs=3", "logger=disabled")


def test_rungs_are_decided_and_submitted_by_controller_jobs(launch, results):
    status, out, err, sweep_dir = launch(*TINY, "search=halving", "search.eta=3",
                                         "optimizer.lr=0.00001,0.0001,0.001", "seed=0,1")
    assert status == 0, err
    log = sweep_dir / HALVING_FILE
    (first,) = [e for e in read_jsonl(log) if e["event"] == "controller"]
    assert f"job {first['job_id']} takes the next rung" in " ".join(out.split())
    dependency = subprocess.run(["scontrol", "show", "job", first["job_id"]], capture_output=True, text=True).stdout
    assert all(job in dependency for job in first["after"]), dependency  # afterany on rung 0's array

    deadline = time.monotonic() + 300
    while not any(e["event"] == "decided" and "best" in e for e in read_jsonl(log)):
        assert time.monotonic() < deadline, f"halving never finished: {list(read_jsonl(log))}"
        time.sleep(2)
    entries = list(read_jsonl(log))
    decisions = [e for e in entries if e["event"] == "decided"]
    controllers = [e["job_id"] for e in entries if e["event"] == "controller"]
    assert [(d["rung"], d["budget"], len(d["promoted"])) for d in decisions] == [(0, 1, 1), (1, 3, 0)]
    assert len(controllers) == 2  # one behind rung 0, one (submitted by the first) behind rung 1
    assert set(sacct(*controllers).values()) == {"COMPLETED"}

    store = ResultsStore(results)
    sweep = store.load_sweep(sweep_dir)
    (winner,) = decisions[0]["promoted"]
    assert decisions[1]["best"] == winner
    for run in sweep.runs:
        state = RunFolder(results / "runs" / run.run_id).status()
        assert (state["state"], state["rung"]) == (("completed", 1) if run.setting_id == winner else ("stopped", 0))
    # Rung 1 went to Slurm from inside the first controller job: its array's id is larger.
    assignments, _ = Ledger(sweep_dir).read()
    winners = {r.run_id for r in sweep.runs if r.setting_id == winner}
    assert all(int(assignments[r].job_id.split("_")[0]) > int(controllers[0]) for r in winners)
