"""Two ``optbench launch`` of the same sweep at the same time: no run starts twice, no state is corrupt."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from components import require_slurm
from slurm.slurm_helpers import sacct, wait_until_final

from jobs.run_folder import read_jsonl
from orchestrator.ledger import JOBS_FILE
from orchestrator.lock import LOCK_FILE

OPTBENCH = str(Path(sys.executable).parent / "optbench")
RUNS = ("problem=rosenbrock", "optimizer.lr=0.0005", "problem.steps_per_epoch=5000", "train.epochs=3",
        "logger=disabled")
LOCAL = (*RUNS, "seed=1,2")


def _submitted_runs(sweep_dir: Path) -> Counter:
    """How often each run id went out in a batch the scheduler accepted."""
    intents, accepted = {}, set()
    for record in read_jsonl(sweep_dir / JOBS_FILE):
        if record["event"] == "intent":
            intents[record["batch"]] = [r for pack in record["packs"] for r in pack]
        elif record["event"] == "submitted":
            accepted.add(record["batch"])
    return Counter(r for batch in accepted for r in intents[batch])


def test_a_second_local_launch_is_refused_while_the_first_runs(results, optbench):
    first = subprocess.Popen([OPTBENCH, "launch", *LOCAL, "--results", str(results)],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 60
    while not list(results.glob(f"sweeps/*/{LOCK_FILE}")) or not list(results.glob("runs/*/status.json")):
        assert first.poll() is None and time.monotonic() < deadline, first.communicate()[0]
        time.sleep(0.1)
    (lock,) = results.glob(f"sweeps/*/{LOCK_FILE}")
    assert json.loads(lock.read_text())["pid"] == first.pid

    code, out, err = optbench("launch", *LOCAL, "--results", results)
    message = " ".join(err.split())
    assert code == 2 and out == "" and f"is being launched by another optbench (pid {first.pid}" in message
    assert first.wait(timeout=120) == 0

    sweep_dir = lock.parent
    assert _submitted_runs(sweep_dir) == Counter({r["run_id"]: 1 for r in read_jsonl(sweep_dir / "runs.jsonl")})
    for status in results.glob("runs/*/status.json"):
        state = json.loads(status.read_text())
        assert state["state"] == "completed" and state["attempts"] == 1
    code, out, _ = optbench("launch", *LOCAL, "--results", results)  # the lock is free again
    assert code == 0 and "Nothing to start" in out


def test_two_slurm_launches_at_once_submit_each_run_once(results):
    require_slurm()
    command = [OPTBENCH, "launch", "launcher=slurm", "launcher.cpus_per_task=1", *RUNS, "seed=range(4)",
               "--results", str(results)]
    both = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for _ in range(2)]
    outputs = [p.communicate(timeout=180)[0] for p in both]
    assert [p.returncode for p in both] == [0, 0], outputs
    assert sum("Submitted 4 runs" in out for out in outputs) == 1
    assert sum("Nothing to start" in out for out in outputs) == 1

    (sweep_dir,) = (results / "sweeps").iterdir()
    submitted = _submitted_runs(sweep_dir)
    assert sorted(submitted.values()) == [1, 1, 1, 1]
    views = wait_until_final(results, sweep_dir, timeout=240)
    assert [v.state for v in views] == ["completed"] * 4 and all(v.status["attempts"] == 1 for v in views)
    assert set(sacct(*{v.job_id.split("_")[0] for v in views}).values()) == {"COMPLETED"}
