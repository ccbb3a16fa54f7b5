"""Every registered optimizer: forward/backward passes per step as its docstring states, and a run in the trainer.

Curvature methods take their gradient from the closure's graph (one forward and one backward pass, as the
trainer counts them) and report their curvature products in their diagnostics.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml
from optim_support import LeastSquares, RecordingSink

from jobs.optim.protocol import has_eval_point
from jobs.optim.registry import OPTIMIZERS, build_optimizer
from jobs.train import train
from orchestrator.sweep import expand

CONF = Path(__file__).resolve().parents[2] / "conf" / "optimizer"
YAMLS = sorted(CONF.glob("*.yaml"))


def name_of(path: Path) -> str:
    return yaml.safe_load(path.read_text())["name"]


#: Methods built from a model (Muon) are left out: a least-squares vector has no layers (tests/optim/test_muon.py).
FIRST_ORDER = [path for path in YAMLS
               if not OPTIMIZERS.entry(name_of(path)).curvature and not OPTIMIZERS.entry(name_of(path)).takes_model]
CURVATURE = [path for path in YAMLS if OPTIMIZERS.entry(name_of(path)).curvature]


def stated_cost(config: dict, optimizer) -> tuple[int, int]:
    """(forward, backward) passes of the last step, from each method's documented cost."""
    name, d = config["name"], getattr(optimizer, "diagnostics", {})
    if name == "pal":
        return 2, 1
    if name == "sls":
        return 2 + d["backtracks"], 1
    if name == "gols_i":
        assert d["evaluations"] >= 2
        return d["evaluations"], d["evaluations"]
    if name == "pls":
        passes = 1 + config["noise_batches"] + len(optimizer.last_search.t) - 1
        return passes, passes
    if name == "labpal":  # the authors' code (estimator=code) measures the direction's batch on the line too
        direction = (3, 1) if config["estimator"] == "code" else (1, 1)
        return {0: direction, 1: (3, 0), 2: (1, 1)}[d["phase"]]
    return 1, 1  # torch.optim methods, SGD-HD, ALI-G, COCOB


@pytest.mark.parametrize("path", FIRST_ORDER, ids=lambda p: p.stem)
def test_passes_per_step_match_the_stated_cost(path):
    config = OPTIMIZERS.validate(yaml.safe_load(path.read_text()))
    if config["name"] == "labpal":  # short phases, so that six steps see all three
        config.update(sgd_steps=2, approximation_batches=2)
    problem = LeastSquares(seed=3)
    optimizer = build_optimizer(config, [problem.w])
    if hasattr(optimizer, "set_batch_source"):
        optimizer.set_batch_source(problem.source)
    if has_eval_point(optimizer):  # Schedule-Free: steps are taken in train mode (at y)
        optimizer.train()
    for _ in range(6):
        before = (problem.passes.forward, problem.passes.backward)
        loss = optimizer.step(problem.closure(problem.draw()))
        counted = (problem.passes.forward - before[0], problem.passes.backward - before[1])
        assert counted == stated_cost(config, optimizer)
        assert math.isfinite(loss.item())
        if hasattr(optimizer, "diagnostics"):
            assert optimizer.diagnostics["evaluations"] == counted[0]
            assert math.isfinite(optimizer.diagnostics["effective_lr"])


@pytest.mark.parametrize("path", YAMLS, ids=lambda p: p.stem)
def test_trains_in_the_job_trainer(path):
    overrides = ["problem=quadratic_deep", f"optimizer={path.stem}", "train.epochs=2", "train.log_every=1"]
    name = name_of(path)
    if OPTIMIZERS.entry(name).curvature:  # some need a classifier's likelihood
        # the preconditioners hold still for their first estimate's 14 steps: give them 36
        batch_size = 64 if name in ("preconditioned_sgd", "adaptive_sgd") else 256
        overrides = ["problem=digits_cnn", f"train.batch_size={batch_size}", *overrides[1:]]
    if name == "labpal":
        overrides += ["optimizer.sgd_steps=3", "optimizer.approximation_batches=2"]
    if name == "sgd_hd":  # gradients of ~200 make the default hypergradient step diverge (a real property)
        overrides += ["optimizer.hypergrad_lr=1e-7"]
    if name == "schedulefree_sgd":  # the package's lr=1 diverges on quadratic_deep's curvature, as SGD's would
        overrides += ["optimizer.lr=0.01"]
    (run,) = expand(overrides).runs
    sink = RecordingSink()
    summary = train(run.spec, sink)
    assert summary["state"] == "completed"
    assert sink.evals[-1]["train_loss"] < sink.evals[0]["train_loss"]
    assert len(sink.steps) == summary["steps"] and all(math.isfinite(s["effective_lr"]) for s in sink.steps)
    assert summary["forward_passes"] >= summary["steps"]


@pytest.mark.parametrize("path", CURVATURE, ids=lambda p: p.stem)
def test_curvature_methods_take_one_gradient_per_step(path):
    overrides = ["problem=digits_cnn", f"optimizer={path.stem}", "train.epochs=1", "train.batch_size=256",
                 "train.log_every=1"]
    (run,) = expand(overrides).runs
    sink = RecordingSink()
    summary = train(run.spec, sink)
    assert summary["backward_passes"] == summary["steps"] == 1197 // 256
    extra = sum(step["evaluations"] - 1 for step in sink.steps)
    assert summary["forward_passes"] == summary["steps"] + extra, "closure evaluations beyond the graph's"
