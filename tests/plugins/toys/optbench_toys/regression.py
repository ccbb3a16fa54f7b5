"""Least squares on synthetic data: y = X w* + noise, a linear model, loss ½‖Xw − y‖² / n."""

import torch
from torch import nn

from jobs.problems.base import Split, TensorProblem

DATA_SEED = 1234  # the data defines the problem: fixed, whatever the run's seed


class LinearRegression(TensorProblem):
    """A linear model on `examples` Gaussian inputs of `dim` features per split."""

    default_batch_size = 32
    default_epochs = 5

    def __init__(self, batch_size: int, device: torch.device, dtype: torch.dtype, dim: int = 8, noise: float = 0.1,
                 examples: int = 256):
        generator = torch.Generator().manual_seed(DATA_SEED)
        truth = torch.randn(dim, 1, generator=generator, dtype=dtype)
        splits = {}
        for split in ("train", "valid", "test"):
            inputs = torch.randn(examples, dim, generator=generator, dtype=dtype)
            targets = inputs @ truth + noise * torch.randn(examples, 1, generator=generator, dtype=dtype)
            splits[split] = Split(inputs.to(device), targets.to(device))
        model = nn.Linear(dim, 1, bias=False).to(device=device, dtype=dtype)
        super().__init__(model, splits, batch_size)

    def example_losses(self, outputs, targets):
        return 0.5 * (outputs - targets).pow(2).sum(dim=1)
