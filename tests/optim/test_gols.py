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
        elif opt.diagnostics["case"] == 1:  # grew until a batch saw the slope turn, or past lr_max / eta
            lr = opt.diagnostics["effective_lr"]
            last = problem.gradient(fresh[-1], w0 + lr * d) @ d  # the last batch measured the lr taken
            assert last >= 0 or lr > 1 / np.linalg.norm(d) / 2
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


def recorded_search(x0: np.ndarray, **kwargs) -> tuple[GOLSI, np.ndarray, list[np.ndarray]]:
    """One step from ``x0``; also returns every point the search evaluated (theta first)."""
    x = torch.tensor(x0, requires_grad=True)
    points, loss = [], quadratic(Q, [x])

    def recorded():
        points.append(flat([x]))
        return loss()

    opt = GOLSI([x], **kwargs)
    opt.step(make_closure([x], recorded))
    return opt, flat([x]), points


def search_ratio(lr: float) -> float:
    """l'(lr) / |l'(0)| along d = -g on the quadratic: lr / lr_exact - 1, so its sign says which side lr is on."""
    return lr / exact_lr() - 1.0


@pytest.mark.parametrize("cap", ["lr_max", "unit_length"])
def test_a_search_that_starts_at_lr_max_with_a_negative_slope_stays_there(cap):
    if cap == "lr_max":  # the hyperparameter cap, a third of the way to the minimum along the line
        x0, lr_max, kwargs = X0, exact_lr() / 3, {"lr_max": exact_lr() / 3}
    else:  # the cap 1/||d||: far from the optimum, the minimum along the line lies beyond unit length
        x0 = 500 * X0
        lr_max, kwargs = 1 / np.linalg.norm(Q @ x0), {}
    d = -(Q @ x0)
    assert slope(x0, d, lr_max) < 0  # by hand: lr_max / lr_exact - 1 < 0
    opt, x1, points = recorded_search(x0, lr_init=10.0, **kwargs)  # clipped down to lr_max
    assert opt.diagnostics["effective_lr"] == pytest.approx(lr_max, rel=1e-12)
    assert opt.diagnostics["case"] == 4
    np.testing.assert_allclose(x1, x0 + lr_max * d, rtol=1e-12)
    np.testing.assert_allclose(points[-1], x1, rtol=1e-12)  # the step taken was measured
    assert len(points) == opt.diagnostics["evaluations"] == 2


def test_a_search_that_starts_at_lr_min_with_a_positive_slope_stays_there():
    lr_min = 3 * exact_lr()
    d = -(Q @ X0)
    assert slope(X0, d, lr_min) > 0.9 * abs(slope(X0, d, 0.0))  # by hand: 3 - 1 = 2 > c2, so no immediate accept
    opt, x1, points = recorded_search(X0, lr_init=1e-12, lr_min=lr_min)  # clipped up to lr_min
    assert opt.diagnostics["effective_lr"] == pytest.approx(lr_min, rel=1e-12)
    assert opt.diagnostics["case"] == 4
    np.testing.assert_allclose(x1, X0 + lr_min * d, rtol=1e-12)
    np.testing.assert_allclose(points[-1], x1, rtol=1e-12)
    assert len(points) == opt.diagnostics["evaluations"] == 2


def bounded_search(first: float, lr_min: float, lr_max: float, eta: float, c2: float) -> list[float]:
    """The step sizes the authors' bounded GOLS-I measures on the quadratic, from the slopes worked out by hand."""
    trials, lr = [first], first
    if 0 <= search_ratio(lr) <= c2:
        return trials
    if search_ratio(lr) < 0 and lr < lr_max:
        while True:
            lr *= eta
            trials.append(lr)
            if search_ratio(lr) >= 0 or lr > lr_max / eta:
                return trials
    if search_ratio(lr) >= 0 and lr > lr_min:
        while True:
            lr /= eta
            trials.append(lr)
            if search_ratio(lr) < 0 or lr < lr_min * eta:
                return trials
    return trials


# (lr_min, lr_max, start) in units of the exact step, none of them a power of 2 from it (no slope is exactly 0)
SEARCHES = [
    (0.45, 1.7, 0.2),  # clipped up to lr_min, grows, stops on the bound check at 0.9 > 1.7 / 2
    (0.45, 1.7, 0.6),  # grows to 1.2 where the slope turns positive
    (0.45, 1.7, 1.05),  # accepted at once
    (0.45, 1.7, 1.5),  # shrinks to 0.75 where the slope turns negative
    (0.45, 1.7, 4.0),  # clipped down to lr_max, positive slope there: shrinks
    (1.3, 5.0, 0.2),  # clipped up to lr_min, positive slope there: stays at lr_min
    (1.3, 5.0, 1.5),  # within eta of lr_min: one shrink, to 0.75, below lr_min but measured
    (0.1, 0.7, 4.0),  # clipped down to lr_max, negative slope there: stays at lr_max
    (0.1, 0.7, 0.55),  # within eta of lr_max: one growth, to 1.1, above lr_max but measured
]


@pytest.mark.parametrize(("lr_min", "lr_max", "start"), SEARCHES)
def test_search_measures_the_steps_of_the_bounded_rule_and_takes_the_last(lr_min, lr_max, start):
    unit, eta, c2 = exact_lr(), 2.0, 0.1
    lr_min, lr_max = lr_min * unit, lr_max * unit
    trials = bounded_search(min(max(start * unit, lr_min), lr_max), lr_min, lr_max, eta, c2)
    opt, x1, points = recorded_search(X0, lr_init=start * unit, lr_min=lr_min, lr_max=lr_max, eta=eta, c2=c2)
    d = -(Q @ X0)
    assert len(points) == 1 + len(trials) == opt.diagnostics["evaluations"]
    for point, lr in zip(points[1:], trials, strict=True):
        np.testing.assert_allclose(point, X0 + lr * d, rtol=1e-12)
    assert opt.diagnostics["effective_lr"] == pytest.approx(trials[-1], rel=1e-12)
    np.testing.assert_allclose(x1, points[-1], rtol=1e-12)
    assert lr_min / eta < trials[-1] < eta * lr_max
