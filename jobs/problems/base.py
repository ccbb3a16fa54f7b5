"""What a test problem offers the trainer.

A problem owns its model and its data. The trainer only asks for the
training minibatches of one epoch (shuffled by a generator it seeds), the
loss on one minibatch (the objective the optimizer sees, regularisation
included), and evaluation metrics on a split.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

SPLITS = ("train", "valid", "test")


class Problem(ABC):
    #: Whether :meth:`evaluate` reports ``accuracy`` besides ``loss``.
    has_accuracy = False
    model: nn.Module

    @abstractmethod
    def train_batches(self, generator: torch.Generator) -> Iterator[Any]:
        """The minibatches of one training epoch."""

    @abstractmethod
    def steps_per_epoch(self) -> int:
        """How many minibatches :meth:`train_batches` yields."""

    @abstractmethod
    def batch_loss(self, batch: Any) -> torch.Tensor:
        """Scalar training objective on ``batch`` (regularisation included)."""

    @abstractmethod
    def evaluate(self, split: str) -> dict[str, float]:
        """``loss`` (and ``accuracy`` where defined) on ``split``, without regularisation."""


@dataclass
class Split:
    inputs: torch.Tensor
    targets: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.inputs)


class TensorProblem(Problem):
    """A problem whose splits fit in memory as tensors (on the run's device)."""

    eval_chunk = 4096

    def __init__(self, model: nn.Module, splits: dict[str, Split], batch_size: int, drop_last: bool = True):
        self.model = model
        self.splits = splits
        self.batch_size = batch_size
        self.drop_last = drop_last

    @abstractmethod
    def example_losses(self, outputs: torch.Tensor, targets: torch.Tensor | None) -> torch.Tensor:
        """Per-example data loss (no regularisation)."""

    def regularizer(self) -> torch.Tensor | float:
        return 0.0

    def steps_per_epoch(self) -> int:
        size = len(self.splits["train"])
        return size // self.batch_size if self.drop_last else -(-size // self.batch_size)

    def train_batches(self, generator: torch.Generator) -> Iterator[Split]:
        train = self.splits["train"]
        order = torch.randperm(len(train), generator=generator).to(train.inputs.device)
        stop = len(train) - len(train) % self.batch_size if self.drop_last else len(train)
        for start in range(0, stop, self.batch_size):
            index = order[start : start + self.batch_size]
            targets = None if train.targets is None else train.targets[index]
            yield Split(train.inputs[index], targets)

    def batch_loss(self, batch: Split) -> torch.Tensor:
        outputs = self.model(batch.inputs)
        return self.example_losses(outputs, batch.targets).mean() + self.regularizer()

    @torch.no_grad()
    def evaluate(self, split: str) -> dict[str, float]:
        data = self.splits[split]
        was_training = self.model.training
        self.model.eval()
        loss_sum, correct = 0.0, 0
        for start in range(0, len(data), self.eval_chunk):
            inputs = data.inputs[start : start + self.eval_chunk]
            targets = None if data.targets is None else data.targets[start : start + self.eval_chunk]
            outputs = self.model(inputs)
            loss_sum += float(self.example_losses(outputs, targets).sum())
            if self.has_accuracy:
                correct += int((outputs.argmax(dim=1) == targets).sum())
        self.model.train(was_training)
        metrics = {"loss": loss_sum / len(data)}
        if self.has_accuracy:
            metrics["accuracy"] = correct / len(data)
        return metrics
