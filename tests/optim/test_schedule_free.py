"""Schedule-Free SGD and AdamW (the authors' package) against the paper's update rule, worked by hand.

Paper (Defazio et al. 2024): gradients at y_t = (1 - beta) z_t + beta x_t; z_{t+1} = z_t - gamma_t g_t;
x_{t+1} = (1 - c_{t+1}) x_t + c_{t+1} z_{t+1}, c_{t+1} = gamma_t^2 / sum_{i<=t} gamma_i^2. AdamW replaces g_t by
g_t / (sqrt(v_t / (1 - beta2^(t+1))) + eps) + lambda y_t, as the package has done since 1.3 (the paper's Algorithm 1
folds sqrt(1 - beta2^(t+1)) into gamma_t, its weights and the decay too; schedulefree.AdamWScheduleFreePaper).
Problem: f(w) = w^2 / 2 from w = 1, so the gradient at y is y.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import yaml

from jobs.optim.registry import OPTIMIZERS, build_optimizer
from jobs.schedules import SCHEDULES, lr_lambda
from jobs.schema import SpecError

CONF = Path(__file__).resolve().parents[2] / "conf" / "optimizer"


def half_square(weight: torch.Tensor):
    def closure(backward: bool = True) -> torch.Tensor:
        weight.grad = None
        loss = 0.5 * (weight**2).sum()
        if backward:
            loss.backward()
        return loss

    return closure


def trajectory(config: dict, steps: int, schedule: dict | None = None) -> list[tuple[float, float, float]]:
    """(y, z, x) after each step: y and z as the optimizer holds them in train mode, x after ``eval()``."""
    weight = torch.ones(1, dtype=torch.float64, requires_grad=True)
    optimizer = build_optimizer(OPTIMIZERS.validate(config), [weight])
    scheduler = None if schedule is None else torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_lambda(SCHEDULES.validate(schedule), steps))
    optimizer.train()
    points = []
    for _ in range(steps):
        optimizer.step(half_square(weight))
        if scheduler is not None:
            scheduler.step()
        y, z = weight.item(), optimizer.state[weight]["z"].item()
        optimizer.eval()
        x = weight.item()
        optimizer.train()
        assert weight.item() == pytest.approx(y, rel=1e-15)  # eval() and train() are inverses
        points.append((y, z, x))
    return points


SGD = {"name": "schedulefree_sgd", "lr": 0.5, "momentum": 0.5, "weight_decay": 0.0, "r": 0.0, "weight_lr_power": 2.0}


def test_sgd_without_warmup_averages_with_weights_one_over_t():
    # gamma = 0.5, beta = 0.5, so c_{t+1} = 1/(t+1); x_0 = y_0 = z_0 = 1
    # t=0: g = 1,      z = 1 - 0.5        = 0.5,     c = 1:   x = 0.5,                     y = (z + x)/2 = 0.5
    # t=1: g = 0.5,    z = 0.5 - 0.25     = 0.25,    c = 1/2: x = (0.5 + 0.25)/2 = 0.375,  y = 0.3125
    # t=2: g = 0.3125, z = 0.25 - 0.15625 = 0.09375, c = 1/3: x = 2/3 0.375 + 1/3 0.09375 = 0.28125, y = 0.1875
    want = [(0.5, 0.5, 0.5), (0.3125, 0.25, 0.375), (0.1875, 0.09375, 0.28125)]
    assert trajectory(SGD, 3) == [pytest.approx(point, rel=1e-15) for point in want]


def test_sgd_with_the_schedules_warmup_weights_the_average_by_squared_learning_rates():
    # schedule=constant, warmup 0.5 of 4 steps: gamma_t = 0.5 * (0, 0.5, 1, 1); weights gamma^2 = 0, 1/16, 1/4, 1/4
    # t=0: gamma = 0 moves nothing (c = 0/0, taken as 0)
    # t=1: gamma = 0.25, c = 1:                    z = 1 - 0.25 = 0.75,         x = 0.75, y = 0.75
    # t=2: gamma = 0.5,  c = (1/4)/(5/16) = 0.8:   z = 0.75 - 0.375 = 0.375,   x = 0.2 0.75 + 0.8 0.375 = 0.45,
    #                                              y = (0.375 + 0.45)/2 = 0.4125
    # t=3: gamma = 0.5,  c = (1/4)/(9/16) = 4/9:   z = 0.375 - 0.20625 = 0.16875, x = 5/9 0.45 + 4/9 0.16875 = 0.325,
    #                                              y = (0.16875 + 0.325)/2 = 0.246875
    got = trajectory(SGD, 4, {"name": "constant", "warmup": 0.5})
    want = [(1.0, 1.0, 1.0), (0.75, 0.75, 0.75), (0.4125, 0.375, 0.45), (0.246875, 0.16875, 0.325)]
    assert got == [pytest.approx(point, rel=1e-14) for point in want]


def test_adamw_preconditions_the_z_step_and_decays_at_y():
    config = {"name": "schedulefree_adamw", "lr": 0.5, "betas": [0.5, 0.5], "eps": 1e-12, "weight_decay": 0.1,
              "r": 0.0, "weight_lr_power": 2.0}
    gamma, beta1, beta2, decay = 0.5, 0.5, 0.5, 0.1
    # t=0: g = y = 1; v = (1 - beta2) g^2 = 0.5, debiased by 1 - beta2 = 0.5: 1; step g/1 + decay y = 1.1
    #      z = 1 - 0.5 1.1 = 0.45; c = 1: x = z; y = (1 - beta1) z + beta1 x = 0.45
    v1 = (1 - beta2) * 1.0
    z1 = x1 = y1 = 0.45
    # t=1: g = y1; v = beta2 v1 + (1 - beta2) g^2, debiased by 1 - beta2^2; c = 1/2
    v2 = beta2 * v1 + (1 - beta2) * y1**2
    z2 = z1 - gamma * (y1 / math.sqrt(v2 / (1 - beta2**2)) + decay * y1)
    x2 = (x1 + z2) / 2
    y2 = (1 - beta1) * z2 + beta1 * x2
    # t=2: c = 1/3
    v3 = beta2 * v2 + (1 - beta2) * y2**2
    z3 = z2 - gamma * (y2 / math.sqrt(v3 / (1 - beta2**3)) + decay * y2)
    x3 = 2 / 3 * x2 + z3 / 3
    y3 = (1 - beta1) * z3 + beta1 * x3
    got = trajectory(config, 3)
    assert got == [pytest.approx(point, rel=1e-11) for point in [(y1, z1, x1), (y2, z2, x2), (y3, z3, x3)]]


@pytest.mark.parametrize("name", ["schedulefree_sgd", "schedulefree_adamw"])
def test_the_yaml_holds_its_sources_defaults_and_runs_without_a_decay_schedule(name):
    config = yaml.safe_load((CONF / f"{name}.yaml").read_text())
    assert OPTIMIZERS.validate(config) == config
    assert "schedule=algoperf_constant" in (CONF / f"{name}.yaml").read_text()
    defaults = {  # schedulefree.SGDScheduleFree's own; AlgoPerf's Schedule-Free AdamW submission
        "schedulefree_sgd": {"lr": 1.0, "momentum": 0.9, "weight_decay": 0.0, "r": 0.0, "weight_lr_power": 2.0},
        "schedulefree_adamw": {"lr": 0.0025, "betas": [0.9, 0.9955159689799007], "eps": 1e-8,
                               "weight_decay": 0.08121616522670176, "r": 0.75, "weight_lr_power": 2.0},
    }
    assert config == {"name": name, **defaults[name]}


@pytest.mark.parametrize(("override", "sentence"), [
    ({"name": "schedulefree_sgd", "momentum": 0.0}, "optimizer.momentum must be in (0, 1) (got 0.0)."),
    ({"name": "schedulefree_sgd", "momentum": 1.0}, "optimizer.momentum must be in (0, 1) (got 1.0)."),
    ({"name": "schedulefree_adamw", "betas": [0.0, 0.999]},
     "optimizer.betas[0] must be > 0 for Schedule-Free, whose evaluation point x = (y - (1 - beta1) z) / beta1 "
     "divides by it (got 0.0)."),
])
def test_a_beta_the_evaluation_point_divides_by_is_refused_in_one_sentence(override, sentence):
    config = {**yaml.safe_load((CONF / f"{override['name']}.yaml").read_text()), **override}
    with pytest.raises(SpecError) as error:
        OPTIMIZERS.validate(config)
    assert str(error.value) == sentence
