"""Curvature products against explicit matrices built independently (float64).

The references never go through jobs.curvature: Hessians come from
``torch.autograd.functional.hessian`` of a function of the flat parameter
vector, Jacobians from ``torch.autograd.functional.jacobian``, the
cross-entropy's output Hessian from its closed form diag(p) − ppᵀ, and
Fisher matrices from per-example parameter gradients.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from jobs.curvature import (
    Categorical,
    Fisher,
    GaussNewton,
    Hessian,
    SupervisedClosure,
    curvature_operator,
    flat,
    hvp_forward_over_reverse,
    unflat,
)

F64 = torch.float64
BATCH, INPUTS, HIDDEN, CLASSES = 7, 3, 4, 3
WEIGHT_DECAY = 0.1


def cross_entropy(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(outputs, targets, reduction="none")


class Setup:
    """A tanh MLP with an L2 penalty on its weight matrices, and a pure function of its flat parameters."""

    def __init__(self, seed: int = 0):
        torch.manual_seed(seed)
        self.model = nn.Sequential(nn.Linear(INPUTS, HIDDEN), nn.Tanh(), nn.Linear(HIDDEN, CLASSES)).to(F64)
        self.inputs = torch.randn(BATCH, INPUTS, dtype=F64)
        self.targets = torch.randint(0, CLASSES, (BATCH,))
        self.params = list(self.model.parameters())
        self.names = [name for name, _ in self.model.named_parameters()]
        self.theta = flat([p.detach() for p in self.params])
        self.closure = SupervisedClosure(self.model, self.inputs, self.targets, cross_entropy,
                                         regularizer=self.penalty)

    def penalty(self) -> torch.Tensor:
        return 0.5 * WEIGHT_DECAY * (self.model[0].weight.pow(2).sum() + self.model[2].weight.pow(2).sum())

    def outputs_at(self, theta: torch.Tensor) -> torch.Tensor:
        tensors = dict(zip(self.names, unflat(theta, self.params), strict=True))
        return torch.func.functional_call(self.model, tensors, (self.inputs,))

    def objective_at(self, theta: torch.Tensor) -> torch.Tensor:
        weights = unflat(theta, self.params)
        penalty = 0.5 * WEIGHT_DECAY * (weights[0].pow(2).sum() + weights[2].pow(2).sum())
        return F.cross_entropy(self.outputs_at(theta), self.targets) + penalty

    def hessian(self) -> torch.Tensor:
        return torch.autograd.functional.hessian(self.objective_at, self.theta)

    def jacobian(self) -> torch.Tensor:
        """d outputs / d theta, one row per (example, class)."""
        return torch.autograd.functional.jacobian(self.outputs_at, self.theta).reshape(BATCH * CLASSES, -1)

    def penalty_hessian(self) -> torch.Tensor:
        diagonal = torch.cat([torch.full((p.numel(),), WEIGHT_DECAY if i in (0, 2) else 0.0, dtype=F64)
                              for i, p in enumerate(self.params)])
        return torch.diag(diagonal)

    def per_example_gradients(self, labels: torch.Tensor) -> torch.Tensor:
        rows = []
        for n in range(BATCH):
            def loss(theta, n=n):
                return F.cross_entropy(self.outputs_at(theta)[n : n + 1], labels[n : n + 1])
            rows.append(torch.autograd.functional.jacobian(loss, self.theta))
        return torch.stack(rows)


def relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return float((actual - expected).norm() / expected.norm())


def test_double_backward_hessian_matches_the_explicit_hessian():
    setup = Setup()
    operator = curvature_operator(setup.closure, setup.params, "hessian")
    expected = setup.hessian()
    assert relative_error(operator.dense(), expected) <= 1e-10
    vector = torch.randn(operator.numel, dtype=F64)
    assert relative_error(operator.matvec(vector), expected @ vector) <= 1e-10
    assert operator.products == operator.numel + 1
    assert torch.allclose(operator.loss, setup.objective_at(setup.theta), rtol=1e-14, atol=0)


def test_forward_over_reverse_matches_the_explicit_hessian():
    setup = Setup(seed=1)
    vector = torch.randn(setup.theta.numel(), dtype=F64)
    product = hvp_forward_over_reverse(lambda tensors: setup.objective_at(tensors["theta"]),
                                       {"theta": setup.theta}, {"theta": vector})
    assert relative_error(product["theta"], setup.hessian() @ vector) <= 1e-10


def test_forward_over_reverse_on_module_parameters_matches_double_backward():
    setup = Setup(seed=2)
    params = {name: p.detach() for name, p in setup.model.named_parameters()}
    vector = {name: torch.randn_like(p) for name, p in params.items()}

    def loss(tensors):
        return F.cross_entropy(torch.func.functional_call(setup.model, tensors, (setup.inputs,)), setup.targets)

    forward = flat(list(hvp_forward_over_reverse(loss, params, vector).values()))
    reverse = Hessian(F.cross_entropy(setup.model(setup.inputs), setup.targets), setup.params)
    assert relative_error(forward, reverse.matvec(flat(list(vector.values())))) <= 1e-10


def test_a_loss_linear_in_some_parameters_has_zero_hessian_there():
    weight = torch.randn(3, dtype=F64, requires_grad=True)
    offset = torch.randn(2, dtype=F64, requires_grad=True)
    loss = (weight ** 2).sum() + offset.sum() * 3.0
    operator = Hessian(loss, [weight, offset])
    expected = torch.block_diag(2 * torch.eye(3, dtype=F64), torch.zeros(2, 2, dtype=F64))
    assert torch.equal(operator.dense(), expected)


def test_gauss_newton_is_jt_lambda_j_plus_the_penalty_hessian():
    setup = Setup(seed=3)
    operator = curvature_operator(setup.closure, setup.params, "ggn")
    probabilities = torch.softmax(setup.outputs_at(setup.theta), dim=1)
    lam = torch.block_diag(*[(torch.diag(p) - torch.outer(p, p)) / BATCH for p in probabilities])
    jacobian = setup.jacobian()
    expected = jacobian.T @ lam @ jacobian + setup.penalty_hessian()
    assert relative_error(operator.dense(), expected) <= 1e-10
    assert torch.linalg.eigvalsh(operator.dense()).min() > -1e-12, "GGN of a convex loss is PSD"


def test_gauss_newton_equals_the_hessian_for_a_linear_model():
    torch.manual_seed(4)
    model = nn.Linear(INPUTS, CLASSES).to(F64)
    inputs, targets = torch.randn(BATCH, INPUTS, dtype=F64), torch.randint(0, CLASSES, (BATCH,))
    closure = SupervisedClosure(model, inputs, targets, cross_entropy)
    params = list(model.parameters())
    ggn = curvature_operator(closure, params, "ggn").dense()
    hessian = curvature_operator(closure, params, "hessian").dense()
    assert relative_error(ggn, hessian) <= 1e-10


def test_empirical_fisher_is_the_mean_outer_product_of_per_example_gradients():
    setup = Setup(seed=5)
    operator = curvature_operator(setup.closure, setup.params, "fisher", "empirical")
    scores = setup.per_example_gradients(setup.targets)
    expected = scores.T @ scores / BATCH + setup.penalty_hessian()
    assert relative_error(operator.dense(), expected) <= 1e-10
    gradient = torch.autograd.functional.jacobian(setup.objective_at, setup.theta)
    assert relative_error(operator.gradient, gradient) <= 1e-12


def test_true_fisher_uses_labels_sampled_from_the_model():
    setup = Setup(seed=6)
    output = setup.closure.model_output()  # replays the closure's random state
    torch.manual_seed(123)
    operator = Fisher(output, setup.params, kind="true")
    torch.manual_seed(123)
    labels = Categorical().sample(setup.outputs_at(setup.theta))
    scores = setup.per_example_gradients(labels)
    assert relative_error(operator.dense(), scores.T @ scores / BATCH + setup.penalty_hessian()) <= 1e-10
    empirical = Fisher(setup.closure.model_output(), setup.params, kind="empirical").dense()
    assert relative_error(operator.dense(), empirical) > 1e-3, "sampled labels differ from the data's"


@pytest.mark.slow  # 3,000 Monte-Carlo draws
def test_true_fisher_averages_to_the_gauss_newton_of_the_cross_entropy():
    """E over sampled labels of sₙsₙᵀ is diag(p) − ppᵀ, the cross-entropy's output Hessian."""
    setup = Setup(seed=7)
    output = setup.closure.model_output()
    torch.manual_seed(0)
    vectors = torch.randn(setup.theta.numel(), 1, dtype=F64)
    draws = 3000
    total = sum(torch.stack([Fisher(output, setup.params, kind="true").matvec(v) for v in vectors.T], dim=1)
                for _ in range(draws)) / draws
    ggn = GaussNewton(output, setup.params)
    expected = torch.stack([ggn.matvec(v) for v in vectors.T], dim=1)
    assert relative_error(total, expected) < 0.05


def test_categorical_samples_follow_the_softmax_per_position():
    torch.manual_seed(0)
    logits = torch.log(torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]], dtype=F64))
    sequence = logits.unsqueeze(0).expand(4000, 2, 3)  # (N, T, C) like a character model
    labels = Categorical().sample(sequence)
    assert labels.shape == (4000, 2)
    frequencies = torch.stack([torch.bincount(labels[:, t], minlength=3).to(F64) / 4000 for t in range(2)])
    assert torch.allclose(frequencies, logits.exp(), atol=0.03)


def test_unknown_kinds_are_refused_in_one_sentence():
    setup = Setup()
    with pytest.raises(ValueError, match=r"curvature must be one of hessian, ggn, fisher \(got 'newton'\)\.$"):
        curvature_operator(setup.closure, setup.params, "newton")
    with pytest.raises(ValueError, match=r"Fisher kind must be one of true, empirical"):
        Fisher(setup.closure.model_output(), setup.params, kind="exact")
