"""The problems that need no files against their definitions: quadratics, 2-D functions, digits."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from jobs.problems.base import SPLITS
from jobs.problems.digits import SPLIT_SIZES, DigitsMLP, bundled_digits
from jobs.problems.functions import Beale, Branin, Himmelblau, Rosenbrock
from jobs.problems.quadratic import NoisyQuadratic, Quadratic, QuadraticDeep, deep_spectrum_hessian

CPU, F64 = torch.device("cpu"), torch.float64


def test_quadratic_deep_spectrum_is_deepobs():
    hessian = deep_spectrum_hessian()
    assert np.allclose(hessian, hessian.T, atol=1e-12)
    eigenvalues = np.sort(np.linalg.eigvalsh(hessian))
    assert ((eigenvalues[:90] > 0) & (eigenvalues[:90] < 1)).all()
    assert ((eigenvalues[90:] > 30) & (eigenvalues[90:] < 60)).all()
    assert np.array_equal(hessian, deep_spectrum_hessian()), "the Hessian is part of the problem: fixed"


def test_quadratic_deep_loss_is_the_closed_form():
    problem = QuadraticDeep(batch_size=128, device=CPU, dtype=F64)
    q = problem.model.hessian.numpy()
    x = problem.splits["test"].inputs.numpy()
    theta = np.ones(100)
    expected = np.mean([0.5 * (theta - xi) @ q @ (theta - xi) for xi in x])
    assert problem.evaluate("test")["loss"] == pytest.approx(expected, rel=1e-12)
    # the data splits: 1000 noisy points each, std 0.6, different draws
    assert problem.splits["train"].inputs.std().item() == pytest.approx(0.6, rel=0.02)
    assert not torch.equal(problem.splits["train"].inputs, problem.splits["test"].inputs)
    assert problem.steps_per_epoch() == 1000 // 128


def test_digits_are_scikit_learns_and_splits_are_fixed_and_disjoint():
    from sklearn.datasets import load_digits

    images, labels = bundled_digits()
    reference = load_digits()
    assert np.array_equal(images, reference.data) and np.array_equal(labels, reference.target)

    problem = DigitsMLP(64, CPU, F64, hidden=32, layers=2, dropout=0.0, weight_decay=0.0)
    rows = {split: {tuple(r) for r in problem.splits[split].inputs.numpy()} for split in SPLITS}
    assert {s: len(problem.splits[s]) for s in SPLITS} == SPLIT_SIZES
    # disjoint as index sets: sizes add up to the whole data set
    assert sum(SPLIT_SIZES.values()) == len(labels)
    again = DigitsMLP(64, CPU, F64, hidden=32, layers=2, dropout=0.0, weight_decay=0.0)
    assert all(torch.equal(problem.splits[s].inputs, again.splits[s].inputs) for s in SPLITS)
    assert len(rows["train"]) > 1000


def test_digits_parameter_count_and_weight_decay():
    problem = DigitsMLP(64, CPU, F64, hidden=16, layers=2, dropout=0.0, weight_decay=0.1)
    assert sum(p.numel() for p in problem.model.parameters()) == (64 * 16 + 16) + (16 * 16 + 16) + (16 * 10 + 10)
    weights = [m.weight for m in problem.model if isinstance(m, torch.nn.Linear)]
    expected = 0.05 * sum(float((w.detach() ** 2).sum()) for w in weights)
    assert float(problem.regularizer().detach()) == pytest.approx(expected)


def test_rosenbrock_value_and_gradient():
    problem = Rosenbrock(1, CPU, F64, start=(-1.2, 1.0), steps_per_epoch=5)
    loss = problem.batch_loss(None)
    loss.backward()
    x, y = -1.2, 1.0
    assert loss.item() == pytest.approx((1 - x) ** 2 + 100 * (y - x * x) ** 2)
    grad = problem.model.xy.grad.numpy()
    assert grad == pytest.approx([-2 * (1 - x) - 400 * x * (y - x * x), 200 * (y - x * x)])
    assert len(list(problem.train_batches(torch.Generator()))) == 5


@pytest.mark.parametrize("problem", [
    QuadraticDeep(128, CPU, F64),
    DigitsMLP(64, CPU, F64, hidden=32, layers=1, dropout=0.0, weight_decay=0.0),
    Rosenbrock(1, CPU, F64, start=(-1.2, 1.0), steps_per_epoch=5),
], ids=["quadratic_deep", "digits_mlp", "rosenbrock"])
def test_a_few_sgd_steps_lower_the_training_loss(problem):
    torch.manual_seed(0)
    optimizer = torch.optim.SGD(problem.model.parameters(), lr=1e-3)
    before = problem.evaluate("train")["loss"]
    for batch in list(problem.train_batches(torch.Generator().manual_seed(0)))[:5]:
        optimizer.zero_grad()
        problem.batch_loss(batch).backward()
        optimizer.step()
    assert problem.evaluate("train")["loss"] < before


@pytest.mark.parametrize(("cls", "minima", "value"), [
    (Rosenbrock, [(1.0, 1.0)], 0.0),
    (Beale, [(3.0, 0.5)], 0.0),
    (Himmelblau, [(3.0, 2.0), (-2.805118, 3.131312), (-3.779310, -3.283186), (3.584428, -1.848126)], 0.0),
    (Branin, [(-np.pi, 12.275), (np.pi, 2.275), (9.42478, 2.475)], 0.397887),
])
def test_2d_functions_have_their_known_minima(cls, minima, value):
    for point in minima:
        problem = cls(1, CPU, F64, start=point, steps_per_epoch=1)
        loss = problem.batch_loss(None)
        loss.backward()
        assert loss.item() == pytest.approx(value, abs=1e-5)
        assert np.abs(problem.model.xy.grad.numpy()).max() < 1e-3
        assert {problem.evaluate(s)["loss"] for s in SPLITS} == {loss.item()}


def test_quadratic_has_the_chosen_condition_and_gradient_descent_contracts_at_the_known_rate():
    kappa = 50.0
    problem = Quadratic(1, CPU, F64, dim=20, condition_number=kappa, rotate=True, steps_per_epoch=4)
    q = problem.model.hessian.numpy()
    eigenvalues = np.linalg.eigvalsh(q)
    assert eigenvalues.min() == pytest.approx(1 / kappa) and eigenvalues.max() == pytest.approx(1.0)
    assert np.abs(q - np.diag(np.diag(q))).max() > 1e-3, "rotated: not axis-aligned"
    optimizer = torch.optim.SGD(problem.model.parameters(), lr=2 / (1 + 1 / kappa))
    start = problem.model.theta.detach().norm().item()
    steps = 60
    for _ in range(steps):
        optimizer.zero_grad()
        problem.batch_loss(None).backward()
        optimizer.step()
    rate = (kappa - 1) / (kappa + 1)
    # every eigencomponent contracts by |1 - λh| <= (κ-1)/(κ+1); the extreme ones exactly at that rate
    assert problem.model.theta.detach().norm().item() <= rate**steps * start * (1 + 1e-9)
    assert problem.model.theta.detach().norm().item() >= 0.1 * rate**steps * start


def test_noisy_quadratic_batches_estimate_its_expected_loss():
    problem = NoisyQuadratic(256, CPU, F64, dim=5, condition_number=10.0, rotate=True, noise=0.7, steps_per_epoch=50)
    batches = list(problem.train_batches(torch.Generator().manual_seed(0)))
    assert len(batches) == problem.steps_per_epoch() == 50 and batches[0].shape == (256, 5)
    samples = torch.cat(batches)
    # x ~ N(0, σ² Q⁻¹): its covariance times Q is σ² I
    covariance = samples.T @ samples / len(samples)
    assert np.allclose((covariance @ problem.model.hessian).numpy(), 0.49 * np.eye(5), atol=0.03)
    with torch.no_grad():
        estimate = np.mean([problem.batch_loss(b).item() for b in batches])
    theta = problem.model.theta.detach()
    exact = 0.5 * float(theta @ problem.model.hessian @ theta) + 0.5 * 0.49 * 5
    assert problem.evaluate("test")["loss"] == pytest.approx(exact)
    assert estimate == pytest.approx(exact, rel=0.03)
