"""Polling and accounting helpers for the Slurm integration tests, and cluster objects of a test's own.

Other tests share the cluster: a test that needs a partition, an account or
a QOS with limits creates its own under a unique name and removes it (and
cancels the jobs in it) when it ends, whatever happened.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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
            states = [(v.run_id, v.state, v.scheduler_state, v.reason) for v in views]
            raise AssertionError(f"timed out; states: {states}")
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


def unique(prefix: str = "optb") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


@contextmanager
def scratch_partition(nodes: str = "n[1-2]", **settings: object) -> Iterator[str]:
    """A partition of the test's own over the cluster's nodes (``settings``: scontrol's names, e.g. MaxTime=60).

    Afterwards its jobs are cancelled and it is deleted (Slurm refuses while jobs are still in it).
    """
    name = unique()
    _run("scontrol", "create", f"PartitionName={name}", f"Nodes={nodes}", "State=UP",
         *(f"{key}={value}" for key, value in settings.items()))
    try:
        yield name
    finally:
        subprocess.run(["scancel", "-p", name], capture_output=True)
        deadline = time.monotonic() + 60
        while subprocess.run(["scontrol", "delete", f"PartitionName={name}"], capture_output=True).returncode:
            if time.monotonic() > deadline:
                raise AssertionError(f"partition {name} still has jobs after a minute")
            time.sleep(0.5)


@contextmanager
def scratch_qos(**limits: object) -> Iterator[str]:
    """A QOS of the test's own with ``limits`` (sacctmgr's names, e.g. MaxTRESPerJob="cpu=1")."""
    name = unique()
    _run("sacctmgr", "-i", "add", "qos", name, *(f"{key}={value}" for key, value in limits.items()))
    try:
        yield name
    finally:
        _run("sacctmgr", "-i", "delete", "qos", name)


@contextmanager
def scratch_account(**association: object) -> Iterator[str]:
    """An account of the test's own that root may charge under ``association`` (e.g. partition=P, qos=normal,Q)."""
    name = unique()
    cluster = _run("scontrol", "show", "config").split("ClusterName", 1)[1].split("=", 1)[1].split()[0]
    _run("sacctmgr", "-i", "add", "account", name, f"cluster={cluster}")
    try:
        _run("sacctmgr", "-i", "add", "user", "root", f"account={name}", f"cluster={cluster}",
             *(f"{key}={value}" for key, value in association.items()))
        yield name
    finally:
        subprocess.run(["sacctmgr", "-i", "delete", "user", "root", f"account={name}"], capture_output=True)
        _run("sacctmgr", "-i", "delete", "account", name)


def _run(*command: str) -> str:
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout
