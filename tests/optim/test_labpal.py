"""LABPAL: its line estimate against the exact minimiser along the line, its phases, costs and schedule."""

from __future__ import annotations

import copy
import logging

import numpy as np
import pytest
import torch
from optim_support import LeastSquares, Passes, flat, make_closure, quadratic, spd_matrix

from jobs.optim import LABPAL
from jobs.optim.labpal import DIRECTION, MEASURE, TRAIN

Q = spd_matrix(5, 30.0, seed=3)
X0 = 0.3 * np.array([1.0, -1.0, 2.0, 0.5, -1.5])


def exact_step(x: np.ndarray) -> float:
    """argmin_s f(x + s u) for u = -g / ||g||, f = x^T Q x / 2."""
    g = Q @ x
    u = -g / np.linalg.norm(g)
    return float(-(g @ u) / (u @ Q @ u))


@pytest.mark.parametrize("variant", ["sgd", "nsgd"])
def test_line_estimate_on_a_quadratic_is_the_exact_minimiser(variant):
    alpha, measured = 1.8, 3
    x = torch.tensor(X0, requires_grad=True)
    opt = LABPAL([x], variant=variant, alpha=alpha, approximation_batches=measured, sgd_steps=2, s_max=100.0)
    closure = make_closure([x], quadratic(Q, [x]))
    phases = []
    for _ in range(1 + measured):  # one direction step, then the measuring steps: theta must not move
        opt.step(closure)
        phases.append(opt.diagnostics["phase"])
        np.testing.assert_array_equal(flat([x]), X0)
    assert phases == [DIRECTION] + [MEASURE] * measured
    s_min = exact_step(X0)
    assert opt.diagnostics["s_min"] == pytest.approx(s_min, rel=1e-7)
    g = Q @ X0
    lr = alpha * s_min / np.linalg.norm(g)
    assert opt.diagnostics["estimate"] == pytest.approx(lr if variant == "sgd" else alpha * s_min, rel=1e-7)

    x1 = X0 - lr * g  # sgd: the learning rate on the gradient; nsgd: the step along the unit gradient
    g1 = Q @ x1
    x2 = x1 - (lr * g1 if variant == "sgd" else alpha * s_min * g1 / np.linalg.norm(g1))
    for expected in (x1, x2):
        opt.step(closure)
        assert opt.diagnostics["phase"] == TRAIN
        np.testing.assert_allclose(flat([x]), expected, rtol=1e-6)
    opt.step(closure)  # sgd_steps done: a new line search from x2
    assert opt.diagnostics["phase"] == DIRECTION


def test_estimate_is_the_minimiser_of_the_mean_of_the_measured_batches():
    problem = LeastSquares(dim=4, batch=8, noise=1.0, seed=9)
    batches = [problem.draw() for _ in range(6)]
    opt = LABPAL([problem.w], approximation_batches=5, s_max=100.0, alpha=1.0)
    for batch in batches:
        opt.step(problem.closure(batch))
    w0 = np.zeros(4)
    g = problem.gradient(batches[0], w0)  # the direction-defining batch is not measured
    u = -g / np.linalg.norm(g)
    measured = batches[1:]
    mean_gradient = np.mean([problem.gradient(b, w0) for b in measured], axis=0)
    mean_hessian = np.mean([problem.hessian(b) for b in measured], axis=0)
    s_min = -(mean_gradient @ u) / (u @ mean_hessian @ u)
    assert opt.diagnostics["s_min"] == pytest.approx(s_min, rel=1e-6)
    assert opt.diagnostics["estimate"] == pytest.approx(s_min / np.linalg.norm(g), rel=1e-6)


def test_momentum_in_the_training_phase():
    beta = 0.5
    x = torch.tensor(X0, requires_grad=True)
    opt = LABPAL([x], momentum=beta, approximation_batches=1, sgd_steps=10, s_max=100.0)
    closure = make_closure([x], quadratic(Q, [x]))
    for _ in range(2):
        opt.step(closure)
    lr = opt.diagnostics["estimate"]
    xs, v = X0.copy(), np.zeros(5)
    for _ in range(3):
        v = beta * v + Q @ xs
        xs = xs - lr * v
        opt.step(closure)
        np.testing.assert_allclose(flat([x]), xs, rtol=1e-10)


def test_a_failed_fit_keeps_the_previous_estimate_or_searches_again():
    x = torch.tensor([1.0], dtype=torch.float64, requires_grad=True)
    opt = LABPAL([x], approximation_batches=1, sgd_steps=1, s_max=100.0)
    concave = make_closure([x], lambda: -(x**2).sum())
    for _ in range(2):
        opt.step(concave)
    assert opt.diagnostics["phase"] == MEASURE and np.isnan(opt.diagnostics["estimate"])

    convex = make_closure([x], lambda: (x**2).sum())
    opt.step(convex)  # no estimate at all: a new line search, not training with nothing
    assert opt.diagnostics["phase"] == DIRECTION
    opt.step(convex)
    good = opt.diagnostics["estimate"]
    assert good == pytest.approx(0.5 * 1.8)  # s_min = |x| = 1 along -g, ||g|| = 2
    opt.step(convex)  # train one step, then a new search that fails
    for _ in range(2):
        opt.step(concave)
    assert opt.diagnostics["estimate"] == good
    opt.step(convex)
    assert opt.diagnostics["phase"] == TRAIN


