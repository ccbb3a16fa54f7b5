"""One launcher per sweep at a time, so two ``optbench launch`` of the same sweep never start a run twice.

``launch`` and ``resume`` hold an advisory lock (:func:`fcntl.flock`, which
Linux maps onto POSIX locks on NFS) on ``<sweep>/launch.lock`` from reading
the runs' states until their jobs are submitted (Slurm) or have ended
(local). The kernel drops the lock when its process dies, so a killed
launcher never blocks the sweep. The holder writes who it is into the file,
for the message the other launcher prints.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from jobs.run_folder import LOCK_FILE
from orchestrator.errors import UserError

#: How long a launch waits for another one that is submitting to Slurm (a few seconds, normally).
SLURM_WAIT_S = 120.0
POLL_S = 0.2


@contextmanager
def sweep_lock(sweep_dir: Path, launcher: str, wait_s: float = SLURM_WAIT_S) -> Iterator[None]:
    """Hold the sweep's launch lock; wait for a Slurm submission in progress, refuse next to a local launch."""
    sweep_dir.mkdir(parents=True, exist_ok=True)
    with open(sweep_dir / LOCK_FILE, "a+", encoding="utf-8") as handle:
        deadline = time.monotonic() + wait_s
        while not _try_lock(handle):
            holder = _holder(handle)
            if holder.get("launcher") == "local" or time.monotonic() > deadline:
                raise UserError(f"Sweep {sweep_dir.name} is being launched by another optbench (pid "
                                f"{holder.get('pid', '?')} on {holder.get('host', '?')}, launcher "
                                f"{holder.get('launcher', '?')}); watch it with optbench status {sweep_dir.name} "
                                "and launch again once it has ended.")
            time.sleep(POLL_S)
        try:
            handle.seek(0)
            handle.truncate()
            handle.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "launcher": launcher,
                                     "since": time.time()}))
            handle.flush()
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _try_lock(handle) -> bool:
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def _holder(handle) -> dict:
    handle.seek(0)
    try:
        return json.loads(handle.read() or "{}")
    except ValueError:
        return {}  # the holder is between truncating and writing
