"""The run folder: the on-disk contract between the three planes.

``<results>/runs/<run_id>/`` holds

``spec.yaml``
    the run spec (written once by the control plane).
``status.json``
    one state machine, :data:`STATES`; rewritten atomically.
``metrics.jsonl``
    one JSON object per evaluation point, appended: ``epoch``, ``step``,
    ``time`` (seconds of training so far), ``{train,valid,test}_loss``,
    ``{train,valid,test}_accuracy`` where the problem has one, ``lr``
    (effective learning rate), ``forward_passes``, ``backward_passes``.
``steps.jsonl``
    per-step optimizer diagnostics at the configured cadence, appended.
``summary.json``
    the outcome, written once at the end.
``provenance.json``
    where and with what the run ran.

Every write is atomic (write to a temporary file, fsync, rename) or an
append of whole lines, so a killed job never leaves a file that cannot be
read; readers of ``.jsonl`` files ignore a torn last line.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

STATES = ("pending", "submitted", "running", "completed", "failed", "diverged", "timeout", "cancelled")
FINAL_STATES = frozenset({"completed", "failed", "diverged", "timeout", "cancelled"})
#: Final states whose result is kept: launching again does not rerun them.
DONE_STATES = frozenset({"completed", "diverged"})

SPEC = "spec.yaml"
STATUS = "status.json"
METRICS = "metrics.jsonl"
STEPS = "steps.jsonl"
SUMMARY = "summary.json"
PROVENANCE = "provenance.json"


def atomic_write_text(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` so that readers see the old or the new file, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True, allow_nan=True) + "\n")


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def append_jsonl(path: Path, records: Iterable[dict[str, Any]]) -> None:
    """Append whole lines in one write, flushed to disk."""
    payload = "".join(json.dumps(r, sort_keys=True, allow_nan=True) + "\n" for r in records)
    if not payload:
        return
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(payload)
        handle.flush()
        os.fsync(handle.fileno())


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """Yield the complete records of an append-only file; a torn last line is skipped."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return
    end = text.rfind("\n")
    for line in text[: end + 1].splitlines():
        if line.strip():
            yield json.loads(line)


class RunFolder:
    """Paths and state of one run; cheap to create, touches the disk only when asked."""

    def __init__(self, root: Path | str):
        self.root = Path(root)

    @property
    def run_id(self) -> str:
        return self.root.name

    def path(self, name: str) -> Path:
        return self.root / name

    def status(self) -> dict[str, Any]:
        """The last written status; a run folder without one is pending."""
        try:
            return read_json(self.path(STATUS))
        except (FileNotFoundError, NotADirectoryError):
            return {"state": "pending", "run_id": self.run_id}

    @property
    def state(self) -> str:
        return self.status()["state"]

    def set_state(self, state: str, **fields: Any) -> dict[str, Any]:
        """Move to ``state``, keeping earlier fields; timestamps are seconds since the epoch."""
        if state not in STATES:
            raise ValueError(f"unknown run state {state!r}")
        status = self.status()
        status.update(fields)
        status.update(state=state, run_id=self.run_id, updated=time.time())
        if state == "running":
            status["started"] = status["updated"]
            status["attempts"] = int(status.get("attempts", 0)) + 1
        if state in FINAL_STATES:
            status["ended"] = status["updated"]
        write_json(self.path(STATUS), status)
        return status

    def metrics(self) -> list[dict[str, Any]]:
        return list(read_jsonl(self.path(METRICS)))

    def summary(self) -> dict[str, Any] | None:
        try:
            return read_json(self.path(SUMMARY))
        except FileNotFoundError:
            return None
