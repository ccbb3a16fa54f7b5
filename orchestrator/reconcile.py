"""Where every run of a sweep stands: run folders merged with the scheduler's view.

A run folder knows what the job itself wrote (running, progress, the
outcome). The scheduler knows what the job cannot say: that it is still
queued, or that it was killed (time limit without requeue, out of memory,
node failure, ``scancel``) before it could write anything. :func:`reconcile`
merges both with one ``sacct`` call for the whole sweep and writes the
outcomes only the scheduler knew into the run folders, so every later
reader (status, resume, aggregate) sees the same final states.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from jobs.run_folder import DONE_STATES, FINAL_STATES
from orchestrator import slurmctl
from orchestrator.ledger import Assignment, Intent, Ledger
from orchestrator.store import ResultsStore
from orchestrator.sweep import Run, Sweep

#: Slurm's end states → the run state a job that never wrote its own outcome gets.
ENDED = {
    "COMPLETED": "failed",  # the job exited 0 but the run never recorded a result
    "FAILED": "failed",
    "NODE_FAIL": "failed",
    "OUT_OF_MEMORY": "failed",
    "BOOT_FAIL": "failed",
    "DEADLINE": "timeout",
    "TIMEOUT": "timeout",
    "CANCELLED": "cancelled",
    "REVOKED": "cancelled",
}


@dataclass
class RunView:
    run_id: str
    state: str
    status: dict[str, Any]
    job_id: str | None = None
    launcher: str | None = None
    node: str = ""
    elapsed: str = ""
    scheduler_state: str | None = None
    log: Path | None = None
    reason: str = ""  # why Slurm keeps a queued run's job pending (squeue's reason)

    @property
    def in_flight(self) -> bool:
        """Queued or running: starting it again would run it twice.

        A Slurm job that accounting does not list yet (it lags a few
        seconds behind sbatch) counts as queued.
        """
        if self.state not in ("submitted", "running"):
            return False
        if self.launcher == "slurm":
            return self.scheduler_state is None or self.scheduler_state in slurmctl.ACTIVE_STATES
        return False  # a local run's launcher is gone once anyone can call this


def reconcile(store: ResultsStore, sweep_dir: Path, run_ids: Iterable[str],
              ask_scheduler: bool = True) -> dict[str, RunView]:
    """The merged state of each run; final states only Slurm knew are written to the run folders.

    ``ask_scheduler=False`` (Slurm does not answer) gives the run folders' own
    states, with the jobs the ledger knows: queued runs show as submitted.
    """
    ledger = Ledger(sweep_dir)
    assignments, unresolved = ledger.read()
    if unresolved and ask_scheduler:
        assignments = {**assignments, **_resolve(ledger, unresolved)}
    slurm_jobs = [a.job_id for a in assignments.values() if a.launcher == "slurm"]
    scheduler = slurmctl.job_states(slurm_jobs) if slurm_jobs and ask_scheduler else {}
    return {run_id: _merge(store, run_id, assignments.get(run_id), scheduler) for run_id in run_ids}


@dataclass
class Plan:
    """What starting a sweep does, from one reading of where its runs stand."""

    done: list[Run]  # completed or diverged: their results are kept
    in_flight: list[Run]  # queued or running: starting them again would run them twice
    to_run: list[Run]  # the rest: new, failed, timed out, cancelled
    views: dict[str, RunView]


def plan(sweep: Sweep, store: ResultsStore, ask_scheduler: bool = True,
         budgets: Mapping[str, Mapping[str, int]] | None = None) -> Plan:
    """Sort the sweep's runs by what starting it would do; ``ask_scheduler=False`` (a dry run) writes nothing.

    ``budgets`` (run id → ``{"epochs", "rung"}``, successive halving's rung) limits the plan to those runs,
    each to its budget: a run stopped at that budget or a later one counts as done, the runs to start
    carry their budget.
    """
    runs = sweep.runs if budgets is None else [replace(r, budget=dict(budgets[r.run_id]))
                                               for r in sweep.runs if r.run_id in budgets]
    views = reconcile(store, store.sweep_dir(sweep.sweep_id), [r.run_id for r in runs], ask_scheduler)

    def done(run: Run) -> bool:
        view = views[run.run_id]
        return view.state in DONE_STATES or (
            run.budget is not None and view.state == "stopped"
            and int(view.status.get("budget_epochs") or 0) >= run.budget["epochs"])

    in_flight = [r for r in runs if views[r.run_id].in_flight]
    to_run = [r for r in runs if not done(r) and not views[r.run_id].in_flight]
    return Plan([r for r in runs if done(r)], in_flight, to_run, views)


def _resolve(ledger: Ledger, intents: list[Intent]) -> dict[str, Assignment]:
    """Intents without an outcome (the launcher died mid-submission): ask Slurm by job name."""
    found: dict[str, Assignment] = {}
    for intent in intents:
        if intent.launcher != "slurm":
            ledger.rejected(intent.batch, "the launcher stopped before submitting")
            continue
        parents = slurmctl.jobs_named(intent.name)
        if not parents:
            ledger.rejected(intent.batch, "never reached Slurm")
            continue
        parent = parents[-1]
        job_ids = [f"{parent}_{i}" for i in range(len(intent.packs))] if len(intent.packs) > 1 else [parent]
        ledger.submitted(intent.batch, job_ids)
        for pack, job_id in zip(intent.packs, job_ids, strict=True):
            for run_id in pack:
                found[run_id] = Assignment(run_id, job_id, intent.batch, "slurm", intent.folder)
    return found


def _merge(store: ResultsStore, run_id: str, assignment: Assignment | None,
           scheduler: dict[str, slurmctl.JobState]) -> RunView:
    folder = store.run_folder(run_id)
    status = folder.status()
    view = RunView(run_id, status["state"], status)
    if assignment is None:
        return view
    view.job_id, view.launcher = assignment.job_id, assignment.launcher
    view.log = job_log(assignment, "err")
    job = scheduler.get(assignment.job_id)
    if job is None:
        if view.state == "pending" and assignment.launcher == "slurm":
            view.state = "submitted"  # too new for accounting to list it yet
        return view
    view.node, view.elapsed, view.scheduler_state = job.node, job.elapsed, job.state
    if view.state in FINAL_STATES:
        return view
    if view.state == "pending":
        view.state = "submitted"  # queued: the job writes the run folder when it starts
    if job.state in slurmctl.ACTIVE_STATES:
        if job.state != "RUNNING" and view.state == "running":
            view.state = "submitted"  # requeued: it waits to resume
        view.reason = job.reason if view.state == "submitted" else ""
        return view
    if status.get("job_id") not in (None, assignment.job_id):
        return view  # the folder belongs to another, newer job
    outcome = ENDED.get(job.state, "failed")
    message = f"Slurm reports {job.state} for job {job.job_id} (exit {job.exit_code}) before the run recorded a result"
    message += f"; see {view.log}"
    fields = {"job_id": assignment.job_id, "error": status.get("error") or message}
    try:
        view.status = folder.set_state(outcome, **fields)
    except OSError:  # a full or read-only disk: show the outcome; the next reader records it
        view.status = {**status, **fields, "state": outcome}
    view.state = outcome
    return view


def job_logs(assignment: Assignment, task: int = 0) -> tuple[Path, Path]:
    """submitit's stdout and stderr of one task of the assignment's job (array tasks are ``<array>_<index>``)."""
    return job_log(assignment, "out", task), job_log(assignment, "err", task)


def job_log(assignment: Assignment, stream: str, task: int = 0) -> Path:
    """One of :func:`job_logs` (``stream``: out or err), built once: status builds one per run of a sweep."""
    return Path(assignment.folder, f"{assignment.job_id}_{task}_log.{stream}")
