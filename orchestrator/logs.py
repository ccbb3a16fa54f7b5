"""``optbench logs RUN_ID``: the output of the job that ran a run, found through the sweeps' ledgers.

Local and Slurm jobs both write submitit's logs into the sweep's job folder
(``<job>_<task>_log.out`` / ``.err``, one pair per task), so one lookup serves
both; a multi-node run shows every task's logs, task 0 first.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from rich.console import Console
from rich.rule import Rule

from jobs.run_folder import FINAL_STATES
from orchestrator.errors import UserError
from orchestrator.monitor import latest_job, tail
from orchestrator.reconcile import job_logs
from orchestrator.store import ResultsStore

FOLLOW_POLL_SECONDS = 1.0


def task_logs(store: ResultsStore, run_id: str) -> list[Path]:
    """Every task's stdout and stderr of the run's latest job, task 0 first (files may not exist yet)."""
    job = latest_job(store, run_id)
    if job is None:
        return []
    pattern = re.compile(rf"{re.escape(job.job_id)}_(\d+)_log\.(out|err)")
    tasks = sorted({int(m[1]) for path in Path(job.folder).glob(f"{job.job_id}_*_log.*")
                    if (m := pattern.fullmatch(path.name))} - {0})
    return [log for task in (0, *tasks) for log in job_logs(job, task)]


def show(store: ResultsStore, run_id: str, lines: int, follow: bool, console: Console) -> int:
    """Print the last ``lines`` of each log; with ``follow``, then what is appended until the run has ended."""
    folder = store.run_folder(run_id)
    logs = task_logs(store, run_id)
    if not logs:
        if not folder.root.is_dir():
            raise UserError(f"No run {run_id!r} in {store.root}; optbench status SWEEP lists the run ids "
                            "(or pass the results folder with --results DIR).")
        console.print(f"Run {run_id} ({folder.state}) was never submitted from a sweep in {store.root}; "
                      "there is no job log.")
        return 0
    offsets: dict[Path, int] = {}
    for path in logs:
        console.print(Rule(str(path), align="left", style="dim"))
        if not path.is_file():
            console.print("(not written yet)", style="dim")
            continue
        console.print("\n".join(tail(path, lines)), markup=False, highlight=False)
        offsets[path] = path.stat().st_size
    if follow:
        _follow(folder.status, logs, offsets, console)
    return 0


def _follow(status, logs: list[Path], offsets: dict[Path, int], console: Console) -> None:
    """Print new output as it is appended, until the run's state is final (then once more, for the last lines)."""
    while True:
        state = status()["state"]
        for path in logs:
            try:
                with open(path, "rb") as handle:
                    handle.seek(offsets.get(path, 0))
                    new = handle.read()
            except FileNotFoundError:
                continue
            if state not in FINAL_STATES:
                new = new[: new.rfind(b"\n") + 1]  # whole lines only; the rest comes with its newline
            if new:
                offsets[path] = offsets.get(path, 0) + len(new)
                console.print(new.decode("utf-8", errors="replace").rstrip("\n"), markup=False, highlight=False)
        if state in FINAL_STATES:
            console.print(f"Run ended: {state}.", style="dim")
            return
        time.sleep(FOLLOW_POLL_SECONDS)
