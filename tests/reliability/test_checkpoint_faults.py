"""Two checkpoint generations: a latest checkpoint that does not load falls back to the one before."""

from __future__ import annotations

import itertools
import logging
import os
from pathlib import Path

import pytest
import torch
from jobs_support import Killed, Killer, numbers, spec_for

from jobs import checkpoint
from jobs.entry import run
from jobs.run_folder import CHECKPOINT, METRICS, STEPS, RunFolder

DIGITS = ("problem=digits_mlp", "problem.hidden=8", "problem.dropout=0.3", "train.epochs=4", "train.log_every=1")
CHECKPOINT_FILES = (CHECKPOINT, checkpoint.PREVIOUS, checkpoint.STAGED)


@pytest.fixture(scope="module")
def unbroken(tmp_path_factory) -> tuple[Path, dict]:
    """The run never interrupted: its folder and summary."""
    folder = tmp_path_factory.mktemp("unbroken") / "run"
    return folder, run(spec_for(*DIGITS), folder)


def killed_after_epoch_3(folder: Path, monkeypatch) -> None:
    """The run killed right after epoch 3's metrics line: checkpoint.pt is epoch 2's, checkpoint.prev.pt epoch 1's."""
    Killer(monkeypatch, ("eval", 3))
    with pytest.raises(Killed):
        run(spec_for(*DIGITS), folder)
    epochs = [torch.load(folder / name, weights_only=True)["epoch"] for name in (CHECKPOINT, checkpoint.PREVIOUS)]
    assert epochs == [2, 1]


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def garble(path: Path) -> None:
    path.write_bytes(os.urandom(path.stat().st_size))


def give_to_another_run(path: Path) -> None:
    state = torch.load(path, weights_only=True)
    torch.save({**state, "run_id": "0123456789ab"}, path)


def lose_metrics_after_epoch_1(path: Path) -> None:
    """metrics.jsonl keeps epochs 0 and 1: checkpoint.pt (epoch 2) counts on a third line."""
    metrics = path.parent / METRICS
    metrics.write_text("".join(metrics.read_text().splitlines(keepends=True)[:2]))


def assert_continues_exactly(folder: Path, summary: dict, unbroken: tuple[Path, dict]) -> None:
    reference, expected = unbroken
    assert numbers(folder) == numbers(reference)
    assert (folder / STEPS).read_bytes() == (reference / STEPS).read_bytes()
    assert {**summary, "train_time": 0, "final": {**summary["final"], "time": 0}} == {
        **expected, "train_time": 0, "final": {**expected["final"], "time": 0}}
    assert not [name for name in CHECKPOINT_FILES if (folder / name).exists()], "a finished run keeps no checkpoint"


@pytest.mark.parametrize(("damage", "reason"), [
    (truncate, "it cannot be read"),
    (garble, "it cannot be read"),
    (give_to_another_run, "it belongs to run 0123456789ab"),
    (lose_metrics_after_epoch_1, "metrics.jsonl holds 2 lines, it counts on 3"),
], ids=["truncated", "garbage", "another-run", "logs-shorter"])
def test_a_latest_checkpoint_that_does_not_load_falls_back_to_the_previous_one(
        tmp_path, monkeypatch, caplog, unbroken, damage, reason):
    """A truncated, garbled, foreign or over-counting checkpoint.pt is skipped with a warning; the run resumes from
    checkpoint.prev.pt, cuts its logs back to that checkpoint's counts and ends bitwise as if never stopped."""
    folder = tmp_path / "run"
    killed_after_epoch_3(folder, monkeypatch)
    damage(folder / CHECKPOINT)

    with caplog.at_level(logging.WARNING, logger="jobs.checkpoint"):
        state = checkpoint.resume(RunFolder(folder))
    assert state["epoch"] == 1
    assert f"skipping {folder / CHECKPOINT}: {reason}" in caplog.text
    assert "resuming from the previous checkpoint, of epoch 1" in caplog.text
    assert [m["epoch"] for m in RunFolder(folder).metrics()] == [0, 1], "cut back to the previous checkpoint"
    assert checkpoint.load(RunFolder(folder))["epoch"] == 1, "what other ranks read is what rank 0 resumed from"

    summary = run(spec_for(*DIGITS), folder)
    status = RunFolder(folder).status()
    assert status["state"] == "completed" and status["resumed_from_epoch"] == 1 and status["attempts"] == 2
    assert_continues_exactly(folder, summary, unbroken)


def test_with_neither_checkpoint_usable_the_run_starts_afresh_and_says_so(tmp_path, monkeypatch, caplog, unbroken):
    """Both generations damaged: the run starts from epoch 0, logs why, and sets the killed attempt's files aside."""
    folder = tmp_path / "run"
    killed_after_epoch_3(folder, monkeypatch)
    truncate(folder / CHECKPOINT)
    garble(folder / checkpoint.PREVIOUS)

    with caplog.at_level(logging.WARNING, logger="jobs.checkpoint"):
        summary = run(spec_for(*DIGITS), folder)

    assert f"skipping {folder / checkpoint.PREVIOUS}: it cannot be read" in caplog.text
    assert "no usable checkpoint (checkpoint.pt, checkpoint.prev.pt); starting afresh" in caplog.text
    status = RunFolder(folder).status()
    assert status["state"] == "completed" and status["resumed_from_epoch"] is None
    (set_aside,) = folder.glob("attempt-*")
    assert [m["epoch"] for m in RunFolder(set_aside).metrics()] == [0, 1, 2, 3], "the killed attempt's lines are kept"
    assert_continues_exactly(folder, summary, unbroken)


def kill_before_rename(monkeypatch, onto: str, nth: int) -> None:
    """Kill the job (raise :class:`Killed`) just before the ``nth`` rename of a file onto one named ``onto``."""
    replace, renames = os.replace, itertools.count(1)

    def replace_unless_killed(source, target):
        if Path(target).name == onto and next(renames) == nth:
            raise Killed(f"killed before renaming {source} to {target}")
        replace(source, target)

    monkeypatch.setattr(os, "replace", replace_unless_killed)


@pytest.mark.parametrize("onto", [checkpoint.STAGED, checkpoint.PREVIOUS, CHECKPOINT],
                         ids=["while-staging", "before-rotating", "between-the-renames"])
def test_a_job_killed_anywhere_in_a_save_leaves_a_checkpoint_to_resume_from(tmp_path, monkeypatch, unbroken, onto):
    """Killed at any step of epoch 2's save, the folder still holds epoch 1's checkpoint intact, and the run
    resumes from it bitwise; a staged checkpoint the kill left behind is removed with the others at the end."""
    folder = tmp_path / "run"
    kill_before_rename(monkeypatch, onto, nth=3)  # saves at epochs 0, 1, 2, 3: the third is epoch 2's
    with pytest.raises(Killed):
        run(spec_for(*DIGITS), folder)
    assert RunFolder(folder).state == "failed"
    assert checkpoint.load(RunFolder(folder))["epoch"] == 1
    assert (folder / checkpoint.STAGED).exists() == (onto != checkpoint.STAGED)

    summary = run(spec_for(*DIGITS), folder)
    status = RunFolder(folder).status()
    assert status["state"] == "completed" and status["resumed_from_epoch"] == 1
    assert_continues_exactly(folder, summary, unbroken)
