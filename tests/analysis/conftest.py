"""Fixtures: synthetic sweeps on disk (see analysis_factory)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from analysis_factory import SweepBuilder, curve, make_spec


@pytest.fixture
def builder(tmp_path: Path) -> SweepBuilder:
    return SweepBuilder(tmp_path / "results")


@pytest.fixture
def demo_sweep(builder: SweepBuilder) -> SweepBuilder:
    """Two problems (one with accuracy); sgd at two learning rates and adam; 3 seeds; one diverged,
    one failed with a torn line, one running, one pending."""
    for problem, accuracy in (({"name": "quadratic_deep"}, False), ({"name": "digits_mlp", "hidden": 32}, True)):
        for optimizer in ({"name": "sgd", "lr": 0.1, "momentum": 0.0}, {"name": "sgd", "lr": 0.01, "momentum": 0.0},
                          {"name": "adam", "lr": 0.001, "beta1": 0.9}):
            for seed in range(3):
                spec = make_spec(problem, optimizer, seed)
                metrics = curve(4, rate=optimizer["lr"] * 5 + 0.1 * seed, accuracy=accuracy, lr=optimizer["lr"])
                builder.add(spec, "completed", metrics)
    lossy = make_spec({"name": "quadratic_deep"}, {"name": "sgd", "lr": 10.0, "momentum": 0.0}, 0)
    diverged = curve(3, lr=10.0)
    diverged[-1].update(train_loss=math.nan, valid_loss=math.nan, test_loss=math.inf)
    builder.add(lossy, "diverged", diverged)
    builder.add(make_spec({"name": "quadratic_deep"}, {"name": "sgd", "lr": 10.0, "momentum": 0.0}, 1), "failed",
                curve(2, lr=10.0), tail='{"epoch": 2, "step": 20, "train_lo',
                error="Traceback\n  ...\nRuntimeError: boom")
    builder.add(make_spec({"name": "quadratic_deep"}, {"name": "sgd", "lr": 10.0, "momentum": 0.0}, 2), "running",
                curve(1, lr=10.0))
    builder.add(make_spec({"name": "quadratic_deep"}, {"name": "sgd", "lr": 10.0, "momentum": 0.0}, 3), None)
    builder.write()
    return builder
