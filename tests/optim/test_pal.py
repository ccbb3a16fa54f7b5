"""PAL against hand-computed line searches (Algorithm 8 of the PAL dissertation)."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from optim_support import LossFn, Passes, flat, make_closure, quadratic, spd_matrix

from jobs.optim import PAL


def test_one_step_is_exact_line_search_across_param_groups():
    q = spd_matrix(6, 50.0)
    x0 = np.random.default_rng(1).standard_normal(6)
    # Two tensors in two groups: the unit direction must use the joint norm.
    params = [torch.tensor(x0[:2], requires_grad=True), torch.tensor(x0[2:], requires_grad=True)]
    opt = PAL([{"params": params[:1]}, {"params": params[1:]}], beta=0.0, alpha=1.0, s_max=1e6)
    opt.step(make_closure(params, quadratic(q, params)))

    g = q @ x0
    lr = (g @ g) / (g @ q @ g)
    assert opt.diagnostics["case"] == 1
    assert opt.diagnostics["effective_lr"] == pytest.approx(lr, rel=1e-10)
    assert opt.diagnostics["step_size"] == pytest.approx(lr * np.linalg.norm(g), rel=1e-10)
    assert opt.diagnostics["slope"] == pytest.approx(-np.linalg.norm(g), rel=1e-12)
    np.testing.assert_allclose(flat(params), x0 - lr * g, rtol=1e-10, atol=1e-12)


def test_converges_at_the_steepest_descent_rate():
    kappa = 10.0
    q = spd_matrix(5, kappa, seed=2)
    x = torch.tensor(np.random.default_rng(3).standard_normal(5), requires_grad=True)
    loss_fn = quadratic(q, [x])
    opt = PAL([x], beta=0.0, alpha=1.0, s_max=1e6)
    closure = make_closure([x], loss_fn)
    bound = ((kappa - 1) / (kappa + 1)) ** 2
    f_prev = loss_fn().item()
    for _ in range(100):
        opt.step(closure)
        f = loss_fn().item()
        assert f <= bound * f_prev * (1 + 1e-9)
        f_prev = f
    assert f_prev < 1e-15
    assert np.linalg.norm(flat([x])) < 1e-7


def test_concave_line_steps_mu():
    x = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = PAL([x], mu=0.1, beta=0.0)
    opt.step(make_closure([x], lambda: -(x**2).sum() - x.sum()))  # b = -1, a = -1
    assert opt.diagnostics["case"] == 2
    assert opt.diagnostics["step_size"] == 0.1
    assert x.item() == pytest.approx(0.1, abs=1e-15)


def test_no_descent_along_direction_takes_no_step():
    # Step 1 moves to x = mu along d = 1; step 2's batch has gradient 0.5,
    # so d = -0.5 + 0.9 * 1 = 0.4 points uphill: b > 0, case 3.
    x = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = PAL([x], mu=0.1, beta=0.9)
    opt.step(make_closure([x], lambda: -x.sum()))
    before = x.detach().clone()
    opt.step(make_closure([x], lambda: 0.5 * x.sum()))
    assert opt.diagnostics["case"] == 3
    assert opt.diagnostics["slope"] == pytest.approx(0.5)
    assert torch.equal(x.detach(), before)
    assert opt.state[x]["direction"].item() == pytest.approx(0.4)


def test_zero_gradient_takes_no_step():
    x = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    passes = Passes()
    opt = PAL([x])
    opt.step(make_closure([x], lambda: (x**2).sum(), passes))
    assert torch.equal(x.detach(), torch.zeros(3, dtype=torch.float64))
    assert opt.diagnostics["step_size"] == 0.0
    assert opt.diagnostics["case"] == 3
    assert passes.calls == [True]


@pytest.mark.parametrize(
    ("alpha", "s_max", "expected"),
    [(1.0, 10.0, 0.0), (1.0, 0.5, 1.5), (0.5, 10.0, 1.0), (1.5, 10.0, -1.0), (1.5, 2.5, -0.5)],
)
def test_alpha_scales_and_s_max_caps(alpha, s_max, expected):
    # f = x^2/2 from x = 2: the parabola is exact and its minimum is s = 2 along u = -1.
    x = torch.tensor([2.0], dtype=torch.float64, requires_grad=True)
    opt = PAL([x], alpha=alpha, beta=0.0, s_max=s_max)
    opt.step(make_closure([x], lambda: 0.5 * (x**2).sum()))
    assert opt.diagnostics["step_size"] == pytest.approx(min(2.0 * alpha, s_max), abs=1e-9)
    assert x.item() == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("where", ["origin", "measuring point"])
def test_non_finite_loss_leaves_parameters_and_direction_unchanged(bad, where):
    w = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64, requires_grad=True)
    poisoned = [False]

    def loss_fn() -> torch.Tensor:
        loss = ((w - 0.3) ** 2).sum() + w[0] * w[1]
        return loss + bad if poisoned[0] else loss

    opt = PAL([w], beta=0.4)
    good = make_closure([w], loss_fn)
    opt.step(good)
    before, direction = w.detach().clone(), opt.state[w]["direction"].clone()

    passes = Passes()

    def closure(backward: bool = True) -> torch.Tensor:
        poisoned[0] = (where == "origin") == backward
        return make_closure([w], loss_fn, passes)(backward)

    opt.step(closure)
    assert torch.equal(w.detach(), before)
    assert torch.equal(opt.state[w]["direction"], direction)
    assert opt.diagnostics["case"] == 0
    assert opt.diagnostics["step_size"] == 0.0
    assert passes.calls == ([True] if where == "origin" else [True, False])


def test_closure_is_called_once_with_and_once_without_backward():
    w = torch.tensor([1.0, 2.0], requires_grad=True)
    passes = Passes()
    opt = PAL([w])
    closure = make_closure([w], lambda: (w**2).sum() + w.prod(), passes)
    for _ in range(3):
        loss = opt.step(closure)
        assert opt.diagnostics["evaluations"] == 2
        assert opt.diagnostics["loss"] == loss.item()
    assert passes.calls == [True, False] * 3


def test_momentum_direction_matches_two_hand_computed_steps():
    q = np.array([[3.0, 1.0], [1.0, 2.0]])
    beta = 0.4
    x = torch.tensor([1.0, -1.5], dtype=torch.float64, requires_grad=True)
    opt = PAL([x], beta=beta, alpha=1.0, s_max=1e6)
    closure = make_closure([x], quadratic(q, [x]))

    def exact_step(xk: np.ndarray, d: np.ndarray) -> np.ndarray:
        u = d / np.linalg.norm(d)
        b, a = (q @ xk) @ u, 0.5 * u @ q @ u
        assert a > 0 and b < 0
        return xk - b / (2 * a) * u

    x0 = np.array([1.0, -1.5])
    d0 = -(q @ x0)
    x1 = exact_step(x0, d0)
    d1 = -(q @ x1) + beta * d0
    x2 = exact_step(x1, d1)

    opt.step(closure)
    np.testing.assert_allclose(opt.state[x]["direction"].numpy(), d0, rtol=1e-12)
    np.testing.assert_allclose(flat([x]), x1, rtol=1e-10, atol=1e-12)
    opt.step(closure)
    np.testing.assert_allclose(opt.state[x]["direction"].numpy(), d1, rtol=1e-9)
    np.testing.assert_allclose(flat([x]), x2, rtol=1e-9, atol=1e-12)


def rosenbrock_params() -> list[torch.Tensor]:
    return [
        torch.tensor([-1.2, 0.5, 0.0]).double().requires_grad_(),
        torch.tensor([1.0, 0.2, -0.4]).double().requires_grad_(),
    ]


def rosenbrock(params: list[torch.Tensor]) -> LossFn:
    u, v = params
    return lambda: ((1 - u) ** 2).sum() + 10 * ((v - u**2) ** 2).sum()


def test_state_dict_round_trip_resumes_bitwise():
    params = rosenbrock_params()
    opt = PAL([{"params": params[:1]}, {"params": params[1:]}], mu=0.05, beta=0.4)
    closure = make_closure(params, rosenbrock(params))
    for _ in range(3):
        opt.step(closure)
    saved_state = copy.deepcopy(opt.state_dict())
    saved_params = [p.detach().clone() for p in params]
    for _ in range(3):
        opt.step(closure)

    resumed = [p.clone().requires_grad_() for p in saved_params]
    fresh = PAL([{"params": resumed[:1]}, {"params": resumed[1:]}])  # defaults differ; the state restores mu
    fresh.load_state_dict(saved_state)
    fresh_closure = make_closure(resumed, rosenbrock(resumed))
    for _ in range(3):
        fresh.step(fresh_closure)

    assert all(torch.equal(a.detach(), b.detach()) for a, b in zip(params, resumed, strict=True))
    assert fresh.diagnostics == opt.diagnostics
    assert all(
        torch.equal(opt.state[a]["direction"], fresh.state[b]["direction"])
        for a, b in zip(params, resumed, strict=True)
    )


@pytest.mark.parametrize(
    "kwargs",
    [{"mu": 0.0}, {"mu": -1.0}, {"mu": math.nan}, {"alpha": 0.0}, {"beta": 1.0}, {"beta": -0.1}, {"s_max": 0.0}],
)
def test_invalid_hyperparameters_raise(kwargs):
    key = next(iter(kwargs))
    with pytest.raises(ValueError, match=key):
        PAL([torch.zeros(1, requires_grad=True)], **kwargs)


def test_param_groups_cannot_override_the_line_search():
    with pytest.raises(ValueError, match="mu"):
        PAL([{"params": [torch.zeros(1, requires_grad=True)], "mu": 0.5}])


def test_step_needs_a_closure():
    with pytest.raises(ValueError, match="closure"):
        PAL([torch.zeros(1, requires_grad=True)]).step()
