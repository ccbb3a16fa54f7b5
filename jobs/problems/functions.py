"""Deterministic 2-D test functions: the optimizer moves a point, not a network.

There is no data: every "minibatch" is the whole function, an epoch is
``steps_per_epoch`` steps and all three splits report the same value.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

from jobs.problems.base import Problem


class Point(nn.Module):
    def __init__(self, start: tuple[float, float], dtype: torch.dtype):
        super().__init__()
        self.xy = nn.Parameter(torch.tensor(start, dtype=dtype))


class Rosenbrock(Problem):
    """f(x, y) = (1 − x)² + 100 (y − x²)², minimum 0 at (1, 1)."""

    def __init__(self, batch_size: int, device: torch.device, dtype: torch.dtype,
                 start: tuple[float, float], steps_per_epoch: int):
        self.model = Point(start, dtype).to(device)
        self._steps_per_epoch = steps_per_epoch

    def steps_per_epoch(self) -> int:
        return self._steps_per_epoch

    def train_batches(self, generator: torch.Generator) -> Iterator[None]:
        return iter([None] * self._steps_per_epoch)

    def value(self) -> torch.Tensor:
        x, y = self.model.xy
        return (1 - x) ** 2 + 100 * (y - x**2) ** 2

    def batch_loss(self, batch: None) -> torch.Tensor:
        return self.value()

    @torch.no_grad()
    def evaluate(self, split: str) -> dict[str, float]:
        return {"loss": float(self.value())}
