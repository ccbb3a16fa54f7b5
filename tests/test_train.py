"""The job's training loop: closure protocol, evaluation cadence, divergence, reproducibility."""

from __future__ import annotations

import math

import pytest
import torch

from jobs.entry import run
from jobs.problems.digits import DigitsMLP
from jobs.run_folder import RunFolder
from jobs.schedules import lr_lambda
from jobs.schema import SpecError
from jobs.train import MinibatchClosure, PassCounts
from orchestrator.sweep import expand


def spec_for(*overrides: str) -> dict:
    (only,) = expand(list(overrides)).runs
    return only.spec


def test_closure_replays_the_same_dropout_and_advances_rng_once():
    torch.manual_seed(0)
    problem = DigitsMLP(64, torch.device("cpu"), torch.float64, hidden=32, layers=1, dropout=0.5, weight_decay=0)
    batch = next(problem.train_batches(torch.Generator().manual_seed(0)))
    counts = PassCounts()
    start = torch.get_rng_state()
    closure = MinibatchClosure(problem, batch, counts, clip_grad_norm=None)
    first = closure().item()
    grad = problem.model[0].weight.grad.clone()
    second = closure(backward=False).item()
    third = closure().item()
    assert first == second == third
    assert torch.equal(grad, problem.model[0].weight.grad)
    assert (counts.forward, counts.backward) == (3, 2)
    after_three_calls = torch.get_rng_state()
    torch.set_rng_state(start)
    single = MinibatchClosure(problem, batch, PassCounts(), clip_grad_norm=None)
    single()
    assert torch.equal(torch.get_rng_state(), after_three_calls), "RNG must not depend on the number of calls"
    # without the replay, dropout draws differ between evaluations
    assert problem.batch_loss(batch).item() != first


def test_closure_clips_the_gradient_norm():
    problem = DigitsMLP(64, torch.device("cpu"), torch.float64, hidden=8, layers=1, dropout=0.0, weight_decay=0)
    batch = next(problem.train_batches(torch.Generator().manual_seed(0)))
    MinibatchClosure(problem, batch, PassCounts(), clip_grad_norm=1e-3)()
    norm = torch.linalg.vector_norm(torch.cat([p.grad.flatten() for p in problem.model.parameters()]))
    # torch divides by (norm + 1e-6), so the clipped norm is 1e-3 up to that epsilon
    assert norm.item() == pytest.approx(1e-3, rel=1e-5)


def test_step_schedule_divides_by_ten_at_half_and_three_quarters():
    factor = lr_lambda({"name": "step", "milestones": [0.5, 0.75], "factor": 0.1}, total_steps=100)
    assert [factor(t) for t in (0, 49, 50, 74, 75, 99)] == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01])
    cosine = lr_lambda({"name": "cosine", "final_factor": 0.0}, total_steps=10)
    assert cosine(0) == 1.0 and cosine(5) == pytest.approx(0.5) and cosine(10) == pytest.approx(0.0, abs=1e-12)


def test_evaluates_at_every_epoch_start_including_zero_and_the_end(tmp_path):
    spec = spec_for("problem=digits_mlp", "train.epochs=3", "problem.hidden=8")
    summary = run(spec, tmp_path / "run")
    metrics = RunFolder(tmp_path / "run").metrics()
    assert [m["epoch"] for m in metrics] == [0, 1, 2, 3]
    steps_per_epoch = 1197 // 64
    assert [m["step"] for m in metrics] == [0, steps_per_epoch, 2 * steps_per_epoch, 3 * steps_per_epoch]
    assert summary["state"] == "completed" and summary["steps"] == 3 * steps_per_epoch
    assert {"train_loss", "valid_accuracy", "test_accuracy", "lr"} <= set(metrics[-1])
    assert metrics[-1]["forward_passes"] == metrics[-1]["backward_passes"] == 3 * steps_per_epoch
    assert RunFolder(tmp_path / "run").state == "completed"


def test_eval_every_n_epochs_still_evaluates_the_end(tmp_path):
    spec = spec_for("problem=rosenbrock", "train.epochs=5", "train.eval_every=2", "problem.steps_per_epoch=3",
                    "optimizer.lr=0.0001")
    run(spec, tmp_path / "run")
    assert [m["epoch"] for m in RunFolder(tmp_path / "run").metrics()] == [0, 2, 4, 5]


def test_nan_loss_ends_the_run_as_diverged_not_as_a_crash(tmp_path):
    spec = spec_for("problem=rosenbrock", "optimizer.lr=10", "train.epochs=5")
    summary = run(spec, tmp_path / "run")
    folder = RunFolder(tmp_path / "run")
    assert summary["state"] == folder.state == "diverged"
    assert summary["diverged_at"]["step"] < 5 * 100
    assert folder.summary()["state"] == "diverged"


def test_failure_marks_the_run_failed_and_raises(tmp_path):
    spec = spec_for("train.epochs=1")
    spec["problem"]["name"] = "no_such_problem"  # bypasses validation on purpose
    with pytest.raises(SpecError, match="no_such_problem"):
        run(spec, tmp_path / "run")
    status = RunFolder(tmp_path / "run").status()
    assert status["state"] == "failed" and "no_such_problem" in status["error"]


@pytest.mark.parametrize("overrides", [
    ("problem=digits_mlp", "train.epochs=2", "problem.dropout=0.3"),
    ("problem=quadratic_deep", "train.epochs=3", "optimizer=adam"),
])
def test_same_spec_and_seed_give_bitwise_identical_metrics(tmp_path, overrides):
    spec = spec_for(*overrides)
    run(spec, tmp_path / "a")
    run(spec, tmp_path / "b")

    def numbers(folder):
        return [{k: v for k, v in m.items() if k != "time"} for m in RunFolder(folder).metrics()]

    a, b = numbers(tmp_path / "a"), numbers(tmp_path / "b")
    assert a == b and len(a) > 1
    assert all(math.isfinite(m["train_loss"]) for m in a)
    other_seed = dict(spec, seed=spec["seed"] + 1)
    run(other_seed, tmp_path / "c")
    assert numbers(tmp_path / "c") != a
