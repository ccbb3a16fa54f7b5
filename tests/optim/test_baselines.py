"""SGD-HD, ALI-G and COCOB-Backprop against their update rules written out by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from optim_support import Passes, flat, make_closure, quadratic, spd_matrix

from jobs.optim import ALIG, COCOB, SGDHD

Q = spd_matrix(3, 10.0, seed=11)
X0 = np.array([1.0, -0.5, 2.0])


def f(x: np.ndarray) -> float:
    return 0.5 * x @ Q @ x


def grad(x: np.ndarray) -> np.ndarray:
    return Q @ x


# -- SGD-HD ------------------------------------------------------------------------------------
def test_sgd_hd_learning_rate_follows_the_hypergradient():
    lr0, beta = 0.05, 0.01
    x = torch.tensor(X0, requires_grad=True)
    opt = SGDHD([x], lr=lr0, hypergrad_lr=beta)
    closure = make_closure([x], quadratic(Q, [x]))

    xs, lr, g_prev, x_prev = X0.copy(), lr0, None, None
    for _ in range(5):
        g = grad(xs)
        if g_prev is not None:
            # the hypergradient is the derivative of the loss after the last step with respect to that step's lr
            h = 1e-6
            finite_difference = (f(x_prev - (lr + h) * g_prev) - f(x_prev - (lr - h) * g_prev)) / (2 * h)
            assert finite_difference == pytest.approx(-g @ g_prev, rel=1e-6)
            lr = lr + beta * g @ g_prev
        x_prev, xs, g_prev = xs, xs - lr * g, g

        opt.step(closure)
        assert opt.param_groups[0]["lr"] == pytest.approx(lr, rel=1e-12)
        assert opt.diagnostics["effective_lr"] == pytest.approx(lr, rel=1e-12)
        np.testing.assert_allclose(flat([x]), xs, rtol=1e-12)
    assert lr != lr0


def test_sgd_hd_groups_adapt_their_own_rates_and_work_without_a_closure():
    a = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
    b = torch.tensor([3.0], dtype=torch.float64, requires_grad=True)
    opt = SGDHD([{"params": [a]}, {"params": [b], "lr": 0.2}], lr=0.1, hypergrad_lr=0.5)
    for _ in range(2):
        opt.zero_grad()
        ((a**2).sum() + (b**2).sum()).backward()
        opt.step()
    # group a: g1 = 2 a0 = (2, 4), a1 = a0 - 0.1 g1 = (0.8, 1.6), g2 = (1.6, 3.2): lr = 0.1 + 0.5 g2.g1 = 8.1
    # group b: g1 = 6, b1 = 3 - 0.2 * 6 = 1.8, g2 = 3.6: lr = 0.2 + 0.5 * 21.6 = 11.0
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([8.1, 11.0])


# -- ALI-G -------------------------------------------------------------------------------------
@pytest.mark.parametrize("max_lr", [10.0, 0.05])
def test_alig_takes_the_capped_polyak_step(max_lr):
    eps = 1e-5
    x = torch.tensor(X0, requires_grad=True)
    opt = ALIG([x], lr=max_lr, momentum=0.0, eps=eps)
    opt.step(make_closure([x], quadratic(Q, [x])))
    g = grad(X0)
    gamma = min(f(X0) / (g @ g + eps), max_lr)
    np.testing.assert_allclose(flat([x]), X0 - gamma * g, rtol=1e-12)
    assert opt.diagnostics["effective_lr"] == pytest.approx(gamma, rel=1e-12)
    assert opt.diagnostics["polyak_step"] == pytest.approx(f(X0) / (g @ g + eps), rel=1e-12)


def test_alig_momentum_is_nesterov():
    mu, eps, max_lr = 0.9, 1e-5, 1.0
    x = torch.tensor(X0, requires_grad=True)
    opt = ALIG([x], lr=max_lr, momentum=mu, eps=eps)
    closure = make_closure([x], quadratic(Q, [x]))
    xs, z = X0.copy(), np.zeros(3)
    for _ in range(4):
        g = grad(xs)
        gamma = min(f(xs) / (g @ g + eps), max_lr)
        z = mu * z - gamma * g
        xs = xs - gamma * g + mu * z
        opt.step(closure)
        np.testing.assert_allclose(flat([x]), xs, rtol=1e-11)


def test_alig_needs_a_closure():
    with pytest.raises(ValueError, match="closure"):
        ALIG([torch.zeros(1, requires_grad=True)]).step()


# -- COCOB -------------------------------------------------------------------------------------
def test_cocob_first_step_moves_each_coordinate_by_one_over_alpha():
    alpha = 50.0
    x = torch.tensor(X0, requires_grad=True)
    opt = COCOB([x], alpha=alpha)
    opt.step(make_closure([x], quadratic(Q, [x])))
    np.testing.assert_allclose(flat([x]), X0 - np.sign(grad(X0)) / alpha, rtol=1e-6)


def test_cocob_matches_the_betting_algorithm_by_hand():
    alpha, eps = 4.0, 1e-8
    x = torch.tensor(X0, requires_grad=True)
    opt = COCOB([x], alpha=alpha, eps=eps)
    closure = make_closure([x], quadratic(Q, [x]))

    w1, w = X0.copy(), X0.copy()
    big_l, big_g, reward, theta = np.full(3, eps), np.zeros(3), np.zeros(3), np.zeros(3)
    for _ in range(4):
        g = grad(w)
        big_l = np.maximum(big_l, np.abs(g))
        big_g = big_g + np.abs(g)
        reward = np.maximum(reward - (w - w1) * g, 0.0)
        theta = theta - g
        w = w1 + theta / (big_l * np.maximum(big_g + big_l, alpha * big_l)) * (big_l + reward)
        opt.step(closure)
        np.testing.assert_allclose(flat([x]), w, rtol=1e-12)
    assert reward.any()  # the bets paid off at some point: the Reward term was exercised


# -- costs -------------------------------------------------------------------------------------
@pytest.mark.parametrize("make", [lambda p: SGDHD(p), lambda p: ALIG(p), lambda p: COCOB(p)],
                         ids=["sgd_hd", "alig", "cocob"])
def test_one_forward_and_one_backward_per_step(make):
    x = torch.tensor(X0, requires_grad=True)
    passes = Passes()
    opt = make([x])
    for _ in range(3):
        opt.step(make_closure([x], quadratic(Q, [x]), passes))
        assert opt.diagnostics["evaluations"] == 1
    assert (passes.forward, passes.backward) == (3, 3)
