"""Today's baselines (NAdamW, RAdam, Adafactor, Lion, SOAP, Shampoo) against their papers' rules, worked by hand.

Each test steps the registered optimizer on f(θ) = ½ Σ c ⊙ θ², whose gradient c ⊙ θ is exact, and repeats the
steps in numpy from the paper's formulas.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from optim_support import make_closure

from jobs.optim.registry import OPTIMIZERS, build_optimizer
from jobs.schema import SpecError

CONF = Path(__file__).resolve().parents[2] / "conf" / "optimizer"
RNG = np.random.default_rng(7)
C_MATRIX = np.array([[1.0, 3.0, 0.5], [2.0, 0.25, 4.0]])  # curvatures of a 2 × 3 weight
W0 = RNG.standard_normal((2, 3))
C_VECTOR = np.array([1.0, 3.0, 10.0, 0.5])
X0 = np.array([1.0, -0.7, 0.3, 2.0])


def config(name: str, **override) -> dict:
    return OPTIMIZERS.validate({**yaml.safe_load((CONF / f"{name}.yaml").read_text()), **override})


def trajectory(config: dict, starts: list[np.ndarray], curvatures: list[np.ndarray], steps: int):
    """The parameters after each of ``steps`` steps of ``config`` on f = ½ Σ c θ² (one list per step)."""
    params = [torch.tensor(x, requires_grad=True) for x in starts]
    cs = [torch.from_numpy(c) for c in curvatures]
    optimizer = build_optimizer(config, params)
    closure = make_closure(params, lambda: sum(0.5 * (c * p * p).sum() for c, p in zip(cs, params, strict=True)))
    out = []
    for _ in range(steps):
        optimizer.step(closure)
        out.append([p.detach().numpy().copy() for p in params])
    return out


def assert_trajectories(actual, expected, rtol=1e-12, atol=1e-15):
    for got, want in zip(actual, expected, strict=True):
        for g, w in zip(got, want, strict=True):
            np.testing.assert_allclose(g, w, rtol=rtol, atol=atol)


# -- torch.optim ------------------------------------------------------------------------------------------------
def test_nadamw_is_dozats_nadam_with_decoupled_decay():
    lr, (b1, b2), eps, wd, psi = 0.01, (0.9, 0.999), 1e-8, 0.1, 0.004
    x, m, v, product, expected = X0.copy(), 0 * X0, 0 * X0, 1.0, []
    for t in range(1, 4):
        g = C_VECTOR * x
        mu, mu_next = (b1 * (1 - 0.5 * 0.96 ** (s * psi)) for s in (t, t + 1))
        product *= mu
        x = x * (1 - lr * wd)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat = mu_next * m / (1 - product * mu_next) + (1 - mu) * g / (1 - product)
        x = x - lr * m_hat / (np.sqrt(v / (1 - b2**t)) + eps)
        expected.append([x])
    actual = trajectory(config("nadamw", lr=lr, betas=[b1, b2], weight_decay=wd), [X0], [C_VECTOR], 3)
    assert_trajectories(actual, expected, rtol=1e-8)  # torch keeps the product of the mu_t in float32


def test_nadamw_yaml_holds_algoperfs_hyperparameters():
    nadamw = config("nadamw")
    assert nadamw["decoupled_weight_decay"] is True
    assert nadamw["lr"] == pytest.approx(0.0017486387539278373)
    assert 1 - nadamw["betas"][0] == pytest.approx(0.06733926164)


def test_radam_steps_like_momentum_sgd_until_the_variance_is_tractable_then_rectifies():
    lr, (b1, b2), eps = 0.01, (0.9, 0.999), 1e-8
    rho_inf = 2 / (1 - b2) - 1
    x, m, v, expected, rectified = X0.copy(), 0 * X0, 0 * X0, [], []
    for t in range(1, 8):
        g = C_VECTOR * x
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat = m / (1 - b1**t)
        rho = rho_inf - 2 * t * b2**t / (1 - b2**t)
        rectified.append(rho > 5)  # the paper says 4; torch and the authors' code switch above 5
        if rho > 5:
            r = np.sqrt((rho - 4) * (rho - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho))
            x = x - lr * m_hat * r * np.sqrt(1 - b2**t) / (np.sqrt(v) + eps)
        else:
            x = x - lr * m_hat
        expected.append([x])
    assert rectified == [False] * 5 + [True] * 2  # both branches are exercised
    assert_trajectories(trajectory(config("radam", lr=lr), [X0], [C_VECTOR], 7), expected)


def test_adafactor_factors_the_second_moment_and_clips_the_update():
    lr, d, eps2 = 0.01, 1.0, 1e-3
    w, b = W0.copy(), X0.copy()
    row, col, vec, expected, clipped = np.zeros(2), np.zeros(3), np.zeros(4), [], []
    for t in range(1, 4):
        beta2 = 1 - t**-0.8
        rho = min(lr, 1 / np.sqrt(t))
        new = []
        for x, c in ((w, C_MATRIX), (b, C_VECTOR)):
            g = c * x
            alpha = max(eps2, np.sqrt(np.mean(x * x))) * rho
            if x.ndim == 2:  # row and column sums of G², V = R C / (1ᵀ R)
                row = beta2 * row + (1 - beta2) * (g * g).sum(axis=1)
                col = beta2 * col + (1 - beta2) * (g * g).sum(axis=0)
                second = np.outer(row, col) / row.sum()
            else:
                vec = beta2 * vec + (1 - beta2) * g * g
                second = vec
            u = g / np.sqrt(second)
            scale = max(1.0, np.sqrt(np.mean(u * u)) / d)
            clipped.append(scale > 1)
            new.append(x - alpha * u / scale)
        w, b = new
        expected.append([w, b])
    assert any(clipped) and not all(clipped)
    actual = trajectory(config("adafactor", lr=lr, d=d), [W0, X0], [C_MATRIX, C_VECTOR], 3)
    assert_trajectories(actual, expected)


# -- pytorch-optimizer ------------------------------------------------------------------------------------------
def test_lion_takes_the_sign_of_interpolated_momentum():
    lr, (b1, b2), wd = 0.01, (0.9, 0.99), 0.5
    x, m, expected = X0.copy(), 0 * X0, []
    for _ in range(3):
        g = C_VECTOR * x
        c = b1 * m + (1 - b1) * g
        x = x - lr * (np.sign(c) + wd * x)
        m = b2 * m + (1 - b2) * g
        expected.append([x])
    actual = trajectory(config("lion", lr=lr, betas=[b1, b2], weight_decay=wd), [X0], [C_VECTOR], 3)
    assert_trajectories(actual, expected)


def qr32(matrix: np.ndarray) -> np.ndarray:
    """Q of a QR decomposition taken in float32, as pytorch-optimizer's SOAP takes it (the authors' code does not)."""
    return np.linalg.qr(matrix.astype(np.float32))[0].astype(np.float64)


def test_soap_runs_adam_in_the_eigenbasis_of_shampoos_factors():
    # Gradients given outright (the loss is linear, sum G_t * W): unlike the quadratic's, they are not aligned
    # with the factors' eigenbasis, whose weak directions would magnify rounding in the projections.
    lr, (b1, b2), eps, wd, every = 0.01, (0.9, 0.95), 1e-8, 0.1, 2
    grads = RNG.standard_normal((4, 2, 3))
    w = W0.copy()
    left, right = np.zeros((2, 2)), np.zeros((3, 3))
    q_left, q_right = np.eye(2), np.eye(3)  # set from the first gradient before any use
    m, v, expected = np.zeros((2, 3)), np.zeros((2, 3)), []
    for call, g in enumerate(grads, 1):
        if call > 1:  # the first call only starts the factors (the authors' code): the projection never sees g_t
            s = call - 1
            m = b1 * m + (1 - b1) * g  # the first moment stays in the original basis
            v = b2 * v + (1 - b2) * (q_left.T @ g @ q_right) ** 2
            adam = (q_left.T @ m @ q_right) / (np.sqrt(v) + eps)
            w = w - lr * np.sqrt(1 - b2**s) / (1 - b1**s) * (q_left @ adam @ q_right.T)
            w = w * (1 - lr * wd)
        left = b2 * left + (1 - b2) * g @ g.T  # shampoo_beta null: beta2
        right = b2 * right + (1 - b2) * g.T @ g
        if call == 1:
            q_left, q_right = np.linalg.eigh(left)[1], np.linalg.eigh(right)[1]
        elif (call - 1) % every == 0:  # refresh: one power iteration and QR, columns by estimated eigenvalue
            order = np.argsort(-np.diag(q_left.T @ left @ q_left))
            v, q_left = v[order, :], qr32((left @ q_left)[:, order])
            order = np.argsort(-np.diag(q_right.T @ right @ q_right))
            v, q_right = v[:, order], qr32((right @ q_right)[:, order])
        expected.append(w)

    weight = torch.tensor(W0, requires_grad=True)
    soap = build_optimizer(config("soap", lr=lr, betas=[b1, b2], weight_decay=wd, precondition_frequency=every),
                           [weight])
    for g, want in zip(grads, expected, strict=True):
        soap.step(make_closure([weight], lambda g=g: (torch.from_numpy(g) * weight).sum()))
        # float32 QR on both sides, rounded apart: agreement to float32's precision after the refresh
        np.testing.assert_allclose(weight.detach().numpy(), want, rtol=1e-7, atol=1e-9)
    np.testing.assert_array_equal(expected[0], W0)


# -- Shampoo (ours) ---------------------------------------------------------------------------------------------
def _root(matrix: np.ndarray, power: float) -> np.ndarray:
    values, vectors = np.linalg.eigh(matrix)
    return vectors @ np.diag(values ** (-1 / power)) @ vectors.T


def shampoo_by_hand(steps: int, lr: float, eps: float, update_every: int = 1, max_dim: int = 1024):
    """The paper's Algorithms 1 (matrix: L^-1/4 G R^-1/4) and 2 (vector, order 1: H^-1/2 g), stale roots between.

    A dimension above ``max_dim`` keeps the identity for its root.
    """
    w, b = W0.copy(), X0.copy()
    left, right, vector = eps * np.eye(2), eps * np.eye(3), eps * np.eye(4)
    expected = []
    for t in range(1, steps + 1):
        gw, gb = C_MATRIX * w, C_VECTOR * b
        left, right, vector = left + gw @ gw.T, right + gw.T @ gw, vector + np.outer(gb, gb)
        if (t - 1) % update_every == 0:
            roots = [_root(h, power) if len(h) <= max_dim else np.eye(len(h))
                     for h, power in ((left, 4), (right, 4), (vector, 2))]
        w = w - lr * roots[0] @ gw @ roots[1]
        b = b - lr * roots[2] @ gb
        expected.append([w, b])
    return expected


@pytest.mark.parametrize(("update_every", "max_dim"), [(1, 1024), (2, 1024), (1, 2)],
                         ids=["the paper's rule", "stale roots", "large dimension left out"])
def test_shampoo_preconditions_each_dimension_by_its_factors_inverse_root(update_every, max_dim):
    lr, eps = 0.1, 0.1
    expected = shampoo_by_hand(3, lr, eps, update_every, max_dim)
    shampoo = config("shampoo", lr=lr, eps=eps, update_every=update_every, max_dim=max_dim)
    actual = trajectory(shampoo, [W0, X0], [C_MATRIX, C_VECTOR], 3)
    assert_trajectories(actual, expected, rtol=1e-10, atol=1e-13)


def test_shampoo_variants_differ_from_the_paper_where_they_should():
    paper = shampoo_by_hand(3, 0.1, 0.1)
    stale = shampoo_by_hand(3, 0.1, 0.1, update_every=2)
    assert np.array_equal(paper[0][0], stale[0][0])  # both compute roots at step 1
    assert not np.allclose(paper[1][0], stale[1][0])  # step 2 reuses step 1's roots


def test_shampoo_decays_weights_apart_from_the_preconditioned_step():
    lr, wd = 0.1, 0.5
    plain = trajectory(config("shampoo", lr=lr), [X0], [C_VECTOR], 1)[0][0]
    decayed = trajectory(config("shampoo", lr=lr, weight_decay=wd), [X0], [C_VECTOR], 1)[0][0]
    np.testing.assert_allclose(decayed, plain - lr * wd * X0, rtol=1e-12)


# -- the registry's side ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "override", "key"), [
    ("nadamw", {"momentum_decay": -1.0}, "optimizer.momentum_decay"),
    ("radam", {"decoupled_weight_decay": "yes"}, "optimizer.decoupled_weight_decay"),
    ("adafactor", {"beta2_decay": 0.5}, "optimizer.beta2_decay"),
    ("lion", {"betas": [0.9, 1.0]}, "optimizer.betas[1]"),
    ("soap", {"precondition_frequency": 0}, "optimizer.precondition_frequency"),
    ("soap", {"shampoo_beta": 1.0}, "optimizer.shampoo_beta"),
    ("shampoo", {"update_every": 0}, "optimizer.update_every"),
    ("shampoo", {"max_dim": 2.5}, "optimizer.max_dim"),
    ("muon", {"adjust_lr_fn": "spectral"}, "optimizer.adjust_lr_fn"),
    ("muon", {"adamw_betas": [0.9]}, "optimizer.adamw_betas"),
])
def test_bad_values_name_the_key_in_one_sentence(name, override, key):
    with pytest.raises(SpecError) as error:
        config(name, **override)
    message = str(error.value)
    assert message.startswith(key) and message.endswith(".") and ". " not in message
