"""Schedule-Free checkpoints hold x: a run stopped, killed and resumed logs bitwise what an unbroken run logs."""

from __future__ import annotations

import pytest
from jobs_support import Killed, Killer, numbers, spec_for
from torch import nn

from jobs import checkpoint
from jobs.entry import run
from jobs.problems.digits import DigitsClassification
from jobs.run_folder import RunFolder

STEPS_PER_EPOCH = 1197 // 64


@pytest.fixture(autouse=True)
def batch_norm_and_dropout(monkeypatch):
    """digits_mlp with BatchNorm (recomputed at x at every evaluation) and dropout (the global random stream)."""

    def build(config, batch_size, device, dtype, data_dir=None):
        model = nn.Sequential(nn.Linear(64, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 10))
        return DigitsClassification(model, batch_size, device, dtype, weight_decay=0.0)

    monkeypatch.setattr("jobs.train.build_problem", build)


def test_a_schedule_free_run_stopped_killed_and_resumed_is_bitwise_the_unbroken_run(tmp_path, monkeypatch):
    spec = spec_for("problem=digits_mlp", "train.epochs=3", "train.log_every=1", "optimizer=schedulefree_adamw",
                    "optimizer.lr=0.01", "schedule=algoperf_constant")
    unbroken = run(spec, tmp_path / "unbroken")

    broken = tmp_path / "broken"
    assert run(spec, broken, budget={"rung": 0, "epochs": 1})["state"] == "stopped"
    state = checkpoint.load(RunFolder(broken))
    assert state["epoch"] == 1 and not state["optimizer"]["param_groups"][0]["train_mode"]  # saved at x
    # killed after epoch 2's metrics line (resumes from epoch 1), then mid-epoch 2 (resumes from epoch 2)
    killer = Killer(monkeypatch, ("eval", 2), ("step", 2 * STEPS_PER_EPOCH + 5))
    while killer.points:
        with pytest.raises(Killed):
            run(spec, broken)
    summary = run(spec, broken)

    assert numbers(broken) == numbers(tmp_path / "unbroken")
    assert [m["epoch"] for m in numbers(broken)] == [0, 1, 2, 3]
    assert (broken / "steps.jsonl").read_bytes() == (tmp_path / "unbroken" / "steps.jsonl").read_bytes()
    assert summary["final"] == {**unbroken["final"], "time": summary["final"]["time"]}
    assert RunFolder(broken).status()["resumed_from_epoch"] == 2


def test_without_the_switch_back_to_y_the_resumed_run_would_differ(tmp_path, monkeypatch):
    """The test above can fail: a checkpoint's x taken for y continues elsewhere."""
    spec = spec_for("problem=digits_mlp", "train.epochs=2", "optimizer=schedulefree_adamw", "optimizer.lr=0.01")
    run(spec, tmp_path / "unbroken")
    run(spec, tmp_path / "broken", budget={"rung": 0, "epochs": 1})
    load = checkpoint.resume

    def as_if_saved_at_y(folder):
        state = load(folder)
        for group in state["optimizer"]["param_groups"]:
            group["train_mode"] = True  # train() then leaves x where it is
        return state

    monkeypatch.setattr(checkpoint, "resume", as_if_saved_at_y)
    run(spec, tmp_path / "broken")
    assert numbers(tmp_path / "broken")[:2] == numbers(tmp_path / "unbroken")[:2]
    assert numbers(tmp_path / "broken")[2:] != numbers(tmp_path / "unbroken")[2:]
