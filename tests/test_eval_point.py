"""The evaluation-point protocol in the trainer: Schedule-Free trains at y, is evaluated, measured and saved at x."""

from __future__ import annotations

import itertools

import pytest
import schedulefree
import torch
from torch import nn

from jobs.batch_norm import recompute_batch_norm
from jobs.measure.context import Context
from jobs.measure.update_line import update_direction
from jobs.optim.registry import build_optimizer
from jobs.problems.digits import DigitsClassification
from jobs.schedules import SCHEDULES, lr_lambda
from jobs.train import BATCH_NORM_BATCHES, BATCH_NORM_SEED_OFFSET, Trainer
from jobs.vectorized import can_vectorize
from jobs.vectorized_train import GroupTrainer
from orchestrator.sweep import expand


def spec_for(*overrides: str) -> dict:
    (only,) = expand(list(overrides)).runs
    return only.spec


class Records:
    def __init__(self, events: list | None = None):
        self.evals, self.events = [], events if events is not None else []

    def log_eval(self, record):
        self.evals.append(record)
        self.events.append("evaluate")

    def log_step(self, record):
        pass

    def log_measurement(self, record):
        pass

    def log_progress(self, record):
        pass


def batch_norm_mlp() -> nn.Sequential:
    return nn.Sequential(nn.Linear(64, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 10))


@pytest.fixture
def batch_norm_digits(monkeypatch):
    """digits_mlp specs train an MLP with BatchNorm (and dropout) instead."""

    def build(config, batch_size, device, dtype, data_dir=None):
        return DigitsClassification(batch_norm_mlp(), batch_size, device, dtype, weight_decay=0.0)

    monkeypatch.setattr("jobs.train.build_problem", build)


def test_the_trainer_evaluates_and_checkpoints_at_x_and_trains_at_y(monkeypatch):
    events = []
    for method in ("train", "eval"):
        original = getattr(schedulefree.SGDScheduleFree, method)

        def spy(optimizer, original=original, method=method):
            events.append(method)
            original(optimizer)

        monkeypatch.setattr(schedulefree.SGDScheduleFree, method, spy)
    spec = spec_for("problem=rosenbrock", "problem.steps_per_epoch=3", "train.epochs=2", "optimizer=schedulefree_sgd",
                    "optimizer.lr=0.0001")
    modes = []

    def save(state):
        events.append("checkpoint")
        modes.append(state["optimizer"]["param_groups"][0]["train_mode"])

    Trainer(spec, Records(events)).run(save=save)
    boundary = ["eval", "evaluate", "checkpoint", "train"]
    assert events == [*boundary, *boundary, "eval", "evaluate"]
    assert modes == [False, False]  # the checkpoints hold x


def rosenbrock_gradient(a: float, b: float) -> tuple[float, float]:
    return -2 * (1 - a) - 400 * a * (b - a * a), 200 * (b - a * a)


def rosenbrock(a: float, b: float) -> float:
    return (1 - a) ** 2 + 100 * (b - a * a) ** 2


def test_the_evaluated_loss_is_the_loss_at_x():
    spec = spec_for("problem=rosenbrock", "problem.steps_per_epoch=3", "train.epochs=2", "precision=float64",
                    "optimizer=schedulefree_sgd", "optimizer.lr=0.0002", "optimizer.momentum=0.8",
                    "schedule=constant", "schedule.warmup=0.5")
    records = Records()
    Trainer(spec, records).run()

    # Schedule-Free SGD by hand: gamma_t = 0.0002 * (0, 1/3, 2/3, 1, 1, 1), c = gamma_t^2 / sum of gamma_i^2
    factor = lr_lambda(SCHEDULES.validate(spec["schedule"]), 6)
    beta, x, z, y = 0.8, (-1.2, 1.0), (-1.2, 1.0), (-1.2, 1.0)
    weight_sum, at_x, at_y = 0.0, [rosenbrock(*x)], [rosenbrock(*y)]
    for t in range(6):
        gamma = 0.0002 * factor(t)
        z = tuple(zi - gamma * gi for zi, gi in zip(z, rosenbrock_gradient(*y), strict=True))
        weight_sum += gamma**2
        c = gamma**2 / weight_sum if weight_sum else 0.0
        x = tuple((1 - c) * xi + c * zi for xi, zi in zip(x, z, strict=True))
        y = tuple((1 - beta) * zi + beta * xi for xi, zi in zip(x, z, strict=True))
        if t % 3 == 2:
            at_x.append(rosenbrock(*x))
            at_y.append(rosenbrock(*y))
    losses = [record["train_loss"] for record in records.evals]
    assert losses == pytest.approx(at_x, rel=1e-10)
    assert losses[1:] != pytest.approx(at_y[1:], rel=1e-4)  # y is somewhere else


