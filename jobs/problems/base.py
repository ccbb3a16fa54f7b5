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

from jobs.curvature.outputs import Likelihood, ModelOutput
from jobs.problems.data.files import DatasetFiles

SPLITS = ("train", "valid", "test")


class Problem(ABC):
    """The base of every test problem, optbench's own and plugins (see :mod:`jobs.plugins`).

    A plugin's constructor takes its hyperparameters, and those of
    ``batch_size``, ``device``, ``dtype`` and ``data_dir`` it needs, by name;
    it builds ``self.model`` on ``device`` in ``dtype`` and, when it reads
    files, reads them from ``data_dir``.
    """

    #: Whether :meth:`evaluate` reports ``accuracy`` besides ``loss``.
    has_accuracy = False
    #: The model's predictive distribution when the data loss is its negative log-likelihood (classifiers);
    #: None where it is not, and then Gauss-Newton, Fisher and K-FAC do not apply.
    likelihood: Likelihood | None = None
    #: A plugin's defaults for ``train.batch_size`` and ``train.epochs`` (None: the root config's).
    default_batch_size: int | None = None
    default_epochs: int | None = None
    #: A plugin's files in the data folder, checked before anything is launched (None: it reads none).
    dataset_files: DatasetFiles | None = None
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


class DeterministicProblem(Problem):
    """A function of the parameters alone: no data, every split reports the same value.

    Every "minibatch" is the whole function (``None``); an epoch is
    ``steps_per_epoch`` steps.
    """

    def __init__(self, steps_per_epoch: int):
        self._steps_per_epoch = steps_per_epoch

    @abstractmethod
    def value(self) -> torch.Tensor:
        """The objective at the current parameters."""

    def steps_per_epoch(self) -> int:
        return self._steps_per_epoch

    def train_batches(self, generator: torch.Generator) -> Iterator[None]:
        return iter([None] * self._steps_per_epoch)

    def batch_loss(self, batch: None) -> torch.Tensor:
        return self.value()

    @torch.no_grad()
    def evaluate(self, split: str) -> dict[str, float]:
        return {"loss": float(self.value())}


@dataclass
class Split:
    inputs: torch.Tensor
    targets: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.inputs)


class TensorProblem(Problem):
    """A problem whose splits fit in memory as tensors (on the run's device).

    Stored inputs may be raw (uint8 pixels, say): :meth:`prepare` turns a
    slice of them into model inputs, and augments training batches with
    random numbers from the epoch's generator, so a batch is fixed once
    drawn (a line search re-evaluates exactly it) and the data order and
    augmentation both resume from a checkpointed generator.
    ``train_eval_size``: evaluate the training loss on the first that many
    training examples only (DeepOBS measures it on a subset the size of the
    test set; the training split is stored in random order).
    """

    eval_chunk = 4096

    def __init__(self, model: nn.Module, splits: dict[str, Split], batch_size: int, drop_last: bool = True,
                 train_eval_size: int | None = None):
        self.model = model
        self.splits = splits
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.train_eval_size = train_eval_size

    @abstractmethod
    def example_losses(self, outputs: Any, targets: torch.Tensor | None) -> torch.Tensor:
        """Per-example data loss (no regularisation)."""

    def example_accuracies(self, outputs: Any, targets: torch.Tensor | None) -> torch.Tensor:
        """Per-example accuracy (1 or 0 for a classifier), for problems with ``has_accuracy``."""
        return outputs.argmax(dim=1) == targets

    def prepare(self, inputs: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Model inputs from stored ones; ``generator`` (training batches only) draws the augmentation."""
        return inputs

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
            yield Split(self.prepare(train.inputs[index], generator), targets)

    def batch_loss(self, batch: Split) -> torch.Tensor:
        return self.model_output(batch).loss()

    def model_output(self, batch: Split) -> ModelOutput:
        """One forward pass over ``batch``, for the curvature methods (see :mod:`jobs.curvature`)."""
        return ModelOutput(self.model(batch.inputs), batch.targets, self.example_losses, self.likelihood,
                           self.regularizer())

    @torch.no_grad()
    def evaluate(self, split: str) -> dict[str, float]:
        data = self.splits[split]
        size = len(data) if split != "train" or self.train_eval_size is None else min(len(data), self.train_eval_size)
        was_training = self.model.training
        self.model.eval()
        loss_sum, correct = 0.0, 0.0
        for start in range(0, size, self.eval_chunk):
            stop = min(start + self.eval_chunk, size)
            inputs = self.prepare(data.inputs[start:stop])
            targets = None if data.targets is None else data.targets[start:stop]
            outputs = self.model(inputs)
            loss_sum += float(self.example_losses(outputs, targets).sum())
            if self.has_accuracy:
                correct += float(self.example_accuracies(outputs, targets).sum())
        self.model.train(was_training)
        metrics = {"loss": loss_sum / size}
        if self.has_accuracy:
            metrics["accuracy"] = correct / size
        return metrics
