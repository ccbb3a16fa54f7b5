"""The ``local`` launcher: runs as processes on this machine, a bounded number at once.

Every run is one submitit local job (its own Python process, so a crash or
a NaN cannot take the launcher down). submitit's local executor starts
whatever it is given at once, so the bound on concurrency is kept here.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jobs.run_folder import FINAL_STATES
from jobs.schema import Param, count, validate_params
from orchestrator.errors import UserError
from orchestrator.ledger import Ledger
from orchestrator.store import ResultsStore
from orchestrator.sweep import Run

POLL_SECONDS = 0.2


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


#: ``conf/launcher/local.yaml``'s settings (less ``name``); see that file for what each means.
SCHEMA = {
    "max_parallel": Param("int", low=1, nullable=True),
    "threads_per_run": Param("int", low=1, nullable=True),
    "time_min": count(low=1),
}


@dataclass(frozen=True)
class LocalSettings:
    """The local launcher's settings, built from a full ``launcher`` config with the nulls derived."""

    max_parallel: int
    threads_per_run: int
    time_min: int

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> LocalSettings:
        """``max_parallel: null`` is the cores available, ``threads_per_run: null`` the cores / max_parallel."""
        if "timeout_min" in config:  # its name until both launchers said time_min
            raise UserError(f"launcher.timeout_min is now called launcher.time_min, as on Slurm; "
                            f"set launcher.time_min={config['timeout_min']} instead.")
        values = validate_params("launcher", "the local launcher", SCHEMA,
                                 {k: v for k, v in config.items() if k != "name"})
        cores = available_cores()
        max_parallel = cores if values["max_parallel"] is None else values["max_parallel"]
        threads = max(1, cores // max_parallel) if values["threads_per_run"] is None else values["threads_per_run"]
        return cls(max_parallel, threads, values["time_min"])


@dataclass
class Outcome:
    run: Run
    state: str
    seconds: float
    log: Path | None
    note: str = ""  # why the run's folder could not record the outcome, if it could not


def execute(
    runs: list[Run],
    store: ResultsStore,
    sweep_dir: Path,
    settings: LocalSettings,
    runtime: Mapping[str, Any],
    python: str | None = None,
    on_start: Callable[[Run], None] = lambda run: None,
    on_finish: Callable[[Outcome], None] = lambda outcome: None,
) -> list[Outcome]:
    """Run ``runs`` to completion, at most ``settings.max_parallel`` at a time.

    ``runtime`` reaches every job (see :mod:`jobs.entry`); ``python`` is the
    command that starts the job's Python (a container's), default this one.
    """
    import submitit

    from jobs.entry import run as run_job

    folder = sweep_dir / "local"
    executor = submitit.LocalExecutor(folder=folder, python=python)
    executor.update_parameters(timeout_min=settings.time_min)  # submitit's name
    ledger = Ledger(sweep_dir)
    runtime = {**runtime, "threads": settings.threads_per_run}
    queue, active, outcomes = list(runs), {}, []
    try:
        while queue or active:
            while queue and len(active) < settings.max_parallel:
                run = queue.pop(0)
                run_folder = store.run_folder(run.run_id)
                intent = ledger.begin("local", folder, [[run.run_id]], name_prefix="optbench-")
                # Marked before submitting: the job itself moves it to running and beyond.
                run_folder.set_state("submitted", launcher="local", job_id=None)
                job = executor.submit(run_job, run.spec, str(run_folder.root), runtime, run.budget)
                ledger.submitted(intent.batch, [job.job_id])
                active[job] = (run, time.monotonic())
                on_start(run)
            time.sleep(POLL_SECONDS)
            for job in [j for j in active if j.done()]:
                run, started = active.pop(job)
                state, note = _settle(store, run, job)
                outcome = Outcome(run, state, time.monotonic() - started, job.paths.stderr, note)
                outcomes.append(outcome)
                on_finish(outcome)
    except KeyboardInterrupt:
        for job, (run, _) in active.items():
            job.cancel(check=False)
            store.run_folder(run.run_id).set_state("cancelled", error="cancelled by the user (Ctrl-C)")
        raise
    return outcomes


def _settle(store: ResultsStore, run: Run, job: Any) -> tuple[str, str]:
    """The run's final state, and a note when its folder could not record it.

    A job whose process died before saying how the run ended is marked
    failed. Its training process, a child of submitit's, is killed first if
    it outlived its parent, so that it cannot write over the failure later.
    """
    folder = store.run_folder(run.run_id)
    status = folder.status()
    if status["state"] in FINAL_STATES:
        return status["state"], ""
    if status["state"] == "running" and str(status.get("job_id")) == str(job.job_id):
        _kill_orphan(status.get("pid"))  # this job's own training process, not a stale pid of an earlier one
    try:
        folder.set_state("failed", error=f"job {job.job_id} ended ({job.state}) without recording a result; "
                                         f"see {job.paths.stderr}")
    except OSError as error:
        return "failed", f"its status.json could not be updated: {error}"
    return "failed", ""


def _kill_orphan(pid: int | None) -> None:
    if not pid or pid == os.getpid():
        return
    try:
        os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        return
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