def test_batch_norm_statistics_are_recomputed_at_x():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3, momentum=0.3), nn.ReLU(), nn.Flatten(),
                          nn.Linear(3 * 4 * 4, 2)).double()
    optimizer = build_optimizer({"name": "schedulefree_adamw", "lr": 0.05, "betas": [0.9, 0.999], "eps": 1e-8,
                                 "weight_decay": 0.0, "r": 0.0, "weight_lr_power": 2.0}, model.parameters())
    batches = [torch.randn(8, 1, 6, 6, dtype=torch.float64) + i for i in range(3)]
    targets = torch.tensor([0, 1] * 4)

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(batches[0]), targets)
        loss.backward()
        return loss

    optimizer.train()
    for _ in range(5):
        optimizer.step(closure)

    def statistics() -> tuple[torch.Tensor, torch.Tensor]:
        """Each channel's mean and unbiased variance of the convolution's outputs, averaged over the batches."""
        with torch.no_grad():
            outputs = [model[0](batch).transpose(0, 1).flatten(1) for batch in batches]
        return (torch.stack([o.mean(1) for o in outputs]).mean(0), torch.stack([o.var(1) for o in outputs]).mean(0))

    at_y = statistics()
    optimizer.eval()
    at_x = statistics()
    model.eval()
    recompute_batch_norm(model, model, batches)
    layer = model[1]
    assert torch.allclose(layer.running_mean, at_x[0], rtol=1e-12)
    assert torch.allclose(layer.running_var, at_x[1], rtol=1e-12)
    assert not torch.allclose(at_x[0], at_y[0], rtol=1e-3)  # the test can tell x's statistics from y's
    assert layer.momentum == 0.3 and not model.training


def test_the_trainer_recomputes_batch_norm_at_x_from_its_own_batches(batch_norm_digits):
    spec = spec_for("problem=digits_mlp", "train.epochs=2", "precision=float64", "optimizer=schedulefree_adamw",
                    "optimizer.lr=0.01")
    records = Records()
    trainer = Trainer(spec, records)
    trainer.run()
    problem, layer = trainer.problem, trainer.problem.model[1]
    generator = torch.Generator().manual_seed(spec["seed"] + BATCH_NORM_SEED_OFFSET)
    with torch.no_grad():
        hidden = [problem.model[0](batch.inputs)
                  for batch in itertools.islice(problem.train_batches(generator), BATCH_NORM_BATCHES)]
    assert len(hidden) == problem.steps_per_epoch() < BATCH_NORM_BATCHES  # an epoch is shorter: all of it
    assert torch.allclose(layer.running_mean, torch.stack([h.mean(0) for h in hidden]).mean(0), rtol=1e-12)
    assert torch.allclose(layer.running_var, torch.stack([h.var(0) for h in hidden]).mean(0), rtol=1e-12)
    # the last evaluation read those statistics at x
    assert records.evals[-1]["valid_loss"] == problem.evaluate("valid")["loss"]


def test_the_update_line_measures_the_update_of_x():
    weight = torch.tensor([1.0, -2.0], dtype=torch.float64, requires_grad=True)

    def closure(backward: bool = True) -> torch.Tensor:
        weight.grad = None
        loss = 0.5 * (weight**2).sum()
        if backward:
            loss.backward()
        return loss

    lr, beta = 0.1, 0.9
    optimizer = build_optimizer({"name": "schedulefree_sgd", "lr": lr, "momentum": beta, "weight_decay": 0.0,
                                 "r": 0.0, "weight_lr_power": 2.0}, [weight])
    optimizer.train()
    for _ in range(3):
        optimizer.step(closure)
    optimizer.eval()
    x, z = weight.detach().clone(), optimizer.state[weight]["z"].clone()
    # the fourth step by hand, from x and z: y = (1 - beta) z + beta x, gradient y, c = 1/4
    y = (1 - beta) * z + beta * x
    z_next = z - lr * y
    x_next = 0.75 * x + 0.25 * z_next
    direction = update_direction(Context([weight], closure, optimizer))
    assert torch.allclose(direction, x_next - x, rtol=1e-12)
    assert torch.equal(weight.detach(), x) and torch.equal(optimizer.state[weight]["z"], z)
    assert optimizer.param_groups[0]["train_mode"] is False and optimizer.param_groups[0]["k"] == 3


def test_schedule_free_runs_alone_when_vectorised(optbench, results):
    spec = spec_for("problem=digits_mlp", "optimizer=schedulefree_adamw")
    reason = "optimizer schedulefree_adamw: no stacked update is written for it (only for sgd, adam, adamw)"
    assert can_vectorize([spec]) == reason
    status, out, err = optbench("launch", "problem=digits_mlp", "optimizer=schedulefree_sgd,schedulefree_adamw",
                                "seed=0,1", "launcher.vectorize=4", "--dry-run", "--results", results)
    assert status == 0, err
    text = " ".join(out.split())
    assert "0 runs would train in 0 groups, 4 alone." in text
    assert f"Alone: {reason}" in text


def test_a_vectorised_group_trains_wsd_as_its_run_alone_does():
    specs = [spec_for("problem=digits_mlp", "problem.hidden=8", "problem.dropout=0", "train.epochs=2",
                      "optimizer=momentum", f"seed={seed}", *schedule)
             for seed, schedule in enumerate([("schedule=wsd", "schedule.shape=linear"), ("schedule=wsd",)])]
    assert can_vectorize(specs) is None
    sinks = [Records() for _ in specs]
    GroupTrainer(specs, sinks).run()
    for spec, sink in zip(specs, sinks, strict=True):
        alone = Records()
        Trainer(spec, alone).run()
        assert [{k: v for k, v in r.items() if k != "time"} for r in sink.evals] == [
            {k: v for k, v in r.items() if k != "time"} for r in alone.evals]
    assert sinks[0].evals[-1]["lr"] != sinks[1].evals[-1]["lr"]  # linear and 1-sqrt decays differ
