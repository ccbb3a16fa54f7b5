"""LABPAL: both estimators against the minimiser along the line worked out by hand, the default against a numpy
statement of the published code (labpal_reference), and the phases, costs and schedule."""

from __future__ import annotations

import copy
import logging

import numpy as np
import pytest
import torch
from labpal_reference import CodeLabPal, H
from optim_support import LeastSquares, Passes, flat, make_closure, quadratic, spd_matrix

from jobs.optim import LABPAL
from jobs.optim.labpal import DIRECTION, MEASURE, TRAIN, code_parabola, exact_parabola

Q = spd_matrix(5, 30.0, seed=3)
X0 = 0.3 * np.array([1.0, -1.0, 2.0, 0.5, -1.5])


def exact_step(x: np.ndarray) -> float:
    """argmin_s f(x + s u) for u = -g / ||g||, f = x^T Q x / 2."""
    g = Q @ x
    u = -g / np.linalg.norm(g)
    return float(-(g @ u) / (u @ Q @ u))


@pytest.mark.parametrize("variant", ["sgd", "nsgd"])
def test_exact_line_estimate_on_a_quadratic_is_the_minimiser(variant):
    alpha, measured = 1.8, 3
    x = torch.tensor(X0, requires_grad=True)
    opt = LABPAL([x], variant=variant, alpha=alpha, approximation_batches=measured, sgd_steps=2, s_max=100.0,
                 estimator="exact")
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


def test_exact_estimate_is_the_minimiser_of_the_mean_of_the_measured_batches():
    problem = LeastSquares(dim=4, batch=8, noise=1.0, seed=9)
    batches = [problem.draw() for _ in range(6)]
    opt = LABPAL([problem.w], approximation_batches=5, s_max=100.0, alpha=1.0, estimator="exact")
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


def test_exact_momentum_acts_in_the_training_phase():
    beta = 0.5
    x = torch.tensor(X0, requires_grad=True)
    opt = LABPAL([x], momentum=beta, approximation_batches=1, sgd_steps=10, s_max=100.0, estimator="exact")
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


def test_exact_a_failed_fit_keeps_the_previous_estimate_or_searches_again():
    x = torch.tensor([1.0], dtype=torch.float64, requires_grad=True)
    opt = LABPAL([x], approximation_batches=1, sgd_steps=1, s_max=100.0, estimator="exact")
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


# k(t) with t_max = 100 for noise factors 1 and 1.3: the code int(1.3 * 2^j) from t = 50, Algorithm 9 round() after
SCHEDULES = {
    "code": ({0: 1, 49: 1, 50: 2, 74: 2, 75: 4, 99: 4}, {0: 1, 49: 1, 50: 2, 74: 2, 75: 5, 99: 5}),
    "exact": ({0: 1, 50: 1, 51: 2, 75: 2, 76: 4, 99: 4}, {0: 1, 50: 1, 51: 3, 75: 3, 76: 5, 99: 5}),
}


@pytest.mark.parametrize("estimator", ["code", "exact"])
def test_batch_size_schedule_and_noise_factor(estimator):
    x = torch.zeros(1, requires_grad=True)
    for noise_factor, expected in zip((1.0, 1.3), SCHEDULES[estimator], strict=True):
        opt = LABPAL([x], total_steps=100, noise_factor=noise_factor, estimator=estimator)
        opt.set_batch_source(lambda: None)
        seen = {}
        for t in expected:
            opt.global_state["steps"] = t
            seen[t] = opt.batches_per_step()
        assert seen == expected

    noisy = LABPAL([x], noise_factor=LABPAL.noise_factor_for(batch_size=32, dataset_size=40_000),  # = 4
                   estimator=estimator)
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


COSTS = {  # two batches per step: (forward, backward) passes of each phase, and the phases of six steps
    "code": ({DIRECTION: (6, 2), MEASURE: (6, 0), TRAIN: (2, 2)},
             [DIRECTION, MEASURE, MEASURE, MEASURE, TRAIN, DIRECTION]),
    "exact": ({DIRECTION: (2, 2), MEASURE: (6, 0), TRAIN: (2, 2)},
              [DIRECTION, MEASURE, MEASURE, TRAIN, TRAIN, DIRECTION]),
}


