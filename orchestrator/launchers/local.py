"""The ``local`` launcher: runs as processes on this machine, ``max_parallel`` at once.

Warm (``launcher.warm: true``, the default): ``max_parallel`` worker
processes (:mod:`orchestrator.launchers.pool`) import torch once and run
many runs each, one at a time, each through :func:`jobs.entry.run` as a job
of its own: its folder, status, checkpoints, W&B run, budget, ledger entry,
job id and log files are the run's, as if it had had a process to itself.
Starting Python, torch and W&B for every run cost more than training the
short runs of a typical sweep. A run cannot take the launcher down, nor
another run: one that raises or diverges ends as its folder says and its
worker takes the next run; one that kills its worker (a crash, a signal)
is marked failed with how the worker ended, and a new worker takes its
place; one still going after ``time_min`` minutes has its worker killed
and is marked failed, saying so. Ctrl-C kills the workers and marks the
runs in progress cancelled.

Cold (``warm: false``): every run is one submitit local job, its own Python
process from start to end, the way runs were started before workers were
warm (the baseline of ``benchmarks/bench_local.py``). submitit's local
executor starts whatever it is given at once, so the bound on concurrency
is kept here.

Either way a run's output is in ``<sweep>/local/<job_id>_0_log.{out,err}``,
the ledger records one submission per run before it starts, and a run
whose job ended without recording an outcome is marked failed.
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
from jobs.schema import Param, validate_params
from jobs.vectorized import group_runs
from orchestrator.errors import UserError
from orchestrator.launchers.pool import Pool, Worker
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
    "time_min": Param("float", low=0.0, low_open=True),
    "warm": Param("bool"),
    "vectorize": Param("int", low=1, help="runs trained together as one group (1: none)"),
}


@dataclass(frozen=True)
class LocalSettings:
    """The local launcher's settings, built from a full ``launcher`` config with the nulls derived."""

    max_parallel: int
    threads_per_run: int
    time_min: float
    warm: bool = True
    vectorize: int = 1

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
        if values["vectorize"] > 1 and not values["warm"]:
            raise UserError(f"launcher.vectorize={values['vectorize']} trains groups in warm workers; drop "
                            "launcher.warm=false or set launcher.vectorize=1.")
        return cls(max_parallel, threads, values["time_min"], values["warm"], values["vectorize"])


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
    runtime = {**runtime, "threads": settings.threads_per_run}
    run_all = _execute_warm if settings.warm else _execute_cold
    return run_all(runs, store, sweep_dir, settings, runtime, python, on_start, on_finish)


@dataclass
class _Job:
    """A run, or a vectorised group of runs, handed to a warm worker."""

    runs: list[Run]
    job_id: str
    started: float
    log: Path
    deadline: float  # when it is killed: time_min after the worker began it (till then, after handing it over)
    began: bool = False


def _execute_warm(runs: list[Run], store: ResultsStore, sweep_dir: Path, settings: LocalSettings,
                  runtime: Mapping[str, Any], python: str | None, on_start: Callable[[Run], None],
                  on_finish: Callable[[Outcome], None]) -> list[Outcome]:
    wandb = runtime.get("logger", {}).get("mode", "disabled") != "disabled"
    launch = _WarmLaunch(store, sweep_dir, settings, runtime, Pool(sweep_dir / "local", python, wandb), on_finish)
    queue = group_runs(runs, settings.vectorize) if settings.vectorize > 1 else [[run] for run in runs]
    try:
        while queue or launch.active:
            while queue and launch.has_room():
                for run in launch.hand_over(queue.pop(0)):
                    on_start(run)
            if not queue:
                launch.retire_idle()
            launch.listen()
            launch.enforce_time_limit()
    except KeyboardInterrupt:
        launch.cancel()
        raise
    finally:
        launch.pool.shutdown()
    return launch.outcomes


