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

from jobs.run_folder import HEADLINE_METRICS, MEASUREMENTS, METRICS, STEPS, RunFolder, append_jsonl
from jobs.spec import flatten

log = logging.getLogger(__name__)

#: W&B modes a job accepts; ``auto`` is resolved by the control plane.
WANDB_MODES = ("offline", "online", "disabled")
#: Metrics of the latest evaluation that status.json carries in ``last``.
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
    """One W&B run per optbench run: id and name = run_id, group = the sweep, job type = the problem.

    Tags: the problem, the optimizer and the logger's ``tags``. Config: the
    spec flattened to dotted keys (``optimizer.lr``, ``train.batch_size``),
    so W&B's UI filters and groups on any hyperparameter, and the
    :attr:`RUN_KEYS` ``sweep_id``, ``sweep_name`` (when the logger settings
    name the sweep), ``run_id`` and ``setting_id`` (the spec without its
    seed: group by it to see a setting's seeds together). Summary:
    ``attempt`` and ``resumed_from_epoch`` (None for a fresh start) of the
    latest attempt, and at the end ``state`` and ``steps``.

    Every attempt at a run continues the same W&B run (``resume="allow"``);
    offline, each attempt writes its own ``wandb/offline-run-<time>-<run_id>``
    folder, and ``wandb sync`` uploads a run's folders in order. A W&B run's
    history only grows, one row per step: W&B ignores rows at steps below the
    run's current step. So that the row of a step is whole when it reaches
    W&B, the sink hands it over once the step is complete: when a record at a
    later step arrives, at each checkpoint (:meth:`flush`) and at a
    successful end; a failed attempt drops its last row. And each attempt
    skips records at steps up to :attr:`skip_through`, the last step W&B
    holds for the run: online, the step before the ``starting_step`` W&B's
    server reports; offline, the largest history step in the earlier
    attempts' record logs in this run folder (what ``wandb sync`` uploads
    before this attempt's log). An attempt resumed from an epoch's checkpoint
    thus adds exactly the steps the killed attempt had not logged; the points
    it skips were computed by the killed attempt from the same state (bitwise
    the same on CPU), and metrics.jsonl holds the resumed attempt's. An
    attempt that starts afresh (no usable checkpoint) likewise adds only the
    steps past the earlier attempts'.
    """

    #: W&B's own collection that costs a run more than it tells: the list of installed packages (requirements.txt)
    #: is gathered anew by every ``wandb.init`` (about 40 ms of init + finish's 50 ms offline, see
    #: benchmarks/bench_local.py); the packages that matter are in the run's provenance.json. Every logged value,
    #: config and summary entry stays, as do W&B's system metrics, console log and run metadata.
    SETTINGS = {"x_save_requirements": False}
    #: Config keys besides the spec's; ``analysis.wandb_source`` leaves them out of the spec it reads back.
    RUN_KEYS = ("sweep_id", "sweep_name", "run_id", "setting_id")
    #: Records at steps up to this one are already in W&B and are not logged again.
    skip_through = -1
    #: The row being gathered: its step and data, handed to W&B once the step is complete.
    pending: tuple[int, dict[str, Any]] | None = None

    def __init__(self, root: Path, run_id: str, spec: Mapping[str, Any], logger: Mapping[str, Any]):
        os.environ.setdefault("WANDB_SILENT", "true")
        import wandb

        from jobs.spec import setting_id
        from jobs.wandb_records import last_history_step

        earlier = list((root / "wandb").glob(f"*-{run_id}*/run-{run_id}.wandb"))  # before init adds this attempt's
        problem, optimizer = spec["problem"]["name"], spec["optimizer"]["name"]
        keys = {"sweep_id": logger.get("group"), "sweep_name": logger.get("sweep_name"), "run_id": run_id,
                "setting_id": setting_id(spec)}
        self.run = wandb.init(
            project=logger.get("project") or "optbench",
            entity=logger.get("entity"),
            group=logger.get("group"),
            job_type=problem,
            tags=[problem, optimizer, *logger.get("tags", [])],
            id=run_id,
            name=run_id,
            dir=str(root),
            config={**flatten(spec), **{k: v for k, v in keys.items() if v is not None}},
            mode=logger["mode"],
            resume="allow",
            settings=wandb.Settings(**self.SETTINGS),
        )
        status = RunFolder(root).status()
        self.run.summary.update({"attempt": status.get("attempts"),
                                 "resumed_from_epoch": status.get("resumed_from_epoch")})
        held = last_history_step(earlier)
        self.skip_through = max(self.run.starting_step - 1, -1 if held is None else held)

    def where(self) -> dict[str, Any]:
        """The run's mode, its URL (online) and the local folder ``optbench sync`` uploads (offline)."""
        mode = self.run.settings.mode
        return {"mode": mode, "project": self.run.project, "entity": self.run.entity or None,
                "url": self.run.url if mode == "online" else None, "dir": str(Path(self.run.dir).parent)}

    def log_eval(self, record: dict[str, Any]) -> None:
        self._log({k: v for k, v in record.items() if k != "step"}, record["step"])

    def log_step(self, record: dict[str, Any]) -> None:
        self._log({f"step/{k}": v for k, v in record.items() if k != "step"}, record["step"])

    def log_progress(self, record: dict[str, Any]) -> None:
        pass

    def log_measurement(self, record: dict[str, Any]) -> None:
        """The scalars, as ``measure/<measurement>/<name>``, with the epoch; the arrays stay in the run folder."""
        scalars = {f"measure/{record['measurement']}/{k}": v for k, v in record["scalars"].items()}
        self._log({"epoch": record["epoch"], **scalars}, record["step"])

    def _log(self, data: dict[str, Any], step: int) -> None:
        if step <= self.skip_through:
            return
        if self.pending is not None and self.pending[0] != step:
            self.flush()
        self.pending = (step, {**(self.pending[1] if self.pending else {}), **data})

    def flush(self) -> None:
        if self.pending is not None:
            step, data = self.pending
            self.run.log(data, step=step)
            self.pending = None

    def close(self, summary: Mapping[str, Any], exit_code: int) -> None:
        if exit_code == 0:
            self.flush()
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
