"""Sweeps as the dashboard shows them: the monitor's progress model, cached between refreshes.

Every number comes from :func:`orchestrator.monitor.sweep_progress`, the model
``optbench status`` prints, so the page and the terminal agree.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from analysis.collect import input_fingerprint
from jobs.run_folder import JOBS_FILE
from orchestrator.dashboard.reports import report_url
from orchestrator.monitor import sweep_progress, tail
from orchestrator.store import ResultsStore

#: States whose job log is worth reading on the page.
FAILED_STATES = ("failed", "timeout")
LOG_LINES = 20
#: Failures shown with their log per sweep; the runs table lists the rest.
FAILURES_SHOWN = 50


@dataclass
class _Entry:
    computed: float  # time.monotonic()
    files: tuple[int, ...] | None  # the sweep's files when it had ended; None while it was active
    sweep: dict[str, Any]


class ProgressCache:
    """Each sweep's progress as JSON, computed again only when it may have changed.

    A sweep with runs queued or running is computed again once ``max_age``
    seconds have passed, so the sweep list and the sweep's page of one refresh
    share one computation (and one ``sacct`` call). A sweep that has ended is
    computed again only when its files change (a resume, a run shared with
    another sweep that ran again).
    """

    def __init__(self, store: ResultsStore, max_age: float = 1.0):
        self.store = store
        self.max_age = max_age
        self._entries: dict[Path, _Entry] = {}
        self._lock = threading.Lock()

    def sweep(self, sweep_dir: Path) -> dict[str, Any]:
        """:meth:`SweepProgress.to_json` with ``active``, ``failures`` and ``report`` (a URL or None)."""
        return self._progress(sweep_dir) | {"report": report_url(sweep_dir)}

    def _progress(self, sweep_dir: Path) -> dict[str, Any]:
        with self._lock:
            entry = self._entries.get(sweep_dir)
        now = time.monotonic()
        if entry is not None and (now - entry.computed < self.max_age
                                  or entry.files is not None and entry.files == self._files(sweep_dir)):
            return entry.sweep
        files = self._files(sweep_dir)  # before reading: a change while reading must count as a change
        progress = sweep_progress(self.store, sweep_dir)
        sweep = progress.to_json() | {"active": progress.active}
        sweep["failures"] = _failures(sweep["runs"])
        with self._lock:
            self._entries[sweep_dir] = _Entry(now, None if progress.active else files, sweep)
        return sweep

    def summaries(self) -> list[dict[str, Any]]:
        """Every sweep of the results folder, newest first, without its runs."""
        infos = sorted(self.store.sweeps(), key=lambda s: s.get("created") or 0, reverse=True)
        summaries = []
        for info in infos:
            sweep = self.sweep(self.store.sweep_dir(info["sweep_id"]))
            summaries.append({key: value for key, value in sweep.items() if key not in ("runs", "failures")}
                             | {"runs": len(sweep["runs"])})
        return summaries

    def _files(self, sweep_dir: Path) -> tuple[int, ...]:
        fingerprint = input_fingerprint(sweep_dir, self.store.runs_dir)
        try:
            ledger = os.stat(sweep_dir / JOBS_FILE).st_mtime_ns
        except FileNotFoundError:
            ledger = 0
        return fingerprint["latest_mtime_ns"], fingerprint["files"], ledger


def _failures(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The failed and timed-out runs (the first :data:`FAILURES_SHOWN`) with the end of their job log."""
    failed = [run for run in runs if run["state"] in FAILED_STATES][:FAILURES_SHOWN]
    return [{key: run[key] for key in ("run_id", "state", "label", "seed", "error", "log")}
            | {"log_tail": tail(Path(run["log"]), LOG_LINES) if run["log"] else []} for run in failed]
