"""Deterministic 2-D test functions: the optimizer moves a point, not a network.

Minima (for checks and plots): Rosenbrock 0 at (1, 1); Beale 0 at (3, 0.5);
Himmelblau 0 at (3, 2) and three other points; Branin 0.397887 at (−π,
12.275), (π, 2.275) and (9.42478, 2.475). The starting points in
``conf/problem/`` are the classic ones: Rosenbrock (−1.2, 1), Beale
(−4.5, 4.5) as DeepOBS's ``two_d_beale``; Himmelblau (0, 0) and Branin
(2.5, 12.5) are ours. DeepOBS adds Gaussian noise to its 2-D problems;
these are the noise-free functions.
"""

from __future__ import annotations

import math
from abc import abstractmethod

import torch
from torch import nn

from jobs.problems.base import DeterministicProblem


class Point(nn.Module):
    def __init__(self, start: tuple[float, float], dtype: torch.dtype):
        super().__init__()
        self.xy = nn.Parameter(torch.tensor(start, dtype=dtype))


class Function2D(DeterministicProblem):
    def __init__(self, batch_size: int, device: torch.device, dtype: torch.dtype,
                 start: tuple[float, float], steps_per_epoch: int):
        super().__init__(steps_per_epoch)
        self.model = Point(start, dtype).to(device)

    def value(self) -> torch.Tensor:
        x, y = self.model.xy
        return self.function(x, y)

    @staticmethod
    @abstractmethod
    def function(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """f(x, y)."""


class Rosenbrock(Function2D):
    """f(x, y) = (1 − x)² + 100 (y − x²)²."""

    @staticmethod
    def function(x, y):
        return (1 - x) ** 2 + 100 * (y - x**2) ** 2


class Beale(Function2D):
    """f(x, y) = (1.5 − x + xy)² + (2.25 − x + xy²)² + (2.625 − x + xy³)²."""

    @staticmethod
    def function(x, y):
        return (1.5 - x + x * y) ** 2 + (2.25 - x + x * y**2) ** 2 + (2.625 - x + x * y**3) ** 2


class Himmelblau(Function2D):
    """f(x, y) = (x² + y − 11)² + (x + y² − 7)²: four global minima."""

    @staticmethod
    def function(x, y):
        return (x**2 + y - 11) ** 2 + (x + y**2 - 7) ** 2


class Branin(Function2D):
    """f(x, y) = (y − 5.1x²/(4π²) + 5x/π − 6)² + 10(1 − 1/(8π)) cos x + 10: three global minima."""

    @staticmethod
    def function(x, y):
        b, c, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 1 / (8 * math.pi)
        return (y - b * x**2 + c * x - 6) ** 2 + 10 * (1 - t) * torch.cos(x) + 10
