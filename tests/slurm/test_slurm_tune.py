"""The DeepOBS protocol on Slurm: a controller job waits for the grid (afterany), selects, submits stage 2."""

from __future__ import annotations

import json
import subprocess
import time

from slurm_helpers import sacct, wait_until_final

from orchestrator.ledger import Ledger
from orchestrator.store import ResultsStore

TINY = ("problem=rosenbrock", "problem.steps_per_epoch=5", "train.epochs=2", "logger=disabled")


def test_stage_2_is_submitted_by_a_job_that_waits_for_the_grid(optbench, results):
    status, out, err = optbench("tune", *TINY, "optimizer=sgd", "optimizer.lr=0.0001,0.001", "launcher=slurm",
                                "launcher.cpus_per_task=1", "--seeds", "2", "--results", results)
    assert status == 0, err
    store = ResultsStore(results)
    first = store.find_sweep("adhoc")
    link = json.loads((first / "protocol.json").read_text())
    controller = link["controller_job"]
    assert f"submitted by job {controller}" in " ".join(out.split())
    dependency = subprocess.run(["scontrol", "show", "job", controller], capture_output=True, text=True).stdout
    grid_jobs = link["after"]
    assert all(job in dependency for job in grid_jobs), dependency  # e.g. Dependency=afterany:12_*

    wait_until_final(results, first)
    deadline = time.monotonic() + 180
    while not list((results / "sweeps").glob("adhoc-best-*")):
        assert time.monotonic() < deadline, "the controller job never recorded stage 2"
        time.sleep(1)
    second = store.find_sweep("adhoc-best")
    views = wait_until_final(results, second)
    assert [v.state for v in views] == ["completed"] * 2
    assert sacct(controller)[controller] == "COMPLETED"
    assert json.loads((first / "protocol.json").read_text())["second_stage"] == second.name
    # Stage 2 went to Slurm from inside the controller job: its array's id is larger.
    assignments, _ = Ledger(second).read()
    assert {a.launcher for a in assignments.values()} == {"slurm"}
    assert all(int(a.job_id.split("_")[0]) > int(controller) for a in assignments.values())
    assert sorted(r["spec"]["seed"] for r in store.sweep_runs(second)) == [42, 43]
