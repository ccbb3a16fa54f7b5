"""The trainer's closure offers what curvature methods need; specs refuse methods a problem cannot serve."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from jobs.curvature import curvature_operator
from jobs.distributed import ALONE, World
from jobs.problems.digits import DigitsCNN
from jobs.problems.functions import Rosenbrock
from jobs.schema import SpecError
from jobs.spec import validate_spec
from jobs.train import MinibatchClosure, PassCounts
from orchestrator.errors import UserError
from orchestrator.sweep import expand

CPU, F64 = torch.device("cpu"), torch.float64


def digits_closure(counts: PassCounts, world: World = ALONE) -> tuple[DigitsCNN, MinibatchClosure]:
    torch.manual_seed(0)
    problem = DigitsCNN(32, CPU, F64, weight_decay=0.01)
    batch = next(problem.train_batches(torch.Generator().manual_seed(0)))
    return problem, MinibatchClosure(problem, batch, counts, clip_grad_norm=None, world=world)


def test_the_digits_cnn_is_the_thesis_network_on_8x8_inputs():
    problem, _ = digits_closure(PassCounts())
    shapes = [tuple(p.shape) for p in problem.model.parameters()]
    assert shapes == [(1, 1, 4, 4), (4, 64), (10, 4)]
    assert sum(p.numel() for p in problem.model.parameters()) == 16 + 256 + 40 == 312


def test_closure_curvature_methods_evaluate_the_same_objective():
    counts = PassCounts()
    problem, closure = digits_closure(counts)
    loss = closure().detach()
    graph_loss = closure.loss_with_graph()
    output = closure.model_output()
    assert graph_loss.requires_grad and output.outputs.requires_grad
    assert graph_loss.item() == loss.item() == output.loss().item()
    manual = F.cross_entropy(output.outputs, output.targets) + 0.5 * 0.01 * sum(
        w.pow(2).sum() for w in problem.model.parameters())
    assert output.loss().item() == pytest.approx(manual.item(), rel=1e-14)
    assert (counts.forward, counts.backward) == (3, 3), "a forward pass and the gradient's backward each"


def test_closure_gradient_agrees_with_the_operators_gradient():
    problem, closure = digits_closure(PassCounts())
    closure()
    gradient = torch.cat([p.grad.reshape(-1) for p in problem.model.parameters()])
    params = list(problem.model.parameters())
    for kind in ("hessian", "ggn", "fisher"):
        operator = curvature_operator(closure, params, kind)
        assert torch.allclose(operator.gradient, gradient, rtol=1e-12, atol=1e-15), kind


def test_problems_without_outputs_and_distributed_runs_are_refused_clearly():
    problem = Rosenbrock(1, CPU, F64, start=(0.0, 0.0), steps_per_epoch=1)
    closure = MinibatchClosure(problem, None, PassCounts(), clip_grad_norm=None)
    assert closure.loss_with_graph().requires_grad  # Hessian products work on any problem
    with pytest.raises(ValueError, match="Rosenbrock has no network outputs"):
        closure.model_output()
    _, shared = digits_closure(PassCounts(), world=World(rank=0, size=2))
    with pytest.raises(ValueError, match="not averaged over ranks"):
        shared.loss_with_graph()


def spec(*overrides: str) -> dict:
    (only,) = expand(list(overrides)).runs
    return only.spec


def test_methods_that_need_a_likelihood_are_refused_on_problems_without_one():
    assert spec("problem=quadratic_deep", "optimizer=newton_cg")["optimizer"]["curvature"] == "hessian"
    with pytest.raises(UserError) as error:
        spec("problem=quadratic_deep", "optimizer=newton_cg", "optimizer.curvature=ggn")
    message = str(error.value)
    assert "'quadratic_deep' is no classifier" in message and "optimizer.curvature=hessian" in message
    assert message.endswith(".") and message.count(". ") == 0
    config = {**spec("problem=digits_cnn", "optimizer=newton_cg"), "problem": {"name": "rosenbrock",
                                                                               "start": [0.0, 0.0],
                                                                               "steps_per_epoch": 1}}
    config["optimizer"] = {**config["optimizer"], "curvature": "ggn"}
    with pytest.raises(SpecError, match="'rosenbrock' is no classifier"):
        validate_spec(config)


def test_curvature_methods_refuse_gradient_clipping_they_would_not_apply():
    with pytest.raises(UserError, match=r"train.clip_grad_norm does not clip; set train.clip_grad_norm=null\.$"):
        spec("problem=digits_cnn", "optimizer=kfac", "train.clip_grad_norm=1.0")
    assert spec("problem=digits_cnn", "optimizer=sgd", "train.clip_grad_norm=1.0")["train"]["clip_grad_norm"] == 1.0