class _WarmLaunch:
    """The runs of one launch on a pool of warm workers: who runs what, and how each run ended."""

    def __init__(self, store: ResultsStore, sweep_dir: Path, settings: LocalSettings, runtime: Mapping[str, Any],
                 pool: Pool, on_finish: Callable[[Outcome], None]):
        self.store, self.settings, self.runtime, self.pool = store, settings, dict(runtime), pool
        self.on_finish = on_finish
        self.ledger = Ledger(sweep_dir)
        self.limit_s = settings.time_min * 60
        self.active: dict[Worker, _Job] = {}  # worker → its job
        self.idle: list[Worker] = []
        self.outcomes: list[Outcome] = []

    def has_room(self) -> bool:
        return bool(self.idle) or len(self.pool.workers) < self.settings.max_parallel

    def hand_over(self, runs: list[Run]) -> list[Run]:
        """Give ``runs`` (one, or a vectorised group: one job) to an idle worker, or a new one.

        Recorded in the ledger before and after, as a submission of one pack.
        """
        worker = self.idle.pop() if self.idle else self.pool.start()
        job_id = self.pool.job_id(worker)
        out, err = self.pool.logs(job_id)
        intent = self.ledger.begin("local", self.pool.folder, [[run.run_id for run in runs]], name_prefix="optbench-")
        items = []
        for run in runs:
            folder = self.store.run_folder(run.run_id)
            folder.set_state("submitted", launcher="local", job_id=None)  # the worker moves it to running and beyond
            items.append({"spec": run.spec, "run_dir": str(folder.root), "budget": run.budget})
        out.touch()
        err.touch()
        what = items[0] if len(items) == 1 else {"items": items}
        worker.send({"job_id": job_id, **what, "runtime": self.runtime, "stdout": str(out), "stderr": str(err)})
        self.ledger.submitted(intent.batch, [job_id])
        now = time.monotonic()
        self.active[worker] = _Job(list(runs), job_id, now, err, now + self.limit_s)
        return runs

    def retire_idle(self) -> None:
        """Nothing is left to hand over: idle workers exit."""
        for worker in self.idle:
            worker.close()
        self.idle.clear()

    def listen(self) -> None:
        """Wait for the workers' answers (until the next time limit, at most a poll) and act on them."""
        now = time.monotonic()
        soonest = min((job.deadline for job in self.active.values()), default=now + POLL_SECONDS)
        for worker, answer in self.pool.wait(min(soonest - now, POLL_SECONDS)):
            job = self.active.get(worker)
            if job is None:  # an idle worker that exited (told to, or not): it takes no more runs
                if worker in self.idle:
                    self.idle.remove(worker)
            elif answer is None:
                _lend_worker_log(job.log, worker.log)
                what = (f"worker {worker.pid} {worker.how_it_ended()} {'during' if job.began else 'before it began'} "
                        f"job {job.job_id}")
                self._finish(worker, lambda run, job=job, what=what: _settle_dead(self.store, job, run, what))
            elif answer.get("job_id") != job.job_id:
                continue
            elif answer.get("began"):
                job.began, job.deadline = True, time.monotonic() + self.limit_s
            else:
                self._finish(worker, lambda run, job=job: _settle_warm(self.store, job, run))
                self.idle.append(worker)

    def enforce_time_limit(self) -> None:
        """A run past ``time_min`` has its worker killed and is failed, saying so."""
        for worker, job in list(self.active.items()):
            if time.monotonic() > job.deadline:
                self.pool.kill(worker)
                _lend_worker_log(job.log, worker.log)
                what = f"job {job.job_id} ran past launcher.time_min={self.settings.time_min:g} minutes and was killed"
                self._finish(worker, lambda run, job=job, what=what: _settle_dead(self.store, job, run, what))

    def cancel(self) -> None:
        """Ctrl-C: the workers are killed, then the runs they had are cancelled (nothing can overwrite that)."""
        self.pool.shutdown(kill=True)
        for job in self.active.values():
            for run in job.runs:
                self.store.run_folder(run.run_id).set_state("cancelled", error="cancelled by the user (Ctrl-C)")

    def _finish(self, worker: Worker, settle: Callable[[Run], tuple[str, str]]) -> None:
        """The job of ``worker`` has ended: each of its runs settled by ``settle``."""
        job = self.active.pop(worker)
        for run in job.runs:
            state, note = settle(run)
            outcome = Outcome(run, state, time.monotonic() - job.started, job.log, note)
            self.outcomes.append(outcome)
            self.on_finish(outcome)


def _settle_warm(store: ResultsStore, job: _Job, run: Run) -> tuple[str, str]:
    """The final state of a run its worker says has ended; failed if its folder says otherwise."""
    status = store.run_folder(run.run_id).status()
    if status["state"] in FINAL_STATES:
        return status["state"], ""
    return _settle_dead(store, job, run, f"job {job.job_id} ended ({status['state']}) without recording a result")


def _settle_dead(store: ResultsStore, job: _Job, run: Run, what: str) -> tuple[str, str]:
    """A run whose worker is gone: its recorded outcome if it had one, else failed, saying ``what`` and its log."""
    folder = store.run_folder(run.run_id)
    status = folder.status()
    if status["state"] in FINAL_STATES:
        return status["state"], ""
    try:
        folder.set_state("failed", error=f"{what}; see {job.log}.")
    except OSError as error:
        return "failed", f"its status.json could not be updated: {error}"
    return "failed", ""


def _lend_worker_log(run_log: Path, worker_log: Path, lines: int = 40) -> None:
    """A worker that died before its run wrote a line (it never started: a broken image, say) said why in its
    own log: the end of that goes into the run's, where ``optbench logs`` and the failure point."""
    try:
        if run_log.stat().st_size:
            return
        said = worker_log.read_text(errors="replace").splitlines()[-lines:]
        with open(run_log, "a", encoding="utf-8") as log:
            log.write("".join(f"{line}\n" for line in [f"(the end of {worker_log}:)", *said]))
    except OSError:  # no log is worth failing the launch over
        return


def _execute_cold(runs: list[Run], store: ResultsStore, sweep_dir: Path, settings: LocalSettings,
                  runtime: Mapping[str, Any], python: str | None, on_start: Callable[[Run], None],
                  on_finish: Callable[[Outcome], None]) -> list[Outcome]:
    import submitit

    from jobs.entry import run as run_job

    folder = sweep_dir / "local"
    executor = submitit.LocalExecutor(folder=folder, python=python)
    executor.update_parameters(timeout_min=settings.time_min)  # submitit's name
    ledger = Ledger(sweep_dir)
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
