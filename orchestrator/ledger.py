"""The sweep's submission ledger: which runs went to which scheduler job.

``<sweep>/jobs.jsonl`` is append-only. Every submission is written twice:
an *intent* before the scheduler is called (the packs of run ids and the
job name) and then its outcome, *submitted* (one job id per pack) or
*rejected* (the scheduler's error). A launcher killed between the two
leaves an intent without an outcome; :func:`orchestrator.reconcile`
looks such a batch up by its unique job name, so no run is lost and none
is submitted twice.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jobs.run_folder import JOBS_FILE, append_jsonl, read_jsonl


@dataclass(frozen=True)
class Assignment:
    """The latest job a run was submitted in."""

    run_id: str
    job_id: str
    batch: str
    launcher: str
    folder: str  # the scheduler's log folder


@dataclass(frozen=True)
class Intent:
    batch: str
    launcher: str
    name: str
    folder: str
    packs: list[list[str]]


class Ledger:
    def __init__(self, sweep_dir: Path):
        self.path = Path(sweep_dir) / JOBS_FILE

    def begin(self, launcher: str, folder: Path | str, packs: Sequence[Sequence[str]], name_prefix: str) -> Intent:
        """Record the intent to submit ``packs`` (one scheduler job or array task each).

        The intent's ``name`` (prefix + batch id) is unique: give it to the
        scheduler as the job name so that the job can be found again.
        """
        batch = uuid.uuid4().hex[:12]
        intent = Intent(batch, launcher, f"{name_prefix}{batch}", str(folder), [list(p) for p in packs])
        self._append({"event": "intent", "batch": batch, "launcher": launcher, "name": intent.name,
                      "folder": intent.folder, "packs": intent.packs})
        return intent

    def submitted(self, batch: str, job_ids: Sequence[str]) -> None:
        self._append({"event": "submitted", "batch": batch, "jobs": [str(j) for j in job_ids]})

    def rejected(self, batch: str, error: str) -> None:
        self._append({"event": "rejected", "batch": batch, "error": error})

    def _append(self, record: dict[str, Any]) -> None:
        append_jsonl(self.path, [{**record, "time": time.time()}])

    def read(self) -> tuple[dict[str, Assignment], list[Intent]]:
        """Latest assignment per run, and intents that have no outcome yet."""
        intents: dict[str, Intent] = {}
        outcomes: dict[str, list[str] | None] = {}
        order: list[str] = []
        for record in read_jsonl(self.path):
            event, batch = record.get("event"), record.get("batch")
            if event == "intent":
                intents[batch] = Intent(batch, record["launcher"], record["name"], record["folder"], record["packs"])
                order.append(batch)
            elif event == "submitted":
                outcomes[batch] = record["jobs"]
            elif event == "rejected":
                outcomes[batch] = None
        assignments: dict[str, Assignment] = {}
        for batch in order:
            jobs = outcomes.get(batch)
            if not jobs:
                continue
            intent = intents[batch]
            for pack, job_id in zip(intent.packs, jobs, strict=True):
                for run_id in pack:
                    assignments[run_id] = Assignment(run_id, job_id, batch, intent.launcher, intent.folder)
        unresolved = [intents[b] for b in order if b not in outcomes]
        return assignments, unresolved
