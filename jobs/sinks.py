"""Where metrics go: the run folder always, Weights & Biases unless disabled.

A sink has ``log_eval``, ``log_step``, ``log_measurement`` (a record of
:mod:`jobs.measure`), ``log_progress`` (called after every optimizer step with
``step``, ``epoch``, ``steps`` (the run's total) and ``loss``; sinks that
report progress rate-limit it themselves), ``flush`` (everything logged so far
is on disk) and ``close``. :class:`FanOut` without sinks is the sink of the ranks that
write nothing.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jobs.run_folder import MEASUREMENTS, METRICS, STEPS, RunFolder, append_jsonl
from jobs.spec import flatten

log = logging.getLogger(__name__)

#: W&B modes a job accepts; ``auto`` is resolved by the control plane.
WANDB_MODES = ("offline", "online", "disabled")
#: Metrics of the latest evaluation that status.json carries in ``last``.
HEADLINE_METRICS = ("train_loss", "valid_loss", "valid_accuracy", "test_loss", "test_accuracy")
#: Default seconds between two heartbeats of a running run in its status.json.
HEARTBEAT_SECONDS = 10.0


class RunFolderSink:
    """Appends evaluation and measurement records at once and step records in batches."""

    def __init__(self, root: Path, step_buffer: int = 256):
        self.root, self.step_buffer = root, step_buffer
        self._steps: list[dict[str, Any]] = []

    def log_eval(self, record: dict[str, Any]) -> None:
        self.flush()
        append_jsonl(self.root / METRICS, [record])

    def log_measurement(self, record: dict[str, Any]) -> None:
        append_jsonl(self.root / MEASUREMENTS, [record])

    def log_step(self, record: dict[str, Any]) -> None:
        self._steps.append(record)
        if len(self._steps) >= self.step_buffer:
            self.flush()

    def log_progress(self, record: dict[str, Any]) -> None:
        pass

    def flush(self) -> None:
        append_jsonl(self.root / STEPS, self._steps)
        self._steps = []

    def close(self, summary: Mapping[str, Any], exit_code: int) -> None:
        self.flush()


class StatusSink:
    """Keeps ``progress`` and ``last`` in status.json current, so the control plane reads one small file.

    Every evaluation writes them; between evaluations a heartbeat writes the
    progress at most once per ``heartbeat_seconds`` of wall-clock time:
    ``{epoch, epochs, step, steps, loss, steps_per_second, eta_seconds,
    heartbeat}``, where ``steps`` is the run's total, ``loss`` the latest
    minibatch loss, the rate is measured since the previous heartbeat (or the
    attempt's first step) and ``heartbeat`` is the time of writing (seconds
    since the epoch), from which readers tell a stalled run.
    """

    def __init__(self, folder: RunFolder, epochs: int, heartbeat_seconds: float = HEARTBEAT_SECONDS):
        self.folder, self.heartbeat_seconds = folder, heartbeat_seconds
        self.progress: dict[str, Any] = {"epochs": epochs}
        self._beat: tuple[float, int] | None = None  # (monotonic time, step) of the rate's start

    def log_eval(self, record: dict[str, Any]) -> None:
        self.progress.update(epoch=record["epoch"], step=record["step"])
        if self.progress.get("steps_per_second"):
            self.progress["eta_seconds"] = (self.progress["steps"] - record["step"]) / self.progress["steps_per_second"]
        self._write(last={k: record[k] for k in HEADLINE_METRICS if k in record})

    def log_progress(self, record: dict[str, Any]) -> None:
        now = time.monotonic()
        if self._beat is None:
            self._beat = (now, record["step"] - 1)
        started, first_step = self._beat
        elapsed = now - started
        if elapsed <= 0 or elapsed < self.heartbeat_seconds:
            return
        rate = (record["step"] - first_step) / elapsed
        self.progress.update(epoch=record["epoch"], step=record["step"], steps=record["steps"],
                             loss=record["loss"], steps_per_second=rate,
                             eta_seconds=(record["steps"] - record["step"]) / rate if rate > 0 else None)
        self._beat = (now, record["step"])
        self._write()

    def _write(self, **fields: Any) -> None:
        self.folder.update(progress={**self.progress, "heartbeat": time.time()}, **fields)

    def log_step(self, record: dict[str, Any]) -> None:
        pass

    def log_measurement(self, record: dict[str, Any]) -> None:
        pass

    def flush(self) -> None:
        pass

    def close(self, summary: Mapping[str, Any], exit_code: int) -> None:
        pass


class WandbSink:
    """One W&B run per optbench run: id = run_id, group = sweep, resumable."""

    def __init__(self, root: Path, run_id: str, spec: Mapping[str, Any], logger: Mapping[str, Any]):
        os.environ.setdefault("WANDB_SILENT", "true")
        import wandb

        problem, optimizer = spec["problem"]["name"], spec["optimizer"]["name"]
        self.run = wandb.init(
            project=logger.get("project") or "optbench",
            entity=logger.get("entity"),
            group=logger.get("group"),
            job_type=problem,
            tags=[problem, optimizer, *logger.get("tags", [])],
            id=run_id,
            name=run_id,
            dir=str(root),
            config=flatten(spec),
            mode=logger["mode"],
            resume="allow",
        )

    def where(self) -> dict[str, Any]:
        """The run's mode, its URL (online) and the local folder ``optbench sync`` uploads (offline)."""
        mode = self.run.settings.mode
        return {"mode": mode, "project": self.run.project, "entity": self.run.entity or None,
                "url": self.run.url if mode == "online" else None, "dir": str(Path(self.run.dir).parent)}

    def log_eval(self, record: dict[str, Any]) -> None:
        self.run.log({k: v for k, v in record.items() if k != "step"}, step=record["step"])

    def log_step(self, record: dict[str, Any]) -> None:
        self.run.log({f"step/{k}": v for k, v in record.items() if k != "step"}, step=record["step"])

    def log_progress(self, record: dict[str, Any]) -> None:
        pass

    def log_measurement(self, record: dict[str, Any]) -> None:
        """The scalars, as ``measure/<measurement>/<name>``, with the epoch; the arrays stay in the run folder."""
        scalars = {f"measure/{record['measurement']}/{k}": v for k, v in record["scalars"].items()}
        self.run.log({"epoch": record["epoch"], **scalars}, step=record["step"])

    def flush(self) -> None:
        pass

    def close(self, summary: Mapping[str, Any], exit_code: int) -> None:
        self.run.summary.update({"state": summary.get("state"), "steps": summary.get("steps")})
        self.run.finish(exit_code=exit_code)


