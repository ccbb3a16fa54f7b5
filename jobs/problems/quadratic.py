"""Quadratic problems: DeepOBS's ``quadratic_deep``, a deterministic one of chosen condition, a noisy one.

``quadratic_deep``: a 100-d noisy quadratic. Loss per example
``½ (θ − x)ᵀ Q (θ − x)`` with "data" ``x ~ N(0, 0.6² I)``. As in DeepOBS:
90 of Q's eigenvalues are drawn uniformly from (0, 1) and 10 from (30, 60)
(the spectrum reported for deep networks), Q is rotated by a Haar-random
rotation, both from a fixed seed (42) because they define the problem; 1000
training examples (seed 42) and 1000 test examples (seed 43), θ starts at
all ones, batches drop the remainder, batch size 128 for 100 epochs.
Choices of ours: the rotation comes from numpy's QR of a Gaussian matrix
(with the sign fix that makes it Haar), not DeepOBS's subgroup algorithm, so
Q has DeepOBS's distribution but not its exact entries; the validation
split (DeepOBS has none for this problem) is drawn with seed 44.

``quadratic`` and ``noisy_quadratic`` share one family of Hessians: the
eigenvalues are geometric between 1/κ and 1 (so L = 1 and any step size
below 2 is stable whatever κ), optionally rotated by a fixed Haar rotation
(seed 0) so that the problem is not axis-aligned. θ starts at all ones.

``quadratic``: f(θ) = ½ θᵀQθ, no data. Gradient descent with step
2/(L + μ) contracts ‖θ‖ by (κ − 1)/(κ + 1) per step at worst.

``noisy_quadratic``: the noisy quadratic model of Zhang et al. (2019, "Which
algorithmic choices matter at which batch sizes?"): per-example loss
``½ (θ − x)ᵀ Q (θ − x)`` with fresh ``x ~ N(0, σ² Q⁻¹)`` every step, so the
gradient noise has covariance σ²Q/|B| (noise aligned with curvature). No
finite data set: every split reports the exact expected loss
``½ θᵀQθ + ½ σ² d``.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch import nn

from jobs.problems.base import DeterministicProblem, Problem, Split, TensorProblem

DIM = 100
EXAMPLES = 1000
NOISE_LEVEL = 0.6
ROTATION_SEED = 0


def haar_rotation(dim: int, rng: np.random.RandomState) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(dim, dim)))
    return q * np.sign(np.diag(r))


def deep_spectrum_hessian(dim: int = DIM, seed: int = 42) -> np.ndarray:
    rng = np.random.RandomState(seed)
    small = int(round(0.9 * dim))
    eigenvalues = np.concatenate([rng.uniform(0.0, 1.0, small), rng.uniform(30.0, 60.0, dim - small)])
    rotation = haar_rotation(dim, rng)
    return rotation.T @ np.diag(eigenvalues) @ rotation


def conditioned_spectrum(dim: int, condition_number: float, rotate: bool) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues geometric in [1/κ, 1] (descending) and the eigenvectors (columns)."""
    eigenvalues = condition_number ** -np.linspace(0.0, 1.0, dim)
    vectors = haar_rotation(dim, np.random.RandomState(ROTATION_SEED)) if rotate else np.eye(dim)
    return eigenvalues, vectors


class QuadraticLoss(nn.Module):
    """θ is the only parameter; the forward pass returns per-example losses."""

    def __init__(self, hessian: torch.Tensor):
        super().__init__()
        self.theta = nn.Parameter(torch.ones(hessian.shape[0], dtype=hessian.dtype))
        self.register_buffer("hessian", hessian)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        diff = self.theta - x
        return 0.5 * ((diff @ self.hessian) * diff).sum(dim=1)


class QuadraticDeep(TensorProblem):
    def __init__(self, batch_size: int, device: torch.device, dtype: torch.dtype):
        hessian = torch.as_tensor(deep_spectrum_hessian(), dtype=dtype, device=device)
        splits = {
            name: Split(torch.as_tensor(_noise(seed), dtype=dtype, device=device))
            for name, seed in (("train", 42), ("test", 43), ("valid", 44))
        }
        super().__init__(QuadraticLoss(hessian).to(device), splits, batch_size)

    def example_losses(self, outputs: torch.Tensor, targets: torch.Tensor | None) -> torch.Tensor:
        return outputs


def _noise(seed: int) -> np.ndarray:
    return np.random.RandomState(seed).normal(0.0, NOISE_LEVEL, (EXAMPLES, DIM)).astype(np.float32)


class Quadratic(DeterministicProblem):
    def __init__(self, batch_size: int, device: torch.device, dtype: torch.dtype,
                 dim: int, condition_number: float, rotate: bool, steps_per_epoch: int):
        super().__init__(steps_per_epoch)
        eigenvalues, vectors = conditioned_spectrum(dim, condition_number, rotate)
        hessian = torch.as_tensor(vectors @ np.diag(eigenvalues) @ vectors.T, dtype=dtype, device=device)
        self.model = QuadraticLoss(hessian).to(device)

    def value(self) -> torch.Tensor:
        return self.model(torch.zeros_like(self.model.theta)[None])[0]


class NoisyQuadratic(Problem):
    def __init__(self, batch_size: int, device: torch.device, dtype: torch.dtype,
                 dim: int, condition_number: float, rotate: bool, noise: float, steps_per_epoch: int):
        eigenvalues, vectors = conditioned_spectrum(dim, condition_number, rotate)
        hessian = torch.as_tensor(vectors @ np.diag(eigenvalues) @ vectors.T, dtype=dtype, device=device)
        self.model = QuadraticLoss(hessian).to(device)
        # x = σ V Λ^{-1/2} z has covariance σ² Q⁻¹ for z ~ N(0, I)
        self.sampler = torch.as_tensor(noise * vectors / np.sqrt(eigenvalues), dtype=dtype, device=device)
        self.noise_floor = 0.5 * noise**2 * dim
        self.batch_size, self._steps_per_epoch = batch_size, steps_per_epoch

    def steps_per_epoch(self) -> int:
        return self._steps_per_epoch

    def train_batches(self, generator: torch.Generator) -> Iterator[torch.Tensor]:
        for _ in range(self._steps_per_epoch):
            z = torch.randn(self.batch_size, len(self.sampler), generator=generator, dtype=self.sampler.dtype)
            yield z.to(self.sampler.device) @ self.sampler.T

    def batch_loss(self, batch: torch.Tensor) -> torch.Tensor:
        return self.model(batch).mean()

    @torch.no_grad()
    def evaluate(self, split: str) -> dict[str, float]:
        theta = self.model.theta
        return {"loss": float(0.5 * theta @ self.model.hessian @ theta) + self.noise_floor}