def test_batch_size_schedule_and_noise_factor():
    x = torch.zeros(1, requires_grad=True)
    opt = LABPAL([x], total_steps=100)
    opt.set_batch_source(lambda: None)
    seen = {}
    for t in (0, 50, 51, 75, 76, 99):
        opt.global_state["steps"] = t
        seen[t] = opt.batches_per_step()
    assert seen == {0: 1, 50: 1, 51: 2, 75: 2, 76: 4, 99: 4}  # k(t) of Algorithm 9 with t_max = 100

    noisy = LABPAL([x], noise_factor=LABPAL.noise_factor_for(batch_size=32, dataset_size=40_000))  # = 4
    noisy.set_batch_source(lambda: None)
    noisy.set_training_length(total_steps=10, steps_per_epoch=5)
    noisy.global_state["steps"] = 9
    assert noisy.batches_per_step() == 16


def test_without_length_or_source_it_uses_one_batch_per_step(caplog):
    x = torch.zeros(1, requires_grad=True)
    with caplog.at_level(logging.WARNING):
        no_length = LABPAL([x])
        assert no_length.batches_per_step() == 1
        no_source = LABPAL([x], total_steps=10, noise_factor=3.0)
        assert no_source.batches_per_step() == 1
    assert any("training length" in r.message for r in caplog.records)
    assert any("no batch source" in r.message for r in caplog.records)


def test_cost_of_each_phase_with_two_batches_per_step():
    problem = LeastSquares(seed=1)
    opt = LABPAL([problem.w], noise_factor=2.0, approximation_batches=4, sgd_steps=2)
    opt.set_batch_source(problem.source)
    expected = {DIRECTION: (2, 2), MEASURE: (6, 0), TRAIN: (2, 2)}
    phases = []
    for _ in range(6):  # direction, measure x 2 (2 batches each), train x 2, direction
        before = (problem.passes.forward, problem.passes.backward)
        opt.step(problem.closure(problem.draw()))
        phase = opt.diagnostics["phase"]
        phases.append(phase)
        assert (problem.passes.forward - before[0], problem.passes.backward - before[1]) == expected[phase]
        assert opt.diagnostics["evaluations"] == expected[phase][0]
        assert opt.diagnostics["batches"] == 2
    assert phases == [DIRECTION, MEASURE, MEASURE, TRAIN, TRAIN, DIRECTION]


def test_training_step_averages_the_gradients_of_its_batches():
    problem = LeastSquares(dim=3, seed=4)
    opt = LABPAL([problem.w], noise_factor=2.0, approximation_batches=2, sgd_steps=5, s_max=100.0)
    opt.set_batch_source(problem.source)
    for _ in range(2):
        opt.step(problem.closure(problem.draw()))
    lr = opt.diagnostics["estimate"]
    w0 = problem.w.detach().numpy().copy()
    start = len(problem.drawn)
    opt.step(problem.closure(problem.draw()))
    first, second = problem.drawn[start:start + 2]
    mean_gradient = 0.5 * (problem.gradient(first, w0) + problem.gradient(second, w0))
    np.testing.assert_allclose(problem.w.detach().numpy(), w0 - lr * mean_gradient, rtol=1e-12)


def test_state_dict_round_trip_in_the_middle_of_a_line_search():
    problem = LeastSquares(seed=2)
    batches = [problem.draw() for _ in range(12)]
    opt = LABPAL([problem.w], approximation_batches=3, sgd_steps=4, momentum=0.4)
    for batch in batches[:2]:  # direction + one measurement
        opt.step(problem.closure(batch))
    saved, w_saved = copy.deepcopy(opt.state_dict()), problem.w.detach().clone()
    for batch in batches[2:]:
        opt.step(problem.closure(batch))
    final = problem.w.detach().clone()

    with torch.no_grad():
        problem.w.copy_(w_saved)
    fresh = LABPAL([problem.w], approximation_batches=3, sgd_steps=4, momentum=0.4)
    fresh.load_state_dict(saved)
    for batch in batches[2:]:
        fresh.step(problem.closure(batch))
    assert torch.equal(problem.w.detach(), final)


def test_single_batch_costs_match_the_docstring():
    x = torch.tensor(X0, requires_grad=True)
    passes = Passes()
    opt = LABPAL([x], approximation_batches=2, sgd_steps=1)
    closure = make_closure([x], quadratic(Q, [x]), passes)
    counts = []
    for _ in range(4):
        before = (passes.forward, passes.backward)
        opt.step(closure)
        counts.append((passes.forward - before[0], passes.backward - before[1]))
    assert counts == [(1, 1), (3, 0), (3, 0), (1, 1)]


@pytest.mark.parametrize("kwargs", [{"variant": "adam"}, {"alpha": 0.0}, {"sgd_steps": 0},
                                    {"batch_milestones": (0.5, 1.0)}, {"noise_factor": 0.0}])
def test_invalid_hyperparameters_raise(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        LABPAL([torch.zeros(1, requires_grad=True)], **kwargs)
