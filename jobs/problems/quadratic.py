"""DeepOBS's ``quadratic_deep``: a 100-d noisy quadratic.

Loss per example ``½ (θ − x)ᵀ Q (θ − x)`` with "data" ``x ~ N(0, 0.6² I)``.
As in DeepOBS: 90 of Q's eigenvalues are drawn uniformly from (0, 1) and 10
from (30, 60) (the spectrum reported for deep networks), Q is rotated by a
Haar-random rotation, both from a fixed seed (42) because they define the
problem; 1000 training examples (seed 42) and 1000 test examples (seed 43),
θ starts at all ones, batches drop the remainder, batch size 128 for 100
epochs. Choices of ours: the rotation comes from numpy's QR of a Gaussian
matrix (with the sign fix that makes it Haar), not DeepOBS's subgroup
algorithm, so Q has DeepOBS's distribution but not its exact entries; the
validation split (DeepOBS has none for this problem) is drawn with seed 44.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from jobs.problems.base import Split, TensorProblem

DIM = 100
EXAMPLES = 1000
NOISE_LEVEL = 0.6


def deep_spectrum_hessian(dim: int = DIM, seed: int = 42) -> np.ndarray:
    rng = np.random.RandomState(seed)
    small = int(round(0.9 * dim))
    eigenvalues = np.concatenate([rng.uniform(0.0, 1.0, small), rng.uniform(30.0, 60.0, dim - small)])
    q, r = np.linalg.qr(rng.normal(size=(dim, dim)))
    rotation = q * np.sign(np.diag(r))
    return rotation.T @ np.diag(eigenvalues) @ rotation


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