@pytest.mark.parametrize("estimator", ["code", "exact"])
def test_cost_of_each_phase_with_two_batches_per_step(estimator):
    """code: 4 x 2 batches measured, the direction's among them, then the move and 2 - 1 updates; exact: 4 more."""
    problem = LeastSquares(seed=1)
    opt = LABPAL([problem.w], noise_factor=2.0, approximation_batches=4, sgd_steps=2, estimator=estimator)
    opt.set_batch_source(problem.source)
    expected, sequence = COSTS[estimator]
    phases = []
    for _ in range(6):
        before = (problem.passes.forward, problem.passes.backward)
        opt.step(problem.closure(problem.draw()))
        phase = opt.diagnostics["phase"]
        phases.append(phase)
        assert (problem.passes.forward - before[0], problem.passes.backward - before[1]) == expected[phase]
        assert opt.diagnostics["evaluations"] == expected[phase][0]
        assert opt.diagnostics["batches"] == 2
    assert phases == sequence


@pytest.mark.parametrize("estimator", ["code", "exact"])
def test_training_step_averages_the_gradients_of_its_batches(estimator):
    problem = LeastSquares(dim=3, seed=4)
    opt = LABPAL([problem.w], noise_factor=2.0, approximation_batches=2, sgd_steps=5, s_max=100.0, estimator=estimator)
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


@pytest.mark.parametrize("estimator", ["code", "exact"])
def test_state_dict_round_trip_in_the_middle_of_a_line_search(estimator):
    problem = LeastSquares(seed=2)
    batches = [problem.draw() for _ in range(30)]
    settings = {"approximation_batches": 3, "sgd_steps": 4, "momentum": 0.4, "estimator": estimator, "alpha": 0.5,
                "untrusted_updates": 0, "averaged_estimates": 2}  # code: averaging from the second search on
    opt = LABPAL([problem.w], **settings)
    for batch in batches[:12]:  # two cycles, then a direction and one measurement
        opt.step(problem.closure(batch))
    assert opt.diagnostics["phase"] == MEASURE
    saved, w_saved = copy.deepcopy(opt.state_dict()), problem.w.detach().clone()
    for batch in batches[12:]:
        opt.step(problem.closure(batch))
    final = problem.w.detach().clone()

    with torch.no_grad():
        problem.w.copy_(w_saved)
    fresh = LABPAL([problem.w], **settings)
    fresh.load_state_dict(saved)
    for batch in batches[12:]:
        fresh.step(problem.closure(batch))
    assert torch.equal(problem.w.detach(), final)


@pytest.mark.parametrize(("estimator", "expected"), [("code", [(3, 1), (3, 0), (3, 1), (3, 0)]),
                                                   ("exact", [(1, 1), (3, 0), (3, 0), (1, 1)])])
def test_single_batch_costs_match_the_docstring(estimator, expected):
    x = torch.tensor(X0, requires_grad=True)
    passes = Passes()
    opt = LABPAL([x], approximation_batches=2, sgd_steps=1, estimator=estimator)
    closure = make_closure([x], quadratic(Q, [x]), passes)
    counts = []
    for _ in range(4):
        before = (passes.forward, passes.backward)
        opt.step(closure)
        counts.append((passes.forward - before[0], passes.backward - before[1]))
    assert counts == expected


@pytest.mark.parametrize("kwargs", [{"variant": "adam"}, {"alpha": 0.0}, {"sgd_steps": 0},
                                    {"batch_milestones": (0.5, 1.0)}, {"noise_factor": 0.0}, {"estimator": "paper"},
                                    {"averaged_estimates": 0}, {"untrusted_updates": -1},
                                    {"measuring_points": (1e-2, 1e-4)}])
