"""Checkpoints at epoch boundaries: a run killed anywhere and resumed logs bitwise what an unbroken run logs."""

from __future__ import annotations

import pytest
import torch
from jobs_support import Killed, Killer, numbers, spec_for

from jobs import checkpoint
from jobs.entry import run
from jobs.run_folder import CHECKPOINT, RunFolder

pytestmark = pytest.mark.slow  # trains many runs in-process

STEPS_PER_EPOCH = 1197 // 64
DIGITS = ("problem=digits_mlp", "problem.hidden=16", "problem.dropout=0.3", "train.epochs=4", "train.log_every=1")


@pytest.mark.parametrize("optimizer", [
    ("optimizer=momentum", "schedule=step", "optimizer.lr=0.1"),  # milestones at epochs 2 and 3
    ("optimizer=pal",),
    ("optimizer=pls",),  # draws fresh minibatches from the trainer's batch source
], ids=["momentum-step-schedule", "pal", "pls"])
def test_a_run_killed_after_any_epoch_and_mid_epoch_resumes_bitwise(tmp_path, monkeypatch, optimizer):
    spec = spec_for(*DIGITS, *optimizer)
    unbroken = run(spec, tmp_path / "unbroken")

    # After epoch 2's metrics line (resume from epoch 1's checkpoint and cut that line), mid-epoch 2
    # (cut the flushed step lines), after the final evaluation (the last epoch is trained again).
    killer = Killer(monkeypatch, ("eval", 2), ("step", 2 * STEPS_PER_EPOCH + 5), ("eval", 4))
    broken = tmp_path / "broken"
    resumed_from = []
    while killer.points:
        with pytest.raises(Killed):
            run(spec, broken)
        assert RunFolder(broken).state == "failed" and (broken / CHECKPOINT).is_file()
        resumed_from.append(checkpoint.load(RunFolder(broken))["epoch"])
    summary = run(spec, broken)

    assert resumed_from == [1, 2, 3]
    assert numbers(broken) == numbers(tmp_path / "unbroken")
    assert [m["epoch"] for m in numbers(broken)] == [0, 1, 2, 3, 4]
    assert (broken / "steps.jsonl").read_bytes() == (tmp_path / "unbroken" / "steps.jsonl").read_bytes()
    for key in ("state", "steps", "best", "forward_passes", "backward_passes"):
        assert summary[key] == unbroken[key], key
    assert summary["final"] == {**unbroken["final"], "time": summary["final"]["time"]}
    status = RunFolder(broken).status()
    assert status["state"] == "completed" and status["attempts"] == 4 and status["resumed_from_epoch"] == 3
    assert not (broken / CHECKPOINT).exists(), "a finished run keeps no checkpoint"
    assert not list(broken.glob("attempt-*")), "a resumed run continues its files, it does not set them aside"


def test_without_the_rng_states_the_resumed_run_would_differ(tmp_path, monkeypatch):
    """The test above can fail: dropout makes the continuation depend on the restored RNG state."""
    spec = spec_for(*DIGITS, "optimizer=momentum")
    run(spec, tmp_path / "unbroken")
    Killer(monkeypatch, ("eval", 2))
    with pytest.raises(Killed):
        run(spec, tmp_path / "broken")
    monkeypatch.setattr(checkpoint, "restore_rng", lambda state: torch.manual_seed(0))
    run(spec, tmp_path / "broken")
    assert numbers(tmp_path / "broken")[:2] == numbers(tmp_path / "unbroken")[:2]
    assert numbers(tmp_path / "broken")[2:] != numbers(tmp_path / "unbroken")[2:]


def test_a_checkpoint_of_another_run_or_of_a_finished_run_is_not_resumed(tmp_path, monkeypatch):
    spec = spec_for(*DIGITS[:-2], "train.epochs=2")
    other = dict(spec, seed=spec["seed"] + 1)
    Killer(monkeypatch, ("eval", 2))
    with pytest.raises(Killed):
        run(other, tmp_path / "other")
    # Another run's folder, checkpoint and logs consistent with each other, under this run's name.
    folder = RunFolder((tmp_path / "other").rename(tmp_path / "run"))
    assert checkpoint.load(folder)["run_id"] == "other"

    run(spec, folder.root)
    assert folder.status()["resumed_from_epoch"] is None
    first = numbers(folder.root)
    assert [m["epoch"] for m in first] == [0, 1, 2]
    (set_aside,) = folder.root.glob("attempt-*")
    assert [m["epoch"] for m in RunFolder(folder.root).metrics()] == [0, 1, 2]
    assert len(list(set_aside.glob("metrics.jsonl"))) == 1

    # A completed run launched again (a rerun) starts afresh, too.
    run(spec, folder.root)
    assert len(list(folder.root.glob("attempt-*"))) == 2 and numbers(folder.root) == first
    assert folder.status()["resumed_from_epoch"] is None and folder.status()["attempts"] == 3


def test_logs_shorter_than_the_checkpoint_says_mean_a_fresh_start(tmp_path, monkeypatch):
    spec = spec_for(*DIGITS[:-2], "train.epochs=3")
    Killer(monkeypatch, ("eval", 2))
    with pytest.raises(Killed):
        run(spec, tmp_path / "run")
    (tmp_path / "run" / "metrics.jsonl").unlink()  # lost: the checkpoint cannot continue it
    run(spec, tmp_path / "run")
    assert RunFolder(tmp_path / "run").status()["resumed_from_epoch"] is None
    assert [m["epoch"] for m in numbers(tmp_path / "run")] == [0, 1, 2, 3]
