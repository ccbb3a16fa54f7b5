"""SLS against the Armijo backtracking search and the reset rule, recomputed in numpy."""

from __future__ import annotations

import copy
import logging
import math

import numpy as np
import pytest
import torch
from optim_support import LeastSquares, Passes, make_closure

from jobs.optim import SLS


def test_steps_follow_reset_then_backtracking_to_the_first_armijo_point():
    problem = LeastSquares(dim=6, batch=8, seed=3)
    c, beta, gamma, n, lr_max = 0.1, 0.9, 2.0, 5, 10.0
    opt = SLS([problem.w], lr_init=1.0, c=c, beta=beta, gamma=gamma, lr_max=lr_max, n_batches_per_epoch=n)
    lr_prev, backtracked = 1.0, 0
    for _ in range(12):
        batch = problem.draw()
        w0 = problem.w.detach().numpy().copy()
        f0, g = problem.loss(batch, w0), problem.gradient(batch, w0)
        before = (problem.passes.forward, problem.passes.backward)

        lr = min(lr_prev * gamma ** (1 / n), lr_max)  # the reset: the first step size tried
        tries = 0
        while problem.loss(batch, w0 - lr * g) > f0 - c * lr * (g @ g):
            lr *= beta
            tries += 1

        opt.step(problem.closure(batch))
        np.testing.assert_allclose(problem.w.detach().numpy(), w0 - lr * g, rtol=1e-10, atol=1e-12)
        # the accepted step satisfies the Armijo condition; the one before it (if any) did not
        assert problem.loss(batch, w0 - lr * g) <= f0 - c * lr * (g @ g)
        if tries:
            assert problem.loss(batch, w0 - lr / beta * g) > f0 - c * lr / beta * (g @ g)
        d = opt.diagnostics
        assert d["effective_lr"] == pytest.approx(lr, rel=1e-12)
        assert d["step_size"] == pytest.approx(lr * np.linalg.norm(g), rel=1e-10)
        assert (d["backtracks"], d["accepted"], d["evaluations"]) == (tries, 1, tries + 2)
        assert (problem.passes.forward - before[0], problem.passes.backward - before[1]) == (tries + 2, 1)
        lr_prev, backtracked = lr, backtracked + tries
    assert backtracked > 0  # the search was exercised, not only the reset


def test_reset_is_capped_by_lr_max():
    x = torch.tensor([1.0], dtype=torch.float64, requires_grad=True)
    opt = SLS([x], lr_init=0.4, lr_max=0.5, gamma=4.0, n_batches_per_epoch=1)
    opt.step(make_closure([x], lambda: 0.01 * (x**2).sum()))  # flat enough to accept any step tried
    assert opt.diagnostics["effective_lr"] == pytest.approx(0.5)  # 0.4 * 4 capped at 0.5
    assert opt.diagnostics["backtracks"] == 0


def test_epoch_length_comes_from_the_trainer_unless_configured():
    x = torch.tensor([1.0], dtype=torch.float64, requires_grad=True)
    flat = make_closure([x], lambda: 1e-3 * (x**2).sum())
    from_trainer = SLS([x], lr_init=1.0, gamma=2.0)
    from_trainer.set_training_length(total_steps=100, steps_per_epoch=4)
    from_trainer.step(flat)
    assert from_trainer.diagnostics["effective_lr"] == pytest.approx(2 ** (1 / 4))

    configured = SLS([x], lr_init=1.0, gamma=2.0, n_batches_per_epoch=2)
    configured.set_training_length(total_steps=100, steps_per_epoch=4)
    configured.step(flat)
    assert configured.diagnostics["effective_lr"] == pytest.approx(2 ** (1 / 2))


def test_without_an_epoch_length_the_step_size_does_not_grow(caplog):
    x = torch.tensor([1.0], dtype=torch.float64, requires_grad=True)
    opt = SLS([x], lr_init=1.0)
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            opt.step(make_closure([x], lambda: 1e-3 * (x**2).sum()))
    assert opt.diagnostics["effective_lr"] == 1.0
    assert sum("batches per epoch" in r.message for r in caplog.records) == 1


def test_gives_up_after_max_backtracks_without_moving():
    x = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
    passes = Passes()

    def loss_fn() -> torch.Tensor:  # every trial point looks infinitely bad
        loss = (x**2).sum()
        return loss if torch.is_grad_enabled() else loss + math.inf

    opt = SLS([x], lr_init=1.0, beta=0.5, n_batches_per_epoch=1, gamma=1.0, max_backtracks=3)
    opt.step(make_closure([x], loss_fn, passes))
    assert torch.equal(x.detach(), torch.tensor([1.0, 2.0], dtype=torch.float64))
    assert opt.diagnostics["accepted"] == 0 and opt.diagnostics["effective_lr"] == 0.0
    assert (passes.forward, passes.backward) == (5, 1)
    assert opt.global_state["lr"] == pytest.approx(0.125)


def test_a_vanishing_gradient_takes_no_step():
    x = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    passes = Passes()
    opt = SLS([x], n_batches_per_epoch=10)
    opt.step(make_closure([x], lambda: (x**2).sum(), passes))
    assert torch.equal(x.detach(), torch.zeros(3, dtype=torch.float64))
    assert (passes.forward, passes.backward, opt.diagnostics["evaluations"]) == (1, 1, 1)


def test_state_dict_round_trip_resumes_bitwise():
    problem = LeastSquares(seed=5)
    opt = SLS([problem.w], n_batches_per_epoch=3)
    batches = [problem.draw() for _ in range(6)]
    for batch in batches[:3]:
        opt.step(problem.closure(batch))
    saved, w_saved = copy.deepcopy(opt.state_dict()), problem.w.detach().clone()
    for batch in batches[3:]:
        opt.step(problem.closure(batch))
    final = problem.w.detach().clone()

    with torch.no_grad():
        problem.w.copy_(w_saved)
    fresh = SLS([problem.w], n_batches_per_epoch=3)
    fresh.load_state_dict(saved)
    for batch in batches[3:]:
        fresh.step(problem.closure(batch))
    assert torch.equal(problem.w.detach(), final)


@pytest.mark.parametrize("kwargs", [{"c": 0.0}, {"c": 1.0}, {"beta": 1.0}, {"gamma": 0.5}, {"lr_init": 0.0},
                                    {"n_batches_per_epoch": 0}])
def test_invalid_hyperparameters_raise(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        SLS([torch.zeros(1, requires_grad=True)], **kwargs)
