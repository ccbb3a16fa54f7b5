"""Helpers for the W&B tests: W&B's own reading of record logs, simulated kills, comparisons with NaN."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

from jobs.sinks import RunFolderSink


def records(log: Path) -> list[dict[str, Any]]:
    """The records of a ``.wandb`` log as wandb itself reads them (``wandb leet inspect --json``)."""
    out = subprocess.run([sys.executable, "-m", "wandb", "leet", "inspect", "--json", str(log)],
                         capture_output=True, text=True, check=True, timeout=60).stdout
    return [json.loads(line) for line in out.splitlines()]


def of_type(log_records: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [record[kind] for record in log_records if record["type"] == kind]


def history(log_records: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """W&B step → history row; a step logged twice in one log fails."""
    rows: dict[int, dict[str, Any]] = {}
    for row in of_type(log_records, "history"):
        step = int(row["step"]["num"])
        assert step not in rows, f"step {step} logged twice"
        assert row["item"]["_step"] == step
        rows[step] = row["item"]
    return rows


def summary(log_records: list[dict[str, Any]]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for update in of_type(log_records, "summary"):
        merged.update(update.get("update") or {})
    return merged


def offline_logs(run_dir: Path) -> list[Path]:
    """A run folder's offline record logs, oldest first."""
    return sorted(run_dir.glob(f"wandb/offline-run-*/run-{run_dir.name}.wandb"))


def same(a: Any, b: Any) -> bool:
    """Equal, NaN equal to NaN (W&B writes it as the text "NaN")."""
    a, b = (math.nan if v in ("NaN", "nan") else v for v in (a, b))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def missing_from(rows: dict[int, dict[str, Any]], record: dict[str, Any], prefix: str = "") -> list[str]:
    """The keys of a run-folder record (``step`` and the rest) that the row at its step lacks or differs in."""
    row = rows.get(record["step"])
    if row is None:
        return [f"step {record['step']}"]
    return [key for key, value in record.items()
            if key != "step" and not same(row.get(prefix + key), value)]


class Killed(Exception):
    """Stands for a job killed right after an evaluation line reached the run folder."""


def kill_after_eval(monkeypatch, epoch: int) -> None:
    """The next attempt dies once epoch ``epoch``'s metrics line is on disk, before the other sinks see it."""
    log_eval = RunFolderSink.log_eval
    armed = [True]

    def log_then_die(sink, record):
        log_eval(sink, record)
        if armed[0] and record["epoch"] == epoch:
            armed[0] = False
            raise Killed(f"killed after epoch {epoch}")

    monkeypatch.setattr(RunFolderSink, "log_eval", log_then_die)
