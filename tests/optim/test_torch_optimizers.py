"""torch.optim through the registry: trajectories against the update rules written out by hand."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import yaml

from jobs.optim.registry import OPTIMIZERS, build_optimizer

CONF = Path(__file__).resolve().parents[2] / "conf" / "optimizer"
C = np.array([1.0, 3.0, 10.0, 0.5])  # f(x) = 1/2 sum c x^2, gradient c * x exactly
X0 = np.array([1.0, -0.7, 0.3, 2.0])
# torch's CPU kernels may fuse ``x + alpha * v`` into one multiply-add. With
# power-of-two factors the product is exact, so fused and unfused rounding
# agree and a bitwise comparison with the update written out holds anywhere.
LR = 2.0**-4


def from_yaml(name: str, **override) -> dict:
    config = yaml.safe_load((CONF / f"{name}.yaml").read_text())
    return OPTIMIZERS.validate({**config, **override})


def torch_trajectory(config: dict, steps: int, loss_of=None) -> list[np.ndarray]:
    x = torch.tensor(X0, requires_grad=True)
    c = torch.from_numpy(C)
    optimizer = build_optimizer(config, [x])
    out = []
    for _ in range(steps):
        optimizer.zero_grad()
        (loss_of(x) if loss_of else 0.5 * (c * x * x).sum()).backward()
        optimizer.step()
        out.append(x.detach().numpy().copy())
    return out


def test_sgd_is_plain_gradient_descent_bitwise():
    lr = LR
    x, expected = X0.copy(), []
    for _ in range(10):
        x = x - lr * (C * x)
        expected.append(x)
    actual = torch_trajectory(from_yaml("sgd", lr=lr), 10)
    assert all(np.array_equal(a, e) for a, e in zip(actual, expected, strict=True))


def test_heavy_ball_momentum_bitwise():
    lr, beta = LR, 0.9  # torch multiplies the buffer by beta on its own: no fusion
    x, v, expected = X0.copy(), np.zeros_like(X0), []
    for _ in range(10):
        v = beta * v + C * x
        x = x - lr * v
        expected.append(x)
    actual = torch_trajectory(from_yaml("momentum", lr=lr), 10)
    assert all(np.array_equal(a, e) for a, e in zip(actual, expected, strict=True))


def test_nesterov_momentum_bitwise():
    lr, beta = LR, 0.5  # g + beta * v may be fused, so beta is a power of two too
    x, v, expected = X0.copy(), np.zeros_like(X0), []
    for _ in range(10):
        g = C * x
        v = beta * v + g
        x = x - lr * (g + beta * v)
        expected.append(x)
    actual = torch_trajectory(from_yaml("nesterov", lr=lr, momentum=beta), 10)
    assert all(np.array_equal(a, e) for a, e in zip(actual, expected, strict=True))


def test_adam_matches_bias_corrected_update():
    lr, (b1, b2), eps = 0.01, (0.9, 0.999), 1e-8
    x, m, v, expected = X0.copy(), np.zeros_like(X0), np.zeros_like(X0), []
    for t in range(1, 11):
        g = C * x
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        x = x - lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
        expected.append(x)
    actual = torch_trajectory(from_yaml("adam", lr=lr), 10)
    np.testing.assert_allclose(np.array(actual), np.array(expected), rtol=1e-12, atol=1e-15)


def test_gd_with_optimal_step_contracts_by_condition_number():
    kappa, n = 20.0, 6
    rng = np.random.default_rng(0)
    basis, _ = np.linalg.qr(rng.standard_normal((n, n)))
    eigenvalues = np.geomspace(1.0, kappa, n)
    q = torch.from_numpy(basis @ np.diag(eigenvalues) @ basis.T)
    lr = 2.0 / (eigenvalues.max() + eigenvalues.min())
    rate = (kappa - 1) / (kappa + 1)

    x = torch.tensor(rng.standard_normal(n), requires_grad=True)
    optimizer = build_optimizer(from_yaml("sgd", lr=lr), [x])
    error = x.norm().item()
    for _ in range(30):
        optimizer.zero_grad()
        (0.5 * x @ q @ x).backward()
        optimizer.step()
        new_error = x.norm().item()
        assert new_error <= rate * error * (1 + 1e-12)
        error = new_error


def test_momentum_with_zero_beta_is_plain_sgd_bitwise():
    plain = torch_trajectory(from_yaml("sgd", lr=LR), 10)
    for name in ("momentum", "nesterov"):
        with_zero = torch_trajectory(from_yaml(name, lr=LR, momentum=0.0, nesterov=False), 10)
        assert all(np.array_equal(a, b) for a, b in zip(with_zero, plain, strict=True))


def test_adagrad_accumulates_squared_gradients():
    lr, eps = 0.1, 1e-10
    x, r, expected = X0.copy(), np.zeros_like(X0), []
    for _ in range(10):
        g = C * x
        r = r + g * g
        x = x - lr * g / (np.sqrt(r) + eps)
        expected.append(x)
    actual = torch_trajectory(from_yaml("adagrad", lr=lr), 10)
    np.testing.assert_allclose(np.array(actual), np.array(expected), rtol=1e-12, atol=1e-15)


def test_rmsprop_averages_squared_gradients():
    lr, rho, eps = 0.01, 0.9, 1e-8
    x, r, expected = X0.copy(), np.zeros_like(X0), []
    for _ in range(10):
        g = C * x
        r = rho * r + (1 - rho) * g * g
        x = x - lr * g / (np.sqrt(r) + eps)
        expected.append(x)
    actual = torch_trajectory(from_yaml("rmsprop", lr=lr), 10)
    np.testing.assert_allclose(np.array(actual), np.array(expected), rtol=1e-12, atol=1e-15)


def test_adamw_decays_weights_apart_from_the_gradient():
    lr, (b1, b2), eps, wd = 0.01, (0.9, 0.999), 1e-8, 0.1
    x, m, v, expected = X0.copy(), np.zeros_like(X0), np.zeros_like(X0), []
    for t in range(1, 11):
        g = C * x  # the gradient of the loss alone: the decay is not in it
        x = x * (1 - lr * wd)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        x = x - lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
        expected.append(x)
    actual = torch_trajectory(from_yaml("adamw", lr=lr, weight_decay=wd), 10)
    np.testing.assert_allclose(np.array(actual), np.array(expected), rtol=1e-12, atol=1e-15)


def test_heavy_ball_with_tuned_parameters_contracts_by_root_condition_number():
    # Polyak: lr = 4 / (sqrt(L) + sqrt(mu))^2, beta = ((sqrt(k) - 1) / (sqrt(k) + 1))^2 gives the
    # asymptotic rate (sqrt(k) - 1) / (sqrt(k) + 1), far better than GD's (k - 1) / (k + 1).
    kappa, n = 100.0, 6
    rng = np.random.default_rng(1)
    basis, _ = np.linalg.qr(rng.standard_normal((n, n)))
    eigenvalues = np.geomspace(1.0, kappa, n)
    q = torch.from_numpy(basis @ np.diag(eigenvalues) @ basis.T)
    root = math.sqrt(kappa)
    rate = (root - 1) / (root + 1)
    lr = 4.0 / (math.sqrt(eigenvalues.max()) + math.sqrt(eigenvalues.min())) ** 2
    x = torch.tensor(rng.standard_normal(n), requires_grad=True)
    optimizer = build_optimizer(from_yaml("momentum", lr=lr, momentum=rate**2), [x])
    errors = []
    for _ in range(300):
        optimizer.zero_grad()
        (0.5 * x @ q @ x).backward()
        optimizer.step()
        errors.append(x.norm().item())
    # With double eigenvalues at the extremes the error behaves like t * rate^t: measure between t=100 and 300.
    observed = (errors[299] / errors[99]) ** (1 / 200)
    assert rate * 0.995 <= observed <= rate * 1.01
    assert observed < 0.9 * (kappa - 1) / (kappa + 1)  # GD with its best step: 0.98
