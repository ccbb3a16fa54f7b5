"""The MNIST-1D paper's MLP and CNN on MNIST-1D (see :mod:`jobs.problems.data.mnist1d`; no files needed).

The test split is the paper's 1,000 signals. The validation split is 400
(10 %) of the paper's 4,000 training signals, fixed as digits' is: a
permutation from seed 0, independent of the run's seed, so every run
trains on the same 3,600. Signals are used as generated (the package
standardises the whole set to mean 0, standard deviation 1). Weight decay
is the L2 penalty ``½·wd·Σ‖W‖²`` on the weights, not the biases.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from jobs.curvature.outputs import Categorical
from jobs.problems.base import Split, TensorProblem
from jobs.problems.data.mnist1d import mnist1d_arrays
from jobs.problems.nets.layers import decayed_weights, l2_penalty
from jobs.problems.nets.mnist1d import ConvNet1d, ResidualMLP

VALID_SIZE = 400
SPLIT_SEED = 0


def mnist1d_splits(data_dir: str | Path | None, device: torch.device, dtype: torch.dtype) -> dict[str, Split]:
    data = mnist1d_arrays(data_dir)
    order = np.random.RandomState(SPLIT_SEED).permutation(len(data["y"]))
    parts = {"train": (data["x"][order[VALID_SIZE:]], data["y"][order[VALID_SIZE:]]),
             "valid": (data["x"][order[:VALID_SIZE]], data["y"][order[:VALID_SIZE]]),
             "test": (data["x_test"], data["y_test"])}
    return {name: Split(torch.as_tensor(x, dtype=dtype, device=device), torch.as_tensor(y, device=device))
            for name, (x, y) in parts.items()}


class Mnist1dClassification(TensorProblem):
    """Cross-entropy on MNIST-1D's splits for ``model`` (inputs: 40 samples), with weight decay."""

    has_accuracy = True
    likelihood = Categorical()

    def __init__(self, model: nn.Module, batch_size: int, device: torch.device, dtype: torch.dtype,
                 data_dir: str | Path | None, weight_decay: float):
        super().__init__(model.to(device=device, dtype=dtype), mnist1d_splits(data_dir, device, dtype), batch_size)
        self.weights, self.weight_decay = decayed_weights(self.model), weight_decay

    def example_losses(self, outputs: torch.Tensor, targets: torch.Tensor | None) -> torch.Tensor:
        return F.cross_entropy(outputs, targets, reduction="none")

    def regularizer(self) -> torch.Tensor | float:
        return l2_penalty(self.weights, self.weight_decay)


class Mnist1dMLP(Mnist1dClassification):
    def __init__(self, batch_size: int, device: torch.device, dtype: torch.dtype, hidden: int, weight_decay: float,
                 data_dir: str | Path | None = None):
        super().__init__(ResidualMLP(hidden), batch_size, device, dtype, data_dir, weight_decay)


class Mnist1dCNN(Mnist1dClassification):
    def __init__(self, batch_size: int, device: torch.device, dtype: torch.dtype, weight_decay: float,
                 data_dir: str | Path | None = None):
        super().__init__(ConvNet1d(), batch_size, device, dtype, data_dir, weight_decay)
