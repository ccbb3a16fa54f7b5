"""Probabilistic preconditioning: the posterior mean, the recovered spectrum, the steps, the schedule, resuming."""

from __future__ import annotations

import copy
import io
import math

import pytest
import torch
from optim_support import RecordingSink

from jobs.optim import AdaptiveSGD, PreconditionedSGD
from jobs.optim.preconditioning import posterior_mean
from jobs.optim.registry import OPTIMIZERS
from jobs.schema import SpecError
from jobs.train import train
from orchestrator.sweep import expand

DTYPE = torch.float64


pytestmark = pytest.mark.usefixtures("one_thread")


class Quadratic:
    """``½ (θ − c)ᵀ A (θ − c)`` for one "minibatch" ``(A, c)``, with the closure protocol and ``loss_with_graph``."""

    def __init__(self, theta: torch.Tensor, matrix: torch.Tensor, center: torch.Tensor | None = None):
        self.theta, self.matrix = theta, matrix
        self.center = torch.zeros_like(theta) if center is None else center

    def loss_with_graph(self) -> torch.Tensor:
        with torch.enable_grad():
            d = self.theta - self.center
            return 0.5 * d @ (self.matrix @ d)

    def gradient(self) -> torch.Tensor:
        return self.matrix @ (self.theta.detach() - self.center)

    def __call__(self, backward: bool = True) -> torch.Tensor:
        if not backward:
            with torch.no_grad():
                return self.loss_with_graph()
        self.theta.grad = None
        loss = self.loss_with_graph()
        loss.backward()
        return loss.detach()


