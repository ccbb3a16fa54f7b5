"""A job SIGKILLed mid-training on the local launcher."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from jobs_support import numbers

from jobs import checkpoint
from jobs.entry import run
from jobs.run_folder import STEPS, RunFolder, read_jsonl
from orchestrator.ledger import JOBS_FILE, Ledger
from orchestrator.store import ResultsStore
from orchestrator.sweep import expand

SWEEP = ("problem=digits_mlp", "problem.hidden=8", "problem.dropout=0.3", "train.epochs=16", "seed=0,1,2",
         "launcher=local", "launcher.max_parallel=3", "launcher.threads_per_run=1", "logger=disabled",
         "logger.heartbeat_seconds=0.1")


def files(folder: Path) -> dict[str, tuple[int, bytes]]:
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.read_bytes()) for p in folder.rglob("*")
            if p.is_file()}


def wait_for_epoch(launcher: subprocess.Popen, folder: RunFolder, epoch: int, timeout: float = 120) -> None:
    """Until the run's heartbeats say it trains epoch ``epoch`` (its checkpoint of the epoch before is on disk)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and launcher.poll() is None:
        status = folder.status()
        if status["state"] == "running" and (status.get("progress") or {}).get("epoch", 0) >= epoch:
            return
        time.sleep(0.05)
    pytest.fail(f"run {folder.run_id} never reached epoch {epoch} (status {folder.status()})")


def test_a_job_killed_mid_run_is_failed_and_resume_reruns_only_it_from_its_checkpoint(
        tmp_path, results, optbench, job_threads):
    """SIGKILL the training process of one job of a three-run local sweep past epoch 1: that run ends failed
    naming its job, the others complete; ``optbench resume`` reruns only it, from its checkpoint, to the metrics
    of an uninterrupted run, leaving the completed runs' files untouched."""
    sweep = expand(list(SWEEP))
    store = ResultsStore(results)
    victim = store.run_folder(sweep.runs[1].run_id)
    launcher = subprocess.Popen([sys.executable, "-m", "orchestrator.cli", "launch", *SWEEP, "--results", results],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for_epoch(launcher, victim, 2)
        os.kill(victim.status()["pid"], signal.SIGKILL)  # the process that trains (submitit's job is its parent)
    finally:
        output, _ = launcher.communicate(timeout=120)

    said = " ".join(output.split())
    assert launcher.returncode == 1 and f"{victim.run_id} failed" in said, output
    assert "Finished: 2 completed, 1 failed." in said
    sweep_dir = store.sweep_dir(sweep.sweep_id)
    job_id = Ledger(sweep_dir).read()[0][victim.run_id].job_id
    killed = victim.status()
    assert killed["state"] == "failed" and job_id in killed["error"]
    checkpointed = checkpoint.load(victim)["epoch"]
    assert checkpointed >= 1
    others = [store.run_folder(r.run_id) for r in sweep.runs if r.run_id != victim.run_id]
    assert [o.state for o in others] == ["completed", "completed"]
    code, out, _ = optbench("status", sweep.sweep_id, "--results", results)
    assert code == 0 and "3 runs — 1 failed, 2 completed" in " ".join(out.split())
    assert f"{job_id}_0_log.err" in "".join(out.split()), "the failure names the job (its log)"
    before = {o.run_id: files(o.root) for o in others}

    code, out, _ = optbench("resume", sweep.sweep_id, "--results", results)

    assert code == 0 and "2 already done, 0 queued or running, 1 to start" in " ".join(out.split())
    assert "Finished: 1 completed." in " ".join(out.split())
    submissions = [r["packs"] for r in read_jsonl(sweep_dir / JOBS_FILE) if r["event"] == "intent"]
    assert submissions[3:] == [[[victim.run_id]]], "resume submitted the killed run alone"
    assert {o.run_id: files(o.root) for o in others} == before, "completed runs are not touched"
    resumed = victim.status()
    assert resumed["state"] == "completed" and resumed["attempts"] == 2
    assert resumed["resumed_from_epoch"] == checkpointed
    unbroken = tmp_path / "unbroken"
    run(sweep.runs[1].spec, unbroken, {"threads": job_threads})
    assert numbers(victim.root) == numbers(unbroken)
    assert victim.path(STEPS).read_bytes() == (unbroken / STEPS).read_bytes()

