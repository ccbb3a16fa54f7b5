"""One attempt at a run, the parts every way of running shares: taking the folder, ending it, failing it.

:mod:`jobs.entry` (one run at a time) and :mod:`jobs.vectorized` (a group of
runs trained together) both start an attempt with :func:`begin_attempt` and
end it with :func:`record_outcome` or :func:`failure_text`, so a run folder
reads the same whichever trained it.
"""

from __future__ import annotations

import os
import socket
import sys
import time
import traceback
from collections.abc import Mapping
from typing import Any

import submitit
import yaml

from jobs.run_folder import (
    DONE_STATES,
    MEASUREMENTS,
    METRICS,
    SPEC,
    STEPS,
    SUMMARY,
    RunFolder,
    atomic_write_text,
    write_json,
)

#: What a job is told besides its runs (see :mod:`jobs.entry`); a runtime given leaves the rest at these.
DEFAULT_RUNTIME: dict[str, Any] = {"logger": {"mode": "disabled"}, "threads": None, "data_dir": None,
                                   "container": None, "plugin_paths": []}


def begin_attempt(folder: RunFolder, spec: Mapping[str, Any]) -> dict[str, Any] | None:
    """Rank 0: take the folder (this job owns it now), mark the run running; the state to resume from, or None.

    None: a fresh start, the earlier attempt's files set aside.
    """
    from jobs import checkpoint

    folder.owner = job_id()
    folder.root.mkdir(parents=True, exist_ok=True)
    if not folder.path(SPEC).exists():
        atomic_write_text(folder.path(SPEC), yaml.safe_dump(dict(spec), sort_keys=True))
    resume = None if folder.state in DONE_STATES else checkpoint.resume(folder)
    if resume is None:
        checkpoint.remove(folder)
        _keep_previous_attempt(folder)
    folder.set_state("running", job_id=job_id(), node=os.environ.get("SLURMD_NODENAME") or socket.gethostname(),
                     pid=os.getpid(), error=None, requeued=False,
                     resumed_from_epoch=None if resume is None else resume["epoch"])
    return resume


def record_outcome(folder: RunFolder, summary: Mapping[str, Any], budget: Mapping[str, int] | None) -> None:
    """Rank 0 at a run's end: summary.json and the final state; a run stopped at its budget keeps its checkpoint."""
    from jobs import checkpoint

    write_json(folder.path(SUMMARY), summary)
    if summary["state"] == "stopped":  # a later rung continues from the checkpoint: keep it
        folder.set_state("stopped", error=None, rung=budget["rung"], budget_epochs=summary["budget_epochs"])
    else:  # a run promoted to its last rung records that rung; its earlier budget is over
        rung = {"rung": budget["rung"], "budget_epochs": None} if budget else {}
        folder.set_state(summary["state"], error=None, **rung)
        checkpoint.remove(folder)  # only now: until the final state is on disk, a retry resumes


def failure_text(error: BaseException) -> str:
    """The end of ``error``'s traceback (20 lines), what a failed run's status.json says."""
    return "\n".join("".join(traceback.format_exception(error)).splitlines()[-20:])


def nothing_to_do(folder: RunFolder, budget: Mapping[str, int] | None) -> bool:
    """Done, or stopped at this budget or a later one already (a requeued pack, a rung submitted twice)."""
    if folder.state in DONE_STATES:
        return True
    if budget is None or folder.state != "stopped":
        return False
    return int(folder.status().get("budget_epochs") or 0) >= budget["epochs"]


def check_container(container: Mapping[str, Any] | None) -> None:
    """A run meant for an image must not quietly run on the host's Python (its provenance would lie)."""
    from jobs.provenance import current_container

    if container and current_container() is None:
        raise RuntimeError(f"this job was to run inside {container['image']} but runs on the host's Python "
                           f"({sys.executable}); check the launcher's container settings.")


def job_id() -> str | None:
    """The scheduler's id for this job, when a scheduler started it."""
    try:
        return str(submitit.JobEnvironment().job_id)
    except Exception:  # not started by submitit: a rerun by hand
        return os.environ.get("SLURM_JOB_ID")


def _keep_previous_attempt(folder: RunFolder) -> None:
    """A new attempt starts clean; what an earlier attempt wrote is kept beside it, never lost."""
    leftovers = [folder.path(name) for name in (METRICS, STEPS, MEASUREMENTS, SUMMARY) if folder.path(name).exists()]
    if not leftovers:
        return
    keep = folder.path(f"attempt-{int(time.time() * 1000)}")
    keep.mkdir()
    for path in leftovers:
        path.rename(keep / path.name)