def rotated(eigenvalues: list[float] | torch.Tensor, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``A = V diag(eigenvalues) Vᵀ`` in a random orthonormal basis V (columns in the given order)."""
    values = torch.as_tensor(eigenvalues, dtype=DTYPE)
    generator = torch.Generator().manual_seed(seed)
    basis, _ = torch.linalg.qr(torch.randn(len(values), len(values), generator=generator, dtype=DTYPE))
    return basis @ torch.diag(values) @ basis.T, basis


def spectrum_50() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Dimension 50: eigenvalues 100, 40, 10 and 47 in [0.5, 1.5]; a start whose gradient is spread over all of them.

    The gradient's components are ``r / λ`` in the eigenbasis, so the prior's
    curvature scale ``β = ‖Ag‖² / gᵀAg`` lies in the bulk, below the top eigenvalues.
    """
    eigenvalues = torch.cat([torch.tensor([100.0, 40.0, 10.0], dtype=DTYPE), torch.linspace(0.5, 1.5, 47, dtype=DTYPE)])
    matrix, basis = rotated(eigenvalues, seed=1)
    generator = torch.Generator().manual_seed(2)
    start = basis @ (torch.randn(50, generator=generator, dtype=DTYPE) / eigenvalues**2)
    return matrix, basis, start


def matrix_of(spectrum) -> torch.Tensor:
    """The estimate as an explicit matrix: ``β I + Σ (λᵢ − β) uᵢuᵢᵀ``."""
    n = spectrum.vectors.shape[0]
    u, values = spectrum.vectors, spectrum.values
    return spectrum.scale * torch.eye(n, dtype=u.dtype) + u @ torch.diag(values - spectrum.scale) @ u.T


# -- the posterior mean ---------------------------------------------------------------------------------------------
def dense_posterior_mean(directions, products, prior_mean, prior_variance, noise) -> torch.Tensor:
    """Gaussian conditioning written out on vec(B) (column-major): prior covariance w²·½(I + Π), explicit noise."""
    n, m = directions.shape
    commutation = torch.zeros(n * n, n * n, dtype=DTYPE)
    for i in range(n):
        for j in range(n):
            commutation[i + n * j, j + n * i] = 1.0
    covariance = prior_variance * 0.5 * (torch.eye(n * n, dtype=DTYPE) + commutation)
    observe = torch.kron(directions.T.contiguous(), torch.eye(n, dtype=DTYPE))  # vec(B S) = (Sᵀ ⊗ I) vec(B)
    noise_covariance = torch.kron(torch.diag(noise), torch.eye(n, dtype=DTYPE))
    prior = (prior_mean * torch.eye(n, dtype=DTYPE)).T.reshape(-1)
    data = products.T.reshape(-1)
    gram = observe @ covariance @ observe.T + noise_covariance
    mean = prior + covariance @ observe.T @ torch.linalg.solve(gram, data - observe @ prior)
    return mean.reshape(n, n).T


def test_posterior_mean_is_the_gaussian_conditional_mean():
    generator = torch.Generator().manual_seed(0)
    n, m = 6, 3
    hidden = torch.randn(n, n, generator=generator, dtype=DTYPE)
    directions = torch.randn(n, m, generator=generator, dtype=DTYPE)
    products = (hidden + hidden.T) @ directions + 0.3 * torch.randn(n, m, generator=generator, dtype=DTYPE)
    noise = torch.tensor([0.1, 0.5, 0.2], dtype=DTYPE)

    estimate = matrix_of(posterior_mean(directions, products, 1.5, 2.0, noise))

    expected = dense_posterior_mean(directions, products, 1.5, 2.0, noise)
    torch.testing.assert_close(estimate, expected, rtol=0, atol=1e-12)


def test_noise_free_posterior_mean_reproduces_the_observations_and_is_symmetric():
    generator = torch.Generator().manual_seed(1)
    n, m, prior_mean = 8, 4, 2.0
    hidden = torch.randn(n, n, generator=generator, dtype=DTYPE)
    hessian = hidden + hidden.T
    directions = torch.randn(n, m, generator=generator, dtype=DTYPE)
    products = hessian @ directions

    spectrum = posterior_mean(directions, products, prior_mean, 3.0, torch.zeros(m, dtype=DTYPE))
    estimate = matrix_of(spectrum)

    torch.testing.assert_close(estimate @ directions, products, rtol=0, atol=1e-11)
    torch.testing.assert_close(spectrum.vectors.T @ spectrum.vectors, torch.eye(spectrum.values.numel(), dtype=DTYPE))
    # Hennig (2015): B0 + Δ G⁻¹ Sᵀ + S G⁻¹ Δᵀ − S G⁻¹ SᵀΔ G⁻¹ Sᵀ, Δ = Y − B0 S, G = SᵀS (W = I): symmetric here.
    delta = products - prior_mean * directions
    inverse_gram = torch.linalg.inv(directions.T @ directions)
    left = delta @ inverse_gram @ directions.T
    closed_form = (prior_mean * torch.eye(n, dtype=DTYPE) + left + left.T
                   - directions @ inverse_gram @ directions.T @ delta @ inverse_gram @ directions.T)
    torch.testing.assert_close(closed_form, closed_form.T, rtol=0, atol=1e-11)
    torch.testing.assert_close(estimate, closed_form, rtol=0, atol=1e-11)


def test_a_repeated_noise_free_direction_changes_nothing():
    generator = torch.Generator().manual_seed(2)
    hessian, _ = rotated([5.0, 3.0, 1.0, 0.5, 0.2], seed=3)
    directions = torch.randn(5, 2, generator=generator, dtype=DTYPE)
    repeated = torch.cat([directions, directions[:, :1]], 1)
    once = matrix_of(posterior_mean(directions, hessian @ directions, 1.0, 1.0, torch.zeros(2, dtype=DTYPE)))
    twice = matrix_of(posterior_mean(repeated, hessian @ repeated, 1.0, 1.0, torch.zeros(3, dtype=DTYPE)))
    torch.testing.assert_close(twice, once, rtol=0, atol=1e-11)


# -- the estimate on a quadratic ------------------------------------------------------------------------------------
def test_recovers_the_top_eigenpairs_of_a_quadratic_and_holds_still_until_then():
    matrix, basis, start = spectrum_50()
    theta = start.clone().requires_grad_()
    optimizer = PreconditionedSGD([theta], est_rank=3)  # num_observations=10, prior_iterations=5
    closure = Quadratic(theta, matrix)
    gradient = closure.gradient()

    for _ in range(5 + 10 - 2):
        optimizer.step(closure)
        assert optimizer.diagnostics["estimating"] == 1 and optimizer.diagnostics["effective_lr"] == 0.0
    assert torch.equal(theta.detach(), start), "no learning rate yet: the parameters hold still"
    optimizer.step(closure)  # the last observation completes the estimate, which this step uses

    estimate = optimizer.estimate
    torch.testing.assert_close(estimate.values, torch.linalg.eigvalsh(matrix).flip(0)[:3], rtol=1e-10, atol=0)
    cosines = torch.linalg.svdvals(basis[:, :3].T @ estimate.vectors)  # cosines of the principal angles
    assert cosines.min().item() > 1 - 1e-12
    probe = gradient / gradient.norm()
    product = matrix @ probe
    assert optimizer.learning_rate == pytest.approx((probe @ product / (product @ product)).item(), rel=1e-12)
    assert optimizer.diagnostics["effective_lr"] == optimizer.learning_rate
    assert [optimizer.diagnostics[f"eigenvalue_{i}"] for i in (1, 2, 3)] == pytest.approx([100.0, 40.0, 10.0])


def test_noisy_minibatch_products_set_the_prior_and_the_learning_rate():
    """Along u, the first batch's normalised gradient: β = Σ‖Hᵢu‖² / Σ uᵀHᵢu = 1/α, w = mean uᵀHᵢu, ν = spread."""
    generator = torch.Generator().manual_seed(4)
    base, _ = rotated([4.0, 2.0, 1.0, 0.5], seed=5)
    theta = torch.randn(4, generator=generator, dtype=DTYPE).requires_grad_()
    start = theta.detach().clone()
    batches = []
    for _ in range(4):
        noise = 0.2 * torch.randn(4, 4, generator=generator, dtype=DTYPE)
        batches.append(Quadratic(theta, base + noise + noise.T, 0.1 * torch.randn(4, generator=generator, dtype=DTYPE)))
    optimizer = PreconditionedSGD([theta], prior_iterations=3, num_observations=2)
    for batch in batches[:3]:
        optimizer.step(batch)

    gradient = batches[0].matrix @ (start - batches[0].center)
    probe = gradient / gradient.norm()
    products = torch.stack([batch.matrix @ probe for batch in batches[:3]])
    curvatures = products @ probe
    prior = optimizer.state_dict()["state"]["preconditioner"]["estimation"]
    assert prior["scale"] == pytest.approx((products**2).sum().item() / curvatures.sum().item(), rel=1e-12)
    assert prior["variance"] == pytest.approx(curvatures.mean().item() ** 2, rel=1e-12)
    noise = products.var(dim=0, unbiased=True).mean().item()  # per coordinate of one product
    assert prior["noise"] == pytest.approx(noise, rel=1e-12)
    torch.testing.assert_close(prior["noises"], torch.tensor([noise / 3], dtype=DTYPE), rtol=1e-12, atol=0)
    torch.testing.assert_close(prior["products"][:, 0], products.mean(0), rtol=1e-12, atol=1e-15)
    assert optimizer.learning_rate is None

    optimizer.step(batches[3])  # the second observation completes the estimate
    assert optimizer.learning_rate == pytest.approx(1 / prior["scale"], rel=1e-15)


def test_an_invariant_subspace_ends_the_estimate_early():
    """In two dimensions the second direction spans everything: the third would add nothing."""
    matrix, _ = rotated([3.0, 1.0], seed=6)
    theta = torch.tensor([1.0, 0.5], dtype=DTYPE, requires_grad=True)
    optimizer = PreconditionedSGD([theta], prior_iterations=2, num_observations=10)
    estimating = []
    for _ in range(6):
        optimizer.step(Quadratic(theta, matrix))
        estimating.append(optimizer.diagnostics["estimating"])
    assert estimating == [1, 1, 1, 1, 0, 0]  # 2 prior steps, the second direction, the empty third
    torch.testing.assert_close(optimizer.estimate.values, torch.tensor([3.0, 1.0], dtype=DTYPE), rtol=1e-12, atol=0)


# -- the steps ------------------------------------------------------------------------------------------------------
def estimated(optimizer_class, momentum: float):
    """An optimizer one step before its first estimate completes (5 + 3 - 1 = 7 steps) on the 50-d quadratic."""
    matrix, _, start = spectrum_50()
    theta = start.clone().requires_grad_()
    optimizer = optimizer_class([theta], momentum=momentum, prior_iterations=5, num_observations=3, est_rank=6,
                                update="steps", update_every=1000)
    closure = Quadratic(theta, matrix)
    for _ in range(6):
        optimizer.step(closure)
    assert torch.equal(theta.detach(), start) and optimizer.estimate is None
    return optimizer, closure, start


def explicit_inverse(spectrum) -> torch.Tensor:
    """``P̂⁻¹ = Σ uᵢuᵢᵀ / max(λᵢ, β) + (I − Σ uᵢuᵢᵀ) / β``, written out."""
    u = spectrum.vectors
    n = u.shape[0]
    inside = u @ torch.diag(1.0 / torch.clamp(spectrum.values, min=spectrum.scale)) @ u.T
    return inside + (torch.eye(n, dtype=DTYPE) - u @ u.T) / spectrum.scale


def test_a_preconditioned_step_is_sgd_on_the_explicitly_preconditioned_gradient():
    optimizer, closure, start = estimated(PreconditionedSGD, momentum=0.5)
    reference = start.clone().requires_grad_()
    reference_closure = Quadratic(reference, closure.matrix)
    sgd = None
    for step in range(4):
        optimizer.step(closure)
        spectrum = optimizer.estimate
        alpha = 1.0 / spectrum.scale
        if sgd is None:
            sgd = torch.optim.SGD([reference], lr=alpha, momentum=0.5)
            assert optimizer.learning_rate == alpha
            values = spectrum.values  # eigenvalues above β shorten the step, those below leave it at α
            assert values[1] > spectrum.scale > values[-1]
        reference_closure()
        reference.grad = explicit_inverse(spectrum) @ reference.grad / alpha
        sgd.step()
        torch.testing.assert_close(closure.theta.detach(), reference.detach(), rtol=1e-12, atol=1e-14)
        if step == 0:  # no momentum yet: the step is −P̂⁻¹g
            expected = start - explicit_inverse(spectrum) @ (closure.matrix @ start)
            torch.testing.assert_close(closure.theta.detach(), expected, rtol=1e-12, atol=1e-14)


def test_with_an_initial_lr_the_first_estimate_is_gathered_during_plain_sgd_steps():
    matrix, _, start = spectrum_50()
    theta, reference = start.clone().requires_grad_(), start.clone().requires_grad_()
    optimizer = PreconditionedSGD([theta], lr=0.01, momentum=0.9)
    sgd = torch.optim.SGD([reference], lr=0.01, momentum=0.9)
    for _ in range(5 + 10 - 2):
        optimizer.step(Quadratic(theta, matrix))
        sgd.step(Quadratic(reference, matrix))
        assert optimizer.diagnostics["estimating"] == 1 and optimizer.diagnostics["effective_lr"] == 0.01
        torch.testing.assert_close(theta.detach(), reference.detach(), rtol=1e-14, atol=0)
    assert optimizer.estimate is None
    optimizer.step(Quadratic(theta, matrix))
    assert optimizer.estimate is not None and optimizer.learning_rate != 0.01


def test_adaptive_sgd_steps_like_sgd_with_the_estimated_learning_rate():
    optimizer, closure, start = estimated(AdaptiveSGD, momentum=0.9)
    reference = start.clone().requires_grad_()
    reference_closure = Quadratic(reference, closure.matrix)
    optimizer.step(closure)
    sgd = torch.optim.SGD([reference], lr=optimizer.learning_rate, momentum=0.9)
    sgd.step(reference_closure)
    for _ in range(5):
        optimizer.step(closure)
        sgd.step(reference_closure)
        assert torch.equal(closure.theta.detach(), reference.detach())
    assert optimizer.estimate.values[0] > optimizer.estimate.scale  # an estimate it chose not to apply


# -- when it estimates ----------------------------------------------------------------------------------------------
def estimating_steps(optimizer, closures) -> list[int]:
    steps = []
    for step, closure in enumerate(closures):
        optimizer.step(closure)
        if optimizer.diagnostics["estimating"]:
            steps.append(step)
    return steps


def noisy_batches(theta: torch.Tensor, count: int, scales: list[float] | None = None, seed: int = 7,
                  eigenvalues: tuple[float, ...] = (3.0, 2.0, 1.0)):
    """Quadratics ``scaleₜ · A`` around random centres: the gradient never vanishes."""
    matrix, _ = rotated(list(eigenvalues), seed=seed)
    generator = torch.Generator().manual_seed(seed)
    scales = scales or [1.0] * count
    return [Quadratic(theta, scale * matrix, torch.randn(3, generator=generator, dtype=DTYPE)) for scale in scales]


def fresh(**settings) -> tuple[PreconditionedSGD, torch.Tensor]:
    theta = torch.ones(3, dtype=DTYPE, requires_grad=True)
    return PreconditionedSGD([theta], lr=0.1, prior_iterations=2, num_observations=3, **settings), theta


def test_re_estimates_at_every_epoch_start():
    optimizer, theta = fresh()  # update="epoch"
    optimizer.set_training_length(total_steps=30, steps_per_epoch=10)
    assert estimating_steps(optimizer, noisy_batches(theta, 30)) == [0, 1, 2, 3, 10, 11, 12, 13, 20, 21, 22, 23]


def test_re_estimates_every_n_steps_and_waits_while_one_is_gathered():
    optimizer, theta = fresh(update="steps", update_every=6)
    assert estimating_steps(optimizer, noisy_batches(theta, 14)) == [0, 1, 2, 3, 6, 7, 8, 9, 12, 13]
    optimizer, theta = fresh(update="steps", update_every=3)  # due at 3, while the first is still gathered
    assert estimating_steps(optimizer, noisy_batches(theta, 12)) == [0, 1, 2, 3, 6, 7, 8, 9]


def test_without_an_epoch_length_it_estimates_once(caplog):
    optimizer, theta = fresh()
    assert estimating_steps(optimizer, noisy_batches(theta, 12)) == [0, 1, 2, 3]
    assert "does not know the epoch length" in caplog.text


def test_auto_re_estimates_when_the_curvature_scale_changes():
    optimizer, theta = fresh(update="auto", update_every=2, check_factor=2.0)
    # Nearly isotropic, so that one direction's curvature scale is within the factor 2 of another's.
    batches = noisy_batches(theta, 20, scales=[1.0] * 12 + [10.0] * 8, eigenvalues=(1.2, 1.0, 0.9))
    ratios = {}
    estimating = []
    for step, batch in enumerate(batches):
        optimizer.step(batch)
        if "scale_ratio" in optimizer.diagnostics:
            ratios[step] = optimizer.diagnostics["scale_ratio"]
        if optimizer.diagnostics["estimating"]:
            estimating.append(step)
        if step == 11:
            before = optimizer.learning_rate
    # Checks at 4, 6, 8, 10 pass (same Hessian, fresh directions); the one at 12 sees the tenfold curvature and its
    # product is the new estimate's first prior iteration; the check at 16 passes again.
    assert sorted(ratios) == [4, 6, 8, 10, 12, 16, 18]
    assert all(0.5 <= ratios[s] <= 2.0 for s in (4, 6, 8, 10, 16, 18)) and ratios[12] > 2.0
    assert estimating == [0, 1, 2, 3, 12, 13, 14, 15]
    assert optimizer.learning_rate < before / 2


# -- state ----------------------------------------------------------------------------------------------------------
def test_state_dict_resumes_bitwise_even_mid_estimate():
    def run(steps: int, resume_at: int | None = None) -> torch.Tensor:
        optimizer, theta = fresh(momentum=0.9, update="steps", update_every=5)
        batches = noisy_batches(theta, steps, seed=8)
        for step, batch in enumerate(batches):
            if step == resume_at:
                buffer = io.BytesIO()
                torch.save({"theta": theta.detach().clone(), "optimizer": optimizer.state_dict()}, buffer)
                buffer.seek(0)
                saved = torch.load(buffer, weights_only=True)
                optimizer, theta = fresh(momentum=0.9, update="steps", update_every=5)
                with torch.no_grad():
                    theta.copy_(saved["theta"])
                optimizer.load_state_dict(saved["optimizer"])
                for later in batches[step:]:
                    later.theta = theta
            optimizer.step(batch)
        return theta.detach()

    unbroken = run(14)
    for resume_at in (1, 3, 4, 6, 9):  # mid-prior, mid-observations, after an estimate, in the second one
        assert torch.equal(run(14, resume_at), unbroken), resume_at


def test_a_state_dict_is_a_snapshot():
    optimizer, theta = fresh()
    batches = noisy_batches(theta, 6)
    optimizer.step(batches[0])
    snapshot = copy.deepcopy(optimizer.state_dict())
    taken = optimizer.state_dict()
    for batch in batches[1:]:
        optimizer.step(batch)
    assert taken["state"]["preconditioner"]["step"] == snapshot["state"]["preconditioner"]["step"] == 1


# -- config ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("override", "key"), [
    ({"lr": 0.0}, "optimizer.lr"),
    ({"num_observations": 0}, "optimizer.num_observations"),
    ({"prior_iterations": 0}, "optimizer.prior_iterations"),
    ({"est_rank": -1}, "optimizer.est_rank"),
    ({"update": "sometimes"}, "optimizer.update"),
    ({"update_every": 0}, "optimizer.update_every"),
    ({"check_factor": 1.0}, "optimizer.check_factor"),
    ({"momentum": 1.0}, "optimizer.momentum"),
])
def test_bad_values_name_the_key(override, key):
    config = {"name": "preconditioned_sgd", "lr": None, "momentum": 0.0, "num_observations": 10,
              "prior_iterations": 5, "est_rank": 2, "update": "epoch", "update_every": None, "check_factor": 2.0}
    OPTIMIZERS.validate(config)
    with pytest.raises(SpecError, match=key.replace(".", r"\.")):
        OPTIMIZERS.validate({**config, **override})


