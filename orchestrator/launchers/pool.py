"""Warm worker processes for the local launcher: started once, each runs many runs, one at a time.

A :class:`Worker` is ``PYTHON -m jobs.worker`` (:mod:`jobs.worker` states the
worker's side: one JSON job a line on its stdin, a JSON answer a line on its
stdout as the run begins and as it ends; an end of its stdin during a run,
the launcher gone, ends it), started with the launcher's ``python`` command,
a shell command line (a container's ``apptainer exec … python`` when the
sweep runs in an image), as submitit would start a job, in submitit's local
job environment. Python, torch, the trainer and W&B's service thus start
once per worker instead of once per run.

Each worker runs in a session of its own: the terminal's Ctrl-C reaches the
launcher alone, which then ends the workers; ending one kills its whole
process group (:meth:`Worker.kill`), so a run's child processes go with it.
The launcher waits on every worker's answers at once (:meth:`Pool.wait`),
so a run's end is seen as it happens, not at the next poll; a worker whose
answer pipe closes has died (a crash, a kill, the launcher's own kill at a
time limit), and its exit status says how.

Files, in the sweep's ``local/`` folder: each run's output goes to
``<job_id>_0_log.out`` and ``.err``, submitit's names, so ``optbench logs``
and ``status`` find a run's log the same way whichever path ran it; a job
id is ``<worker pid>-<n>``, the worker's n-th run (the first free n in the
folder). A worker's own output outside its runs (its start, W&B's service,
a failure to start) goes to ``worker-<ms>-<k>.log``.
"""

from __future__ import annotations

import json
import os
import selectors
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

#: submitit's local job environment, one task (see submitit.local.local.start_controller): what a run asks
#: ``submitit.JobEnvironment()`` for (its job id, its number of tasks) it learns as under submitit.
LOCAL_JOB_ENVIRONMENT = {"SUBMITIT_EXECUTOR": "local", "SUBMITIT_LOCAL_NTASKS": "1",
                         "SUBMITIT_LOCAL_JOB_NUM_NODES": "1", "SUBMITIT_LOCAL_NODEID": "0",
                         "SUBMITIT_LOCAL_LOCALID": "0", "SUBMITIT_LOCAL_GLOBALID": "0"}
#: Seconds the workers get to exit once their stdin is closed, before they are killed.
EXIT_SECONDS = 10.0
READ_BYTES = 1 << 16


class Worker:
    """One worker process: its pid, the job it is running, and the line of answers being read."""

    def __init__(self, command: list[str], env: Mapping[str, str], log: Path):
        self.log = log
        with open(log, "ab") as output:
            self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=output,
                                            env=dict(env), start_new_session=True)
        self.pid = self.process.pid
        self.runs = 0  # the n of its latest job id
        self.pending = b""  # answer bytes read but not yet a whole line

    def send(self, job: Mapping[str, Any]) -> None:
        """Hand the worker a job; a worker already dead is noticed by :meth:`Pool.wait`, not here."""
        try:
            self.process.stdin.write((json.dumps(job) + "\n").encode())
            self.process.stdin.flush()
        except (BrokenPipeError, ValueError):  # ValueError: its stdin was closed already
            pass

    def close(self) -> None:
        """No more jobs: the worker exits once its run in progress (if any) has ended."""
        try:
            self.process.stdin.close()
        except BrokenPipeError:
            pass

    def kill(self) -> None:
        """End the worker and every process of its group at once, and wait for it."""
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.process.wait()
        self.close()

    def how_it_ended(self) -> str:
        """``exited with status 1`` or ``was killed by SIGKILL`` (a worker that has ended)."""
        code = self.process.wait()
        if code < 0:
            try:
                return f"was killed by {signal.Signals(-code).name}"
            except ValueError:
                return f"was killed by signal {-code}"
        return f"exited with status {code}"


class Pool:
    """The workers of one launch, and the one wait on all their answers."""

    def __init__(self, folder: Path, python: str | None = None, wandb: bool = False):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.command = [*(shlex.split(python) if python else [sys.executable]), "-u", "-m", "jobs.worker",
                        *(["--wandb"] if wandb else [])]
        self.env = {**{k: v for k, v in os.environ.items() if k != "SUBMITIT_LOCAL_JOB_ID"}, **LOCAL_JOB_ENVIRONMENT}
        self.workers: list[Worker] = []
        self.selector = selectors.DefaultSelector()
        self.started = 0

    def start(self) -> Worker:
        self.started += 1
        log = self.folder / f"worker-{int(time.time() * 1000)}-{self.started}.log"
        worker = Worker(self.command, self.env, log)
        self.workers.append(worker)
        self.selector.register(worker.process.stdout, selectors.EVENT_READ, worker)
        return worker

    def job_id(self, worker: Worker) -> str:
        """A new job id for the worker's next run, ``<pid>-<n>``, whose logs do not exist yet."""
        worker.runs += 1
        while self.logs(f"{worker.pid}-{worker.runs}")[1].exists():  # a pid of an earlier launch, used again
            worker.runs += 1
        return f"{worker.pid}-{worker.runs}"

    def logs(self, job_id: str) -> tuple[Path, Path]:
        """The job's stdout and stderr, as submitit names a job's task 0 logs."""
        return self.folder / f"{job_id}_0_log.out", self.folder / f"{job_id}_0_log.err"

    def wait(self, timeout: float) -> list[tuple[Worker, dict[str, Any] | None]]:
        """What workers said within ``timeout`` seconds: (worker, answer), or (worker, None) for one that died.

        A worker that died is removed from the pool (and reaped).
        """
        said: list[tuple[Worker, dict[str, Any] | None]] = []
        for key, _ in self.selector.select(max(timeout, 0.0)):
            worker: Worker = key.data
            chunk = os.read(worker.process.stdout.fileno(), READ_BYTES)
            if not chunk:
                self._remove(worker)
                said.append((worker, None))
                continue
            *lines, worker.pending = (worker.pending + chunk).split(b"\n")
            for line in lines:
                try:
                    answer = json.loads(line)
                except ValueError:
                    continue
                if isinstance(answer, dict):  # nothing but answers should reach this pipe; never count on it
                    said.append((worker, answer))
        return said

    def kill(self, worker: Worker) -> None:
        worker.kill()
        self._remove(worker)

    def shutdown(self, kill: bool = False) -> None:
        """Close every worker's stdin and wait for them to exit (``kill``: kill them at once)."""
        if kill:
            for worker in list(self.workers):
                self.kill(worker)
            return
        for worker in self.workers:
            worker.close()
        deadline = time.monotonic() + EXIT_SECONDS
        for worker in list(self.workers):
            try:
                worker.process.wait(timeout=max(deadline - time.monotonic(), 0.0))
            except subprocess.TimeoutExpired:
                worker.kill()
            self._remove(worker)

    def _remove(self, worker: Worker) -> None:
        """Forget a worker that has ended, once reaped (a Ctrl-C meanwhile leaves it here, for shutdown to kill)."""
        if worker not in self.workers:
            return
        if not worker.process.stdout.closed:
            self.selector.unregister(worker.process.stdout)
            worker.process.stdout.close()
        worker.process.wait()
        self.workers.remove(worker)
