"""Where metrics go: the run folder always, Weights & Biases unless disabled."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jobs.run_folder import METRICS, STEPS, append_jsonl
from jobs.spec import flatten

log = logging.getLogger(__name__)

#: W&B modes a job accepts; ``auto`` is resolved by the control plane.
WANDB_MODES = ("offline", "online", "disabled")


class RunFolderSink:
    """Appends evaluation records at once and step records in batches."""

    def __init__(self, root: Path, step_buffer: int = 256):
        self.root, self.step_buffer = root, step_buffer
        self._steps: list[dict[str, Any]] = []

    def log_eval(self, record: dict[str, Any]) -> None:
        self.flush()
        append_jsonl(self.root / METRICS, [record])

    def log_step(self, record: dict[str, Any]) -> None:
        self._steps.append(record)
        if len(self._steps) >= self.step_buffer:
            self.flush()

    def flush(self) -> None:
        append_jsonl(self.root / STEPS, self._steps)
        self._steps = []

    def close(self, summary: Mapping[str, Any], exit_code: int) -> None:
        self.flush()


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

    def log_eval(self, record: dict[str, Any]) -> None:
        self.run.log({k: v for k, v in record.items() if k != "step"}, step=record["step"])

    def log_step(self, record: dict[str, Any]) -> None:
        self.run.log({f"step/{k}": v for k, v in record.items() if k != "step"}, step=record["step"])

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

    def close(self, summary: Mapping[str, Any], exit_code: int) -> None:
        for sink in self.sinks:
            sink.close(summary, exit_code)



def open_sinks(root: Path, run_id: str, spec: Mapping[str, Any], logger: Mapping[str, Any]) -> FanOut:
    sinks: list[Any] = [RunFolderSink(root)]
    if logger.get("mode", "disabled") != "disabled":
        sinks.append(WandbSink(root, run_id, spec, logger))
    return FanOut(*sinks)
