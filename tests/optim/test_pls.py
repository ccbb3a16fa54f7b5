"""PLS: its Gaussian process against a direct computation, its Wolfe probabilities, its accepted steps.

The reference GP here builds the kernel from the definition of the
once-integrated Wiener process, ``f(t) = int_0^{t + tau} W(u) du`` with
``cov(W(u), W(v)) = min(u, v)``, by numerical quadrature, and solves the
explicit kernel matrices with numpy; bivariate normal probabilities come
from scipy.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from optim_support import LeastSquares, Passes, make_closure, quadratic, spd_matrix
from scipy import integrate, stats

from jobs.optim import PLS
from jobs.optim.pls import OFFSET, WienerLineGP, bivariate_normal_cdf, gaussian_orthant


def reference_kernel(a: float, b: float, order_a: int, order_b: int) -> float:
    """cov(d^i f(a), d^j f(b)) by quadrature of cov(W(u), W(v)) = min(u, v)."""
    at, bt = a + OFFSET, b + OFFSET
    if order_a == 1 and order_b == 1:  # cov(W(at), W(bt))
        return min(at, bt)
    if order_a == 1:  # cov(W(at), f(b)) = int_0^bt min(at, v) dv
        return integrate.quad(lambda v: min(at, v), 0, bt, points=[at])[0]
    if order_b == 1:
        return integrate.quad(lambda u: min(u, bt), 0, at, points=[bt])[0]
    inner = lambda u: integrate.quad(lambda v: min(u, v), 0, bt, points=[u])[0]  # noqa: E731
    return integrate.quad(inner, 0, at, points=[bt])[0]


class ReferenceGP:
    def __init__(self, t, y, dy, var_f, var_df):
        self.data = [(x, 0) for x in t] + [(x, 1) for x in t]
        n = len(t)
        gram = self.matrix(self.data, self.data) + np.diag([var_f] * n + [var_df] * n)
        self.gram, self.z = gram, np.concatenate([y, dy])

    @staticmethod
    def matrix(rows, cols):
        return np.array([[reference_kernel(a, b, i, j) for b, j in cols] for a, i in rows])

    def posterior(self, functionals):
        cross = self.matrix(functionals, self.data)
        mean = cross @ np.linalg.solve(self.gram, self.z)
        cov = self.matrix(functionals, functionals) - cross @ np.linalg.solve(self.gram, cross.T)
        return mean, cov

    def wolfe_probability(self, t, c1, c2):
        mean, cov = self.posterior([(0.0, 0), (0.0, 1), (t, 0), (t, 1)])
        w = np.array([[1.0, c1 * t, -1.0, 0.0], [0.0, -c2, 0.0, 1.0]])  # a(t), b(t)
        m, c = w @ mean, w @ cov @ w.T
        # P(a >= 0, b >= 0) = P(-a <= 0, -b <= 0)
        return float(stats.multivariate_normal(mean=-m, cov=c).cdf(np.zeros(2)))


T = [0.0, 0.7, 1.9, 3.0]
Y = [0.0, -0.4, -0.55, -0.2]
DY = [-1.0, -0.45, 0.1, 0.6]


def test_kernel_matches_the_integrated_wiener_process():
    gp = WienerLineGP([0.0], [0.0], [0.0], 1.0, 1.0)
    for a, b in [(0.0, 0.0), (0.3, 2.5), (2.5, 0.3), (1.0, 1.0), (4.0, 3.9)]:
        for i in (0, 1):
            for j in (0, 1):
                assert gp.kernel(a, b, i, j) == pytest.approx(reference_kernel(a, b, i, j), rel=1e-9)


@pytest.mark.parametrize(("var_f", "var_df"), [(0.05, 0.2), (1e-4, 1e-3)])
def test_posterior_matches_a_direct_computation(var_f, var_df):
    gp = WienerLineGP(T, Y, DY, var_f, var_df)
    reference = ReferenceGP(T, np.array(Y), np.array(DY), var_f, var_df)
    queries = [(0.0, 0), (0.0, 1), (0.35, 0), (1.9, 1), (2.4, 0), (2.4, 1), (4.5, 0)]
    mean, cov = reference.posterior(queries)
    np.testing.assert_allclose([gp.mean(t, order) for t, order in queries], mean, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(gp.covariance(queries), cov, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("t", [0.7, 1.2, 1.9, 3.5])
def test_wolfe_probability_matches_a_direct_computation(t):
    var_f, var_df = 0.02, 0.1
    gp = WienerLineGP(T, Y, DY, var_f, var_df)
    expected = ReferenceGP(T, np.array(Y), np.array(DY), var_f, var_df).wolfe_probability(t, 0.05, 0.8)
    assert gp.wolfe_probability(t, 0.05, 0.8) == pytest.approx(expected, abs=2e-6)


def test_candidates_are_the_local_minima_of_the_posterior_mean():
    gp = WienerLineGP(T, Y, DY, 0.01, 0.05)
    minima, rising = gp.cell_minima()
    grid = np.linspace(0.0, 3.0, 30001)
    means = np.array([gp.mean(t) for t in grid])
    inner = np.flatnonzero((means[1:-1] < means[:-2]) & (means[1:-1] < means[2:])) + 1
    assert not rising
    np.testing.assert_allclose(minima, grid[inner], atol=2e-4)
    assert len(minima) == 1


def test_a_mean_that_rises_at_zero_is_reported():
    # slopes observed with large noise, the loss at t = 1 far above the start: the mean rises from 0
    gp = WienerLineGP([0.0, 1.0], [0.0, 5.0], [-1.0, 10.0], 1e-6, 100.0)
    assert gp.mean(0.0, 1) > 0
    assert gp.cell_minima() == ([], True)


@pytest.mark.parametrize("rho", [-0.999, -0.6, 0.0, 0.3, 0.9, 0.9999])
@pytest.mark.parametrize(("h", "k"), [(0.0, 0.0), (1.2, -0.4), (-2.0, 0.5), (2.5, 2.4), (-3.0, -3.0)])
def test_bivariate_normal_cdf_matches_scipy(h, k, rho):
    expected = stats.multivariate_normal(mean=[0, 0], cov=[[1, rho], [rho, 1]]).cdf([h, k])
    assert bivariate_normal_cdf(h, k, rho) == pytest.approx(expected, abs=1e-7)


def test_orthant_probability_with_deterministic_parts():
    assert gaussian_orthant(0.1, 0.2, 0.0, 0.0, 0.0) == 1.0
    assert gaussian_orthant(-0.1, 0.2, 0.0, 0.0, 0.0) == 0.0
    assert gaussian_orthant(0.1, 0.5, 0.0, 1.0, 0.0) == pytest.approx(stats.norm.cdf(0.5))


def test_accepted_step_has_wolfe_probability_above_the_threshold():
    problem = LeastSquares(dim=5, batch=16, noise=0.3, seed=4)
    c1, c2, c_w, alpha0 = 0.05, 0.8, 0.3, 0.02
    opt = PLS([problem.w], lr_init=alpha0, c1=c1, c2=c2, c_w=c_w, noise_batches=2)
    opt.set_batch_source(problem.source)
    accepted = 0
    for _ in range(4):
        step_batch = problem.draw()
        first_draw = len(problem.drawn)
        w0 = problem.w.detach().numpy().copy()
        alpha0 = opt.global_state.get("alpha0", alpha0)
        opt.step(problem.closure(step_batch))
        record = opt.last_search
        d = -problem.gradient(step_batch, w0)
        beta, f0 = d @ d, problem.loss(step_batch, w0)
        noise_batches, line_batches = problem.drawn[first_draw:first_draw + 2], problem.drawn[first_draw + 2:]

        # the noise estimates: variance of the losses at w0 (step batch included) and of the fresh slopes
        var_f = np.var([f0] + [problem.loss(b, w0) for b in noise_batches], ddof=1)
        unit = d / np.linalg.norm(d)
        var_df = np.var([problem.gradient(b, w0) @ unit for b in noise_batches], ddof=1)
        if accepted == 0 and record.alpha0 == pytest.approx(0.02):  # first step: nothing to smooth with yet
            assert record.var_f == pytest.approx(var_f / (alpha0 * beta) ** 2, rel=1e-9)
            assert record.var_df == pytest.approx(var_df * beta / beta**2, rel=1e-9)

        # every observation is the scaled loss and slope of its own fresh batch at w0 + t alpha0 d
        assert record.alpha0 == pytest.approx(alpha0) and record.beta == pytest.approx(beta, rel=1e-12)
        assert len(line_batches) == len(record.t) - 1
        for t, y, dy, batch in zip(record.t[1:], record.y[1:], record.dy[1:], line_batches, strict=True):
            w = w0 + t * alpha0 * d
            assert y == pytest.approx((problem.loss(batch, w) - f0) / (alpha0 * beta), rel=1e-9, abs=1e-12)
            assert dy == pytest.approx(problem.gradient(batch, w) @ d / beta, rel=1e-9, abs=1e-12)

        np.testing.assert_allclose(problem.w.detach().numpy(), w0 + record.chosen * alpha0 * d, rtol=1e-12)
        if record.accepted is not None:
            accepted += 1
            reference = ReferenceGP(record.t, np.array(record.y), np.array(record.dy), record.var_f, record.var_df)
            assert reference.wolfe_probability(record.accepted, c1, c2) > c_w
    assert accepted >= 3


def test_next_search_starts_at_1_3_times_the_accepted_step():
    x = torch.tensor([1.0, -1.0, 0.5], dtype=torch.float64, requires_grad=True)
    q = spd_matrix(3, 4.0, seed=1)
    opt = PLS([x], lr_init=0.1)
    opt.step(make_closure([x], quadratic(q, [x])))
    step = opt.last_search.chosen * 0.1
    assert opt.global_state["alpha0"] == pytest.approx(1.3 * step)


def test_without_a_source_it_searches_the_step_minibatch_noise_free():
    q = spd_matrix(4, 10.0, seed=2)
    x = torch.tensor([1.0, -1.0, 0.5, 2.0], dtype=torch.float64, requires_grad=True)
    passes = Passes()
    opt = PLS([x], lr_init=0.05)
    loss_fn = quadratic(q, [x])
    start = loss_fn().item()
    for _ in range(5):
        before = passes.forward
        opt.step(make_closure([x], loss_fn, passes))
        record = opt.last_search
        assert record.var_f == 0.0 and record.var_df == 0.0
        # cost: one pass at theta, one per evaluated point, each with a backward pass
        assert passes.forward - before == opt.diagnostics["evaluations"] == len(record.t)
    assert passes.forward == passes.backward
    assert loss_fn().item() < 0.1 * start


def test_cost_with_a_source():
    problem = LeastSquares(seed=6)
    opt = PLS([problem.w], noise_batches=3)
    opt.set_batch_source(problem.source)
    opt.step(problem.closure(problem.draw()))
    evaluated = len(opt.last_search.t) - 1
    assert problem.passes.forward == problem.passes.backward == 1 + 3 + evaluated
    assert opt.diagnostics["evaluations"] == 1 + 3 + evaluated


def test_zero_gradient_takes_no_step():
    x = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    opt = PLS([x])
    opt.step(make_closure([x], lambda: (x**2).sum()))
    assert torch.equal(x.detach(), torch.zeros(2, dtype=torch.float64))
    assert opt.diagnostics["effective_lr"] == 0.0 and math.isnan(opt.diagnostics["p_wolfe"])


@pytest.mark.parametrize("kwargs", [{"c1": 0.9}, {"c_w": 1.0}, {"noise_batches": 1}, {"max_evaluations": 0}])
def test_invalid_hyperparameters_raise(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        PLS([torch.zeros(1, requires_grad=True)], **kwargs)