def test_invalid_hyperparameters_raise(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        LABPAL([torch.zeros(1, requires_grad=True)], **kwargs)


# -- the published code's procedure (the default) ------------------------------------------------------------------


def test_the_two_estimators_against_numpy_on_measured_losses():
    rng = np.random.default_rng(0)
    s1, s2 = 1.77e-4, 1e-2
    for losses in rng.standard_normal((20, 3)):
        slopes = np.gradient(losses, [0.0, s1, s2])  # the authors' reading of the three points
        a, b = code_parabola(*losses, s1, s2)
        assert (a, b) == pytest.approx((np.gradient(slopes, [0.0, s1, s2])[0] / 2, slopes[0]), rel=1e-9)
        curvature, slope, offset = np.polyfit([0.0, s1, s2], losses, 2)  # the parabola through them
        assert offset == pytest.approx(losses[0], abs=1e-9)
        assert exact_parabola(*losses, s1, s2) == pytest.approx((curvature, slope), rel=1e-6)


@pytest.mark.parametrize("variant", ["sgd", "nsgd"])
def test_code_estimate_on_a_quadratic_is_twice_the_minimiser_less_s1_and_ends_with_a_move(variant):
    """On ``A s^2 + B s + C`` the code reads ``b = B + A s1`` and ``a = A / 2``, so ``s_min = 2 s* - s1``."""
    alpha, measured = 0.7, 3
    x = torch.tensor(X0, requires_grad=True)
    opt = LABPAL([x], variant=variant, alpha=alpha, approximation_batches=measured, sgd_steps=3, s_max=100.0)
    closure = make_closure([x], quadratic(Q, [x]))
    for phase in [DIRECTION] + [MEASURE] * (measured - 1):  # the direction's batch is one of the measured
        opt.step(closure)
        assert opt.diagnostics["phase"] == phase
    g = Q @ X0
    u = -g / np.linalg.norm(g)
    big_a, big_b = u @ Q @ u / 2, g @ u
    assert opt.diagnostics["slope"] == pytest.approx(big_b + big_a * H, rel=1e-6)
    assert opt.diagnostics["curvature"] == pytest.approx(big_a, rel=1e-5)  # 2a = A
    s_min = 2 * exact_step(X0) - H
    assert opt.diagnostics["s_min"] == pytest.approx(s_min, rel=1e-6)
    step, lr = alpha * s_min, alpha * s_min / np.linalg.norm(g)
    assert opt.diagnostics["estimate"] == pytest.approx(lr if variant == "sgd" else step, rel=1e-6)
    x1 = X0 + step * u  # the search's last step moves theta: an update
    np.testing.assert_allclose(flat([x]), x1, rtol=1e-6)
    assert opt.diagnostics["step_size"] == pytest.approx(step, rel=1e-6)
    assert opt.global_state["updates"] == 1

    g1 = Q @ x1
    x2 = x1 - (lr * g1 if variant == "sgd" else step * g1 / np.linalg.norm(g1))
    g2 = Q @ x2
    x3 = x2 - (lr * g2 if variant == "sgd" else step * g2 / np.linalg.norm(g2))
    for expected in (x2, x3):  # sgd_steps - 1 = 2 updates: with the move, 3 per cycle
        opt.step(closure)
        assert opt.diagnostics["phase"] == TRAIN
        np.testing.assert_allclose(flat([x]), expected, rtol=1e-6)
    opt.step(closure)
    assert opt.diagnostics["phase"] == DIRECTION and opt.global_state["updates"] == 3


def test_code_measures_the_direction_batches_among_the_others():
    problem = LeastSquares(dim=4, batch=8, noise=1.0, seed=9)
    batches = [problem.draw() for _ in range(5)]
    opt = LABPAL([problem.w], approximation_batches=5, s_max=100.0, alpha=1.0)
    for batch in batches:
        opt.step(problem.closure(batch))
    w0 = np.zeros(4)
    g = problem.gradient(batches[0], w0)
    u = -g / np.linalg.norm(g)
    mean_gradient = np.mean([problem.gradient(b, w0) for b in batches], axis=0)
    mean_hessian = np.mean([problem.hessian(b) for b in batches], axis=0)
    s_min = 2 * -(mean_gradient @ u) / (u @ mean_hessian @ u) - H
    assert opt.diagnostics["s_min"] == pytest.approx(s_min, rel=1e-6)
    assert opt.diagnostics["estimate"] == pytest.approx(s_min / np.linalg.norm(g), rel=1e-6)
    np.testing.assert_allclose(problem.w.detach().numpy(), s_min * u, rtol=1e-6)


def test_code_momentum_steers_the_line_but_one_batch_updates_along_its_gradient():
    beta, alpha = 0.5, 0.3
    x = torch.tensor(X0, requires_grad=True)
    opt = LABPAL([x], momentum=beta, alpha=alpha, approximation_batches=1, sgd_steps=3, s_max=100.0)
    closure = make_closure([x], quadratic(Q, [x]))
    opt.step(closure)  # direction, measured and fitted at once: the buffer starts as g
    lr = opt.diagnostics["estimate"]
    buffer, xs = Q @ X0, flat([x])
    for _ in range(2):
        g = Q @ xs
        buffer = beta * buffer + g
        xs = xs - lr * g  # the code's update with one batch: the gradient, not the buffer
        opt.step(closure)
        np.testing.assert_allclose(flat([x]), xs, rtol=1e-9)
        np.testing.assert_allclose(opt.state[x]["momentum_buffer"].numpy(), buffer, rtol=1e-9)
    g = Q @ xs
    buffer = beta * buffer + g  # the next line runs along -buffer
    u = -buffer / np.linalg.norm(buffer)
    s_min = 2 * -(g @ u) / (u @ Q @ u) - H
    opt.step(closure)
    assert opt.diagnostics["phase"] == DIRECTION and opt.diagnostics["s_min"] == pytest.approx(s_min, rel=1e-6)
    np.testing.assert_allclose(flat([x]), xs + alpha * s_min * u, rtol=1e-6)


def test_code_refuses_a_line_whose_norm_is_out_of_range_once_it_has_an_estimate():
    x = torch.tensor([1.0], dtype=torch.float64, requires_grad=True)
    opt = LABPAL([x], approximation_batches=1, sgd_steps=2, s_max=100.0, alpha=0.25)
    steep, gentle = make_closure([x], lambda: 500 * (x**2).sum()), make_closure([x], lambda: 0.5 * (x**2).sum())
    opt.step(steep)  # ||g|| = 1000 > 100, but without an estimate the code would crash: measured anyway
    s_min = 2 * 1.0 - H  # s* = |x| = 1 along -sign(x), whatever the scale of the loss
    assert opt.diagnostics["s_min"] == pytest.approx(s_min, rel=1e-6)
    x1, estimate = 1.0 - 0.25 * s_min, opt.diagnostics["estimate"]
    assert estimate == pytest.approx(0.25 * s_min / 1000, rel=1e-6)
    assert x.item() == pytest.approx(x1, rel=1e-6)
    opt.step(gentle)  # the one training update of the cycle
    x2 = x1 - estimate * x1
    assert opt.diagnostics["phase"] == TRAIN and x.item() == pytest.approx(x2, rel=1e-6)
    before = x.item()
    opt.step(steep)  # ||g|| = 1000 |x2| ~ 500 > 100: refused, nothing moves, the estimate stays
    assert opt.diagnostics["phase"] == DIRECTION and opt.diagnostics["evaluations"] == 1
    assert x.item() == before and opt.diagnostics["estimate"] == estimate
    opt.step(gentle)  # the search is still due: a new line, measured and moved along
    assert opt.diagnostics["phase"] == DIRECTION and opt.diagnostics["s_min"] == pytest.approx(2 * x2 - H, rel=1e-6)
    assert opt.diagnostics["estimate"] == pytest.approx(0.25 * (2 * x2 - H) / x2, rel=1e-6)
    assert opt.global_state["updates"] == 3


def test_code_a_failed_fit_still_moves_by_the_previous_step():
    x = torch.tensor([1.0], dtype=torch.float64, requires_grad=True)
    opt = LABPAL([x], approximation_batches=1, sgd_steps=1, s_max=100.0)
    concave = make_closure([x], lambda: -(x**2).sum())
    convex = make_closure([x], lambda: (x**2).sum())
    opt.step(concave)  # no estimate yet: back to theta, search again
    assert opt.diagnostics["phase"] == DIRECTION and x.item() == 1.0 and np.isnan(opt.diagnostics["estimate"])
    assert opt.global_state["phase"] == DIRECTION
    opt.step(convex)  # l(s) = (1 - s)^2: s* = 1, s_min = 2 - H, step 1.8 s_min
    step = 1.8 * (2 - H)
    assert x.item() == pytest.approx(1 - step, rel=1e-6)
    opt.step(concave)  # the line is concave: the fit fails, the move uses the previous step, along +1 now
    assert x.item() == pytest.approx(1 - 2 * step, rel=1e-6)
    assert opt.diagnostics["step_size"] == pytest.approx(step, rel=1e-6) and opt.global_state["updates"] == 2


# (variant, momentum, t_max, whether some fits fail): the milestone t_max / 2 falls on a training step in each run,
# where the code applies it
REFERENCE_RUNS = [("sgd", 0.0, 100, False), ("nsgd", 0.5, 96, False), ("sgd", 0.5, 96, True), ("nsgd", 0.0, 100, True)]


@pytest.mark.parametrize(("variant", "momentum", "t_max", "failures"), REFERENCE_RUNS)
def test_code_estimator_follows_the_published_code_update_for_update(variant, momentum, t_max, failures):
    """80 steps against labpal_reference fed the same batches: 12 or 13 searches with their moves, a fit at the
    last untrusted update and a search at once after it, averaging over a sliding window of 2, failed fits, and the
    switch to k = int(1.3 * 2) = 2 (round would give 3) that starts a search; the batches the code leaves unused at
    the end of k = 2 cycles are fed to it alone."""
    settings = {"alpha": 0.5, "momentum": momentum, "noise_factor": 1.3}
    problem = LeastSquares(dim=4, batch=8, noise=0.1, seed=5)  # little noise: the finite differences round less
    opt = LABPAL([problem.w], variant=variant, sgd_steps=5, approximation_batches=3, untrusted_updates=4,
                 averaged_estimates=2, batch_milestones=(0.5,), total_steps=t_max, **settings)
    opt.set_batch_source(problem.source)
    reference = CodeLabPal(problem, mode=variant.upper(), reuse=5, approximation=3, untrusted=4, window=2,
                           schedule=((0, 1), (t_max // 2, 2)), **settings)
    unused = 0
    for _ in range(80):
        start = len(problem.drawn)
        opt.step(problem.closure(problem.draw()))
        for batch in problem.drawn[start:]:
            while reference.wastes_next_call():
                reference.step(np.arange(8))
                unused += 1
            reference.step(batch)
        w = problem.w.detach().numpy()
        np.testing.assert_allclose(w, reference.w, rtol=0, atol=1e-6 * np.abs(reference.w).max())
        assert opt.global_state.get("updates", 0) == reference.updates + 1
        if reference.step_size is not None:
            assert (opt.global_state["step"], opt.global_state["lr"]) == pytest.approx(
                (reference.step_size, reference.lr), rel=1e-6)
            a, b = reference.fits[-1]
            assert (opt.diagnostics["curvature"], opt.diagnostics["slope"]) == pytest.approx((2 * a, b), rel=1e-6)
    assert opt.global_state["k"] == reference.k == 2 and unused > 0
    assert len(reference.fits) >= 12 and len(reference.steps_seen) > 2
    assert any(b >= 0 or a <= 0 for a, b in reference.fits) == failures
