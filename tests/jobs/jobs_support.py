"""Helpers for the data-plane tests: specs from overrides, metrics without wall time, simulated kills."""

from __future__ import annotations

from pathlib import Path

from jobs.run_folder import RunFolder
from jobs.sinks import RunFolderSink
from orchestrator.sweep import expand


def spec_for(*overrides: str) -> dict:
    (only,) = expand(list(overrides)).runs
    return only.spec


def numbers(run_dir: Path) -> list[dict]:
    """The metrics records without ``time``, the one field a resumed run may change."""
    return [{k: v for k, v in m.items() if k != "time"} for m in RunFolder(run_dir).metrics()]


class Killed(Exception):
    """Stands for a job killed at some point of training."""


class Killer:
    """Raises :class:`Killed` at the given points, one per attempt, in order.

    ``("eval", k)``: right after the metrics line of epoch k is on disk (so
    the resumed run must cut it). ``("step", s)``: when step s is logged,
    mid-epoch (the failure path flushes the step buffer, so steps.jsonl
    holds lines past the checkpoint).
    """

    def __init__(self, monkeypatch, *points: tuple[str, int]):
        self.points = list(points)
        log_eval, log_step = RunFolderSink.log_eval, RunFolderSink.log_step

        def eval_then_maybe_die(sink, record):
            log_eval(sink, record)
            self._maybe_die("eval", record["epoch"])

        def step_then_maybe_die(sink, record):
            log_step(sink, record)
            self._maybe_die("step", record["step"])

        monkeypatch.setattr(RunFolderSink, "log_eval", eval_then_maybe_die)
        monkeypatch.setattr(RunFolderSink, "log_step", step_then_maybe_die)

    def _maybe_die(self, kind: str, at: int) -> None:
        if self.points and self.points[0] == (kind, at):
            self.points.pop(0)
            raise Killed(f"killed at {kind} {at}")


def train_as_rank(rank: int, world_size: int, port: int, pack: list[dict], out: Path) -> None:
    """One rank of a local data-parallel job (``torch.multiprocessing.spawn`` target)."""
    import json
    import os

    from jobs.entry import RunPack

    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world_size), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    summaries = RunPack({"threads": 1})(pack)
    (out / f"rank{rank}.json").write_text(json.dumps({"pid": os.getpid(), "summaries": summaries}))
