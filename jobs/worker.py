"""A warm worker of the local launcher: one process that imports torch once and runs many runs, one at a time.

``PYTHON -m jobs.worker [--wandb]`` (the launcher's Python, a container's
when the sweep runs in an image; ``--wandb`` when the runs log to W&B, whose
import and service start are then paid once too) imports torch and the
trainer, then reads jobs from its stdin, one JSON object a line::

    {"job_id": "4242-1", "spec": {...}, "run_dir": "...", "runtime": {...}, "budget": {...} | null,
     "stdout": "<log>.out", "stderr": "<log>.err"}

or, for a vectorised group (``launcher.vectorize``), ``"items": [{"spec", "run_dir",
"budget"}, ...]`` in place of ``spec``/``run_dir``/``budget``, trained together by
:func:`jobs.vectorized.run_group`. It runs each single run with :func:`jobs.entry.run`,
exactly as a one-process job would
(its folder, status, checkpoints, W&B run and budget are the run's own; a
failure is recorded in its status.json by :mod:`jobs.entry`), and answers
on its stdout, two lines per job, as the run begins and once it has ended::

    {"job_id": "4242-1", "began": true}
    {"job_id": "4242-1", "ok": true}

(the launcher counts a run's time limit from the first: the worker's own
start is not the run's).

It exits when its stdin closes: between runs, when the launcher has no
more for it; during a run, when the launcher is gone (killed, or giving
up), at once, so that no orphan trains on. Nothing but these answers
reaches the stdout the launcher reads: during a run, file descriptors 1
and 2 (Python's prints, C libraries, child processes) point at the run's
log files, and in between at the worker's own stderr (the launcher's
worker log). The job id
reaches the run as submitit's local job environment does
(``SUBMITIT_LOCAL_JOB_ID``), so :func:`jobs.attempt.job_id` and the run
folder's ownership work as for a submitit job.

What a run cannot survive is the launcher's concern: a run that kills its
process (a crash, ``os._exit``, SIGKILL) ends its worker, as does the
launcher's kill at the run's time limit, and the launcher starts another.
"""

from __future__ import annotations

import json
import os
import queue
import sys
import threading
import traceback
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import IO, Any

#: The worker's exit status when its launcher went away during a run.
LAUNCHER_GONE = 3


def main() -> int:
    jobs_in, replies = _take_channels()
    import torch  # the point of a warm worker: once, before the first job arrives
    import torch._dynamo  # noqa: F401 - what the first torch.optim optimizer imports (seconds)

    import jobs.entry
    import jobs.train  # noqa: F401 - imported by every run; loaded here once

    if "--wandb" in sys.argv[1:]:  # the logger is on: W&B's import and its service start, too, once
        os.environ.setdefault("WANDB_SILENT", "true")  # as jobs.sinks does before its import
        import wandb

        wandb.setup()  # its service starts now, with its output in this worker's log rather than a run's

    print(f"worker {os.getpid()} ready (torch {torch.__version__})", file=sys.stderr, flush=True)
    busy = threading.Event()
    jobs_queue: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=_read, args=(jobs_in, jobs_queue, busy), daemon=True).start()
    while (line := jobs_queue.get()) is not None:
        job = json.loads(line)
        replies.write(json.dumps({"job_id": job["job_id"], "began": True}) + "\n")
        busy.set()
        ok = run_job(job, jobs.entry.run)
        busy.clear()
        replies.write(json.dumps({"job_id": job["job_id"], "ok": ok}) + "\n")
    # Every run has ended and said so; tearing down torch and W&B's client (0.4 s) would only delay the
    # launcher, which waits for its workers to exit. W&B's service exits by itself once this process is gone.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _read(jobs_in: IO[str], jobs_queue: queue.Queue[str | None], busy: threading.Event) -> None:
    """Queue the jobs as they come; at the end of the stream, end the worker at once if a run is in progress.

    The launcher closes the stream of an idle worker only, so an end during a
    run means the launcher is gone (killed, or giving up): nobody would wait
    for the run, and a relaunch would start it again.
    """
    for line in jobs_in:
        if line.strip():
            jobs_queue.put(line)
    jobs_queue.put(None)
    if busy.is_set():
        print(f"worker {os.getpid()}: the launcher went away during a run; exiting", file=sys.stderr, flush=True)
        os._exit(LAUNCHER_GONE)


def _take_channels() -> tuple[IO[str], IO[str]]:
    """The launcher's channels, as private copies of stdin and stdout; fd 1 becomes the worker's log (stderr)
    and fd 0 /dev/null, so that nothing a run prints and no child process reaches them."""
    jobs_in = os.fdopen(os.dup(0), "r", encoding="utf-8")
    replies = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    return jobs_in, replies


def run_job(job: Mapping[str, Any], run: Any) -> bool:
    """One job (a run, or a vectorised group), its output in its logs; False when it raised (status.json says why)."""
    import torch

    os.environ["SUBMITIT_LOCAL_JOB_ID"] = str(job["job_id"])
    with _output_to(job["stdout"], job["stderr"]):
        where = job["run_dir"] if "run_dir" in job else f"a group of {len(job['items'])} runs"
        print(f"worker {os.getpid()} runs {where} as job {job['job_id']}", file=sys.stderr, flush=True)
        threads = job["runtime"].get("threads")
        if threads:
            torch.set_num_threads(int(threads))
        try:
            if "items" in job:
                from jobs.vectorized import run_group

                run_group(job["items"], job["runtime"])
            else:
                run(job["spec"], job["run_dir"], job["runtime"], job.get("budget"))
        except BaseException:  # the run's failure, recorded in its folder by jobs.entry; the worker goes on
            traceback.print_exc()
            return False
        return True


@contextmanager
def _output_to(stdout: str, stderr: str) -> Iterator[None]:
    """File descriptors 1 and 2 appended to the run's logs for the block, then back to the worker's."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    try:
        for fd, path in ((1, stdout), (2, stderr)):
            target = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            os.dup2(target, fd)
            os.close(target)
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])


if __name__ == "__main__":
    raise SystemExit(main())
