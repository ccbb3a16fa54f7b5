"""GOLS-I against its acceptance rule and sign-change search, on quadratics with known slopes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from optim_support import LeastSquares, Passes, flat, make_closure, quadratic, spd_matrix

from jobs.optim import GOLSI

Q = spd_matrix(4, 20.0, seed=7)
X0 = 0.02 * np.array([1.0, -2.0, 0.5, 1.5])  # small, so that the cap lr <= 1/||d|| stays out of the way


def slope(x: np.ndarray, d: np.ndarray, lr: float) -> float:
    """l'(lr) = grad f(x + lr d) . d for f = x^T Q x / 2."""
    return float((Q @ (x + lr * d)) @ d)


def one_step(lr_init: float, **kwargs) -> tuple[GOLSI, np.ndarray, Passes]:
    x = torch.tensor(X0, requires_grad=True)
    passes = Passes()
    opt = GOLSI([x], lr_init=lr_init, **kwargs)
    opt.step(make_closure([x], quadratic(Q, [x]), passes))
    return opt, flat([x]), passes


def exact_lr() -> float:
    g = Q @ X0
    return float(g @ g / (g @ Q @ g))


def test_immediately_accepted_step_satisfies_the_curvature_condition():
    c2, d = 0.9, -(Q @ X0)
    lr = 1.5 * exact_lr()  # past the minimum, slope there = 0.5 |slope at 0|
    opt, x1, passes = one_step(lr, c2=c2)
    assert opt.diagnostics["case"] == 0
    assert opt.diagnostics["effective_lr"] == pytest.approx(lr, rel=1e-12)
    assert 0.0 <= slope(X0, d, lr) <= c2 * abs(slope(X0, d, 0.0))
    np.testing.assert_allclose(x1, X0 + lr * d, rtol=1e-12)
    assert (passes.forward, passes.backward, opt.diagnostics["evaluations"]) == (2, 2, 2)


def test_grows_until_the_slope_turns_non_negative():
    d, start = -(Q @ X0), exact_lr() / 10
    expected, tries = start, 1
    while slope(X0, d, expected) < 0:
        expected *= 2
        tries += 1
    opt, x1, passes = one_step(start)
    assert opt.diagnostics["case"] == 1 and tries > 2
    assert opt.diagnostics["effective_lr"] == pytest.approx(expected, rel=1e-12)
    assert slope(X0, d, expected) >= 0 > slope(X0, d, expected / 2)  # a sign change brackets the minimum
    np.testing.assert_allclose(x1, X0 + expected * d, rtol=1e-12)
    assert (passes.forward, passes.backward) == (1 + tries, 1 + tries)


def test_shrinks_until_the_slope_turns_negative():
    d, start = -(Q @ X0), 6 * exact_lr()
    expected, tries = start, 1
    while slope(X0, d, expected) >= 0:
        expected /= 2
        tries += 1
    opt, x1, passes = one_step(start, c2=0.5)
    assert opt.diagnostics["case"] == 2
    assert opt.diagnostics["effective_lr"] == pytest.approx(expected, rel=1e-12)
    assert slope(X0, d, expected) < 0 <= slope(X0, d, 2 * expected)
    assert (passes.forward, passes.backward) == (1 + tries, 1 + tries)


def test_step_never_exceeds_unit_length():
    x = torch.tensor([3.0, 4.0], dtype=torch.float64, requires_grad=True)
    opt = GOLSI([x], lr_init=1e-3)
    opt.step(make_closure([x], lambda: -x.sum()))  # linear: the slope never turns positive
    d_norm = np.sqrt(2.0)
    assert opt.diagnostics["effective_lr"] <= 1 / d_norm
    assert opt.diagnostics["step_size"] <= 1.0 + 1e-12
    assert opt.diagnostics["effective_lr"] > 1 / d_norm / 2  # ...but it grew to the cap


def test_each_evaluation_uses_a_fresh_batch():
    problem = LeastSquares(dim=5, batch=32, seed=2)
    opt = GOLSI([problem.w], lr_init=1e-3)
    opt.set_batch_source(problem.source)
    cases = set()
    for _ in range(8):
        step_batch = problem.draw()
        drawn_before = len(problem.drawn)
        w0 = problem.w.detach().numpy().copy()
        lr_start = opt.global_state.get("lr", 1e-3)
        passes_before = problem.passes.forward
        opt.step(problem.closure(step_batch))
        evaluations = opt.diagnostics["evaluations"]
        fresh = problem.drawn[drawn_before:]
        assert len(fresh) == evaluations - 1 and problem.passes.forward - passes_before == evaluations
        d = -problem.gradient(step_batch, w0)
        first = problem.gradient(fresh[0], w0 + lr_start * d) @ d
        if opt.diagnostics["case"] == 0:
            assert 0 <= first <= 0.9 * abs(problem.gradient(step_batch, w0) @ d)
        elif opt.diagnostics["case"] == 1:  # grew until a batch saw the slope turn, or up to the cap
            lr = opt.diagnostics["effective_lr"]
            capped = lr > 1 / np.linalg.norm(d) / 2
            last = problem.gradient(fresh[-1], w0 + (lr / 2 if capped else lr) * d) @ d
            assert (last < 0) if capped else (last >= 0)
        else:  # shrank until a batch saw a negative slope
            lr = opt.diagnostics["effective_lr"]
            assert problem.gradient(fresh[-1], w0 + lr * d) @ d < 0
        np.testing.assert_allclose(problem.w.detach().numpy(), w0 + opt.diagnostics["effective_lr"] * d, rtol=1e-12)
        cases.add(opt.diagnostics["case"])
    assert cases == {0, 1, 2}


def test_momentum_direction_and_reset_to_the_gradient():
    x = torch.tensor([1.0, 0.0], dtype=torch.float64, requires_grad=True)
    opt = GOLSI([x], lr_init=0.1, momentum=0.9)
    opt.step(make_closure([x], lambda: x.sum()))  # d = -(1, 1)
    first = opt.state[x]["direction"].clone()
    np.testing.assert_allclose(first.numpy(), [-1.0, -1.0])
    # next batch's gradient (-1, 0): d = (1, 0) + 0.9 (-1, -1) = (0.1, -0.9): g . d = -0.1 < 0, kept
    opt.step(make_closure([x], lambda: -x[0]))
    np.testing.assert_allclose(opt.state[x]["direction"].numpy(), [0.1, -0.9])
    # g = (0.01, -0.09): d = -g + 0.9 (0.1, -0.9) = (0.08, -0.72) ascends (g . d > 0), so d is reset to -g
    opt.step(make_closure([x], lambda: 0.01 * x[0] - 0.09 * x[1]))
    np.testing.assert_allclose(opt.state[x]["direction"].numpy(), [-0.01, 0.09])


@pytest.mark.parametrize("kwargs", [{"eta": 1.0}, {"c2": 0.0}, {"momentum": 1.0}, {"lr_init": -1.0}])
def test_invalid_hyperparameters_raise(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        GOLSI([torch.zeros(1, requires_grad=True)], **kwargs)
