"""Plugin classes for the in-process tests, named by targets such as ``plugin_classes:PlainSGD``.

The installed-package path (entry points, pip, a fresh environment) is tested with the package in toys/.
"""

from __future__ import annotations

from typing import Literal

import torch

from jobs.problems.base import Problem
from jobs.problems.data.files import DatasetFiles


class PlainSGD(torch.optim.Optimizer):
    """SGD whose step takes no closure: the trainer must compute the gradient before calling it."""

    def __init__(self, params, lr: float = 0.01):
        super().__init__(params, {"lr": lr})

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            for p in group["params"]:
                p.add_(p.grad, alpha=-group["lr"])


class Typed(torch.optim.Optimizer):
    """Every kind of hyperparameter optbench reads from a signature."""

    hyperparameters = {"lr": {"low": 0.0, "low_open": True, "help": "step size"},
                       "mode": {"help": "which rule"}, "steps": {"low": 1}}

    def __init__(self, params, lr: float = 0.1, steps: int = 3, mode: Literal["fast", "slow"] = "fast",
                 betas: tuple[float, float] = (0.9, 0.99), scale: float | None = None, shift: int | float = 2,
                 flag=False, count=0, anything=None, callback=print):
        super().__init__(params, {"lr": lr})


class Required(torch.optim.Optimizer):
    def __init__(self, params, lr: float):
        super().__init__(params, {"lr": lr})


class NoLearningRate(torch.optim.Optimizer):
    """Chooses its own step: schedules cannot apply."""

    def __init__(self, params, alpha: float = 1.0):
        super().__init__(params, {"alpha": alpha})


class ReservedName(torch.optim.Optimizer):
    def __init__(self, params, target: float = 1.0):
        super().__init__(params, {"target": target})


class UntypedRequired(torch.optim.Optimizer):
    def __init__(self, params, rule):
        super().__init__(params, {})


class DeclaresUnknown(torch.optim.Optimizer):
    hyperparameters = {"lrr": {"low": 0.0}}

    def __init__(self, params, lr: float = 0.1):
        super().__init__(params, {"lr": lr})


class DeclaresBadSetting(torch.optim.Optimizer):
    hyperparameters = {"lr": {"minimum": 0.0}}

    def __init__(self, params, lr: float = 0.1):
        super().__init__(params, {"lr": lr})


def not_a_class():
    return None


class FromFiles(Problem):
    """A problem that reads two files from the data folder; never built in the tests (its files are missing)."""

    dataset_files = DatasetFiles("Toy data", "toy", ("train.npy", "test.npy"), source="the toy generator's output")

    def __init__(self, batch_size: int, data_dir: str | None = None, scale: float = 1.0):
        raise AssertionError("the launcher must refuse before any job builds this problem")

    def train_batches(self, generator):
        return iter(())

    def steps_per_epoch(self):
        return 0

    def batch_loss(self, batch):
        return torch.zeros(())

    def evaluate(self, split):
        return {"loss": 0.0}