def test_needs_a_closure_with_hessian_products():
    theta = torch.ones(2, dtype=DTYPE, requires_grad=True)

    def closure(backward: bool = True) -> torch.Tensor:
        theta.grad = None
        loss = (theta**2).sum()
        loss.backward()
        return loss

    with pytest.raises(ValueError, match="loss_with_graph"):
        PreconditionedSGD([theta]).step(closure)


# -- through the trainer --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("overrides", "mid_estimate"), [
    (("optimizer=preconditioned_sgd",), False),
    (("optimizer=adaptive_sgd",), False),
    # 14-step estimates every 7 steps start at 0, 14, 28, ...: the epoch-2 checkpoint (step 38) falls inside one.
    (("optimizer=preconditioned_sgd", "optimizer.update=steps", "optimizer.update_every=7", "optimizer.momentum=0.5"),
     True),
], ids=["preconditioned", "adaptive", "mid-estimate"])
def test_digits_cnn_trains_and_resumes_bitwise(overrides, mid_estimate):
    (run,) = expand(["problem=digits_cnn", "train.epochs=4", "train.log_every=1", *overrides]).runs
    saved = {}

    def save(state: dict) -> None:  # the checkpoint's round trip: torch.save, then a weights-only load
        buffer = io.BytesIO()
        torch.save(state, buffer)
        buffer.seek(0)
        saved[state["epoch"]] = torch.load(buffer, weights_only=True)

    unbroken = RecordingSink()
    summary = train(run.spec, unbroken, save=save)
    assert summary["state"] == "completed"
    losses = [record["train_loss"] for record in unbroken.evals]
    assert losses[-1] < 0.8 * losses[0], losses
    assert all(math.isfinite(s["effective_lr"]) for s in unbroken.steps)
    assert sum(s["estimating"] for s in unbroken.steps) >= 4 * 13
    assert any(s["effective_lr"] > 0 for s in unbroken.steps[:19])

    gathering = saved[2]["optimizer"]["state"]["preconditioner"]["estimation"]
    assert (gathering is not None) == mid_estimate

    resumed = RecordingSink()
    summary_resumed = train(run.spec, resumed, resume=saved[2])
    boundary = saved[2]["step"]
    assert resumed.evals == unbroken.evals[3:]
    assert resumed.steps == [s for s in unbroken.steps if s["step"] > boundary]
    assert summary_resumed["final"] == {**summary["final"], "time": summary_resumed["final"]["time"]}
