"""Polling and accounting helpers for the Slurm integration tests."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from orchestrator.reconcile import RunView, reconcile
from orchestrator.store import ResultsStore

FINAL = {"completed", "diverged", "failed", "timeout", "cancelled"}
ACTIVE = {"PENDING", "RUNNING", "COMPLETING", "REQUEUED", "CONFIGURING"}


def wait_until_final(results: Path, sweep_dir: Path, timeout: float = 180) -> list[RunView]:
    """Poll (as optbench status does) until every run of the sweep has ended."""
    return wait_for(results, sweep_dir, lambda views: all(v.state in FINAL for v in views), timeout)


def wait_for(results: Path, sweep_dir: Path, condition: Callable[[list[RunView]], bool],
             timeout: float = 180) -> list[RunView]:
    store = ResultsStore(results)
    deadline = time.monotonic() + timeout
    while True:
        run_ids = [r["run_id"] for r in store.sweep_runs(sweep_dir)]
        views = list(reconcile(store, sweep_dir, run_ids).values())
        if condition(views):
            return views
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out; states: {[(v.run_id, v.state, v.scheduler_state) for v in views]}")
        time.sleep(1)


def sacct(*job_ids: str, timeout: float = 60) -> dict[str, str]:
    """Slurm's own record once every job has ended: job or array task id → state.

    A run folder records its outcome a moment before the job's process
    exits, and accounting lags a little behind that.
    """
    deadline = time.monotonic() + timeout
    while True:
        states = _sacct(job_ids)
        if (states and not set(states.values()) & ACTIVE) or time.monotonic() > deadline:
            return states
        time.sleep(1)


def _sacct(job_ids) -> dict[str, str]:
    out = subprocess.run(["sacct", "-n", "-P", "-X", "--format=JobID,State", "-j", ",".join(job_ids)],
                         capture_output=True, text=True, check=True).stdout
    return {job: state.split()[0] for job, state in (line.split("|")[:2] for line in out.splitlines() if line)}