class FanOut:
    def __init__(self, *sinks: Any):
        self.sinks = sinks

    def log_eval(self, record: dict[str, Any]) -> None:
        for sink in self.sinks:
            sink.log_eval(record)

    def log_step(self, record: dict[str, Any]) -> None:
        for sink in self.sinks:
            sink.log_step(record)

    def log_measurement(self, record: dict[str, Any]) -> None:
        for sink in self.sinks:
            sink.log_measurement(record)

    def log_progress(self, record: dict[str, Any]) -> None:
        for sink in self.sinks:
            sink.log_progress(record)

    def flush(self) -> None:
        for sink in self.sinks:
            sink.flush()

    def close(self, summary: Mapping[str, Any], exit_code: int) -> None:
        for sink in self.sinks:
            sink.close(summary, exit_code)


def open_sinks(folder: RunFolder, spec: Mapping[str, Any], logger: Mapping[str, Any]) -> FanOut:
    """The run folder's sinks, and W&B's unless disabled; where the W&B run lives goes into status.json."""
    heartbeat = float(logger.get("heartbeat_seconds") or HEARTBEAT_SECONDS)
    sinks: list[Any] = [RunFolderSink(folder.root), StatusSink(folder, spec["train"]["epochs"], heartbeat)]
    if logger.get("mode", "disabled") != "disabled":
        wandb_sink = WandbSink(folder.root, folder.run_id, spec, logger)
        sinks.append(wandb_sink)
        folder.update(wandb=wandb_sink.where())
    return FanOut(*sinks)
