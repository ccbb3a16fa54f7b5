"""Plugins through the real trainer, checked against the update rules worked by hand."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from jobs.problems.build import build_problem
from jobs.spec import validate_spec
from jobs.train import seed_everything, train

TOYS = Path(__file__).resolve().parent / "toys"
TRAIN = {"epochs": 3, "batch_size": 1, "eval_every": 1, "log_every": 1, "clip_grad_norm": None}


class Recorder:
    def __init__(self):
        self.evals, self.steps = [], []

    def log_eval(self, record):
        self.evals.append({k: v for k, v in record.items() if k != "time"})

    def log_step(self, record):
        self.steps.append(record)

    def log_measurement(self, record):
        pass

    def log_progress(self, record):
        pass


def spec(optimizer: dict, problem: dict, **train) -> dict:
    return validate_spec({"problem": problem, "optimizer": optimizer, "schedule": {"name": "constant"},
                          "train": {**TRAIN, **train}, "seed": 3, "device": "cpu", "precision": "float64"})


@pytest.fixture
def toys(monkeypatch):
    """The toy package's source on the path (the installed-package tests are in test_plugins_installed.py)."""
    monkeypatch.syspath_prepend(str(TOYS))


DIGITS = {"name": "digits_mlp", "hidden": 16, "layers": 1, "dropout": 0.0, "weight_decay": 0.0}


def test_a_step_without_a_closure_trains_bitwise_like_torch_sgd():
    """PlainSGD.step() takes no closure: the trainer computes the gradient first, which is what SGD sees."""
    plain, builtin = Recorder(), Recorder()
    train(spec({"name": "plain", "target": "plugin_classes:PlainSGD", "lr": 0.05}, DIGITS, batch_size=32, epochs=2),
          plain)
    train(spec({"name": "sgd", "lr": 0.05, "momentum": 0.0, "dampening": 0.0, "nesterov": False,
                "weight_decay": 0.0}, DIGITS, batch_size=32, epochs=2), builtin)
    assert plain.evals == builtin.evals and len(plain.evals) == 3
    assert plain.evals[-1]["train_loss"] < plain.evals[0]["train_loss"]
    assert [s["loss"] for s in plain.steps] == [s["loss"] for s in builtin.steps]


def test_signsgd_follows_its_update_rule_on_a_quadratic_worked_by_hand(toys):
    """f(θ) = ½ Σ λ_i θ_i², θ₀ = 1: signSGD moves every coordinate by lr against the sign of θ_i."""
    problem = {"name": "quadratic", "dim": 3, "condition_number": 4.0, "rotate": False, "steps_per_epoch": 2}
    recorder = Recorder()
    summary = train(spec({"name": "signsgd", "target": "optbench_toys.signsgd:SignSGD", "lr": 0.3}, problem),
                    recorder)
    eigenvalues = [0.25, 0.5, 1.0]  # geometric from 1/κ to 1
    theta, expected = [1.0, 1.0, 1.0], []
    for step in range(6):
        if step % 2 == 0:
            expected.append(0.5 * sum(lam * t * t for lam, t in zip(eigenvalues, theta, strict=True)))
        theta = [t - 0.3 * math.copysign(1.0, t) if t != 0 else t for t in theta]
    expected.append(0.5 * sum(lam * t * t for lam, t in zip(eigenvalues, theta, strict=True)))
    assert [e["train_loss"] for e in recorder.evals] == pytest.approx(expected, rel=1e-12)
    assert summary["steps"] == 6 and summary["state"] == "completed"
    # its own diagnostics reach steps.jsonl: θ goes 1, .7, .4, .1, -.2, .1, so the gradient's signs flip at
    # the 5th and 6th steps
    assert [s["flipped"] for s in recorder.steps] == [0.0, 0.0, 0.0, 0.0, 1.0, 1.0]
    assert all(s["effective_lr"] == 0.3 for s in recorder.steps)  # the trainer's, beside the plugin's own


def test_a_problem_plugin_gets_the_trainers_settings_by_name_and_its_loss_is_least_squares(toys):
    from optbench_toys.regression import DATA_SEED

    config = validate_spec({"problem": {"name": "toy", "target": "optbench_toys.regression:LinearRegression",
                                        "dim": 4, "examples": 64},
                            "optimizer": {"name": "sgd", "lr": 0.1, "momentum": 0.0, "dampening": 0.0,
                                          "nesterov": False, "weight_decay": 0.0},
                            "schedule": {"name": "constant"}, "train": {**TRAIN, "batch_size": 16},
                            "seed": 0, "device": "cpu", "precision": "float64"})["problem"]
    assert config["noise"] == 0.1 and config["dim"] == 4  # the constructor's default fills what the config omits
    seed_everything(0)
    problem = build_problem(config, 16, torch.device("cpu"), torch.float64)
    assert problem.steps_per_epoch() == 4 and problem.model.weight.dtype == torch.float64
    generator = torch.Generator().manual_seed(DATA_SEED)
    truth = torch.randn(4, 1, generator=generator, dtype=torch.float64)
    inputs = torch.randn(64, 4, generator=generator, dtype=torch.float64)
    targets = inputs @ truth + 0.1 * torch.randn(64, 1, generator=generator, dtype=torch.float64)
    by_hand = 0.5 * ((inputs @ problem.model.weight.detach().T - targets) ** 2).sum(dim=1).mean()
    assert problem.evaluate("train")["loss"] == pytest.approx(float(by_hand), rel=1e-12)
