"""The MNIST-1D paper's MLP and CNN (Greydanus 2020), as its repository's notebooks/models.py defines them.

MLP (15,210 parameters at width 100): dense 40→100, ReLU; a residual
dense block h + ReLU(W h) at 100; dense to 10. CNN (5,210 parameters):
three 1-D convolutions with 25 channels (kernel 5, then 3 and 3; stride 2,
padding 1 each), ReLU after each, taking 40 samples to 19, 10 and 5, then
dense 125→10. Both keep PyTorch's default initialisation, as the paper's.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

LENGTH, CLASSES, CHANNELS = 40, 10, 25


class ResidualMLP(nn.Module):
    def __init__(self, hidden: int = 100):
        super().__init__()
        self.linear1 = nn.Linear(LENGTH, hidden)
        self.linear2 = nn.Linear(hidden, hidden)
        self.linear3 = nn.Linear(hidden, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.linear1(x).relu()
        h = h + self.linear2(h).relu()
        return self.linear3(h)


class ConvNet1d(nn.Sequential):
    def __init__(self):
        super().__init__(
            nn.Unflatten(1, (1, LENGTH)),
            nn.Conv1d(1, CHANNELS, 5, stride=2, padding=1), nn.ReLU(),
            nn.Conv1d(CHANNELS, CHANNELS, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv1d(CHANNELS, CHANNELS, 3, stride=2, padding=1), nn.ReLU(),
            nn.Flatten(), nn.Linear(CHANNELS * 5, CLASSES),
        )

    def decayed_weights(self) -> Iterator[nn.Parameter]:
        """Every convolution's and the dense layer's weight: the shared selection knows only 2-D convolutions."""
        return (m.weight for m in self if isinstance(m, nn.Conv1d | nn.Linear))
