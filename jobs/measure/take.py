"""Taking a measurement inside a training run without changing the run.

:func:`take_measurement` is what the trainer calls at a measured epoch
boundary. The measurement batch is drawn by a generator of its own,
seeded with ``seed + MEASURE_SEED_OFFSET``, afresh at every measurement:
the same examples at every epoch, and nothing to checkpoint. The same
generator then draws the random directions, and the global random stream
(dropout masks) is seeded with the same number, so the measurements of a
run differ only by the parameters they look at. :func:`untouched` restores
everything training reads afterwards.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from jobs import checkpoint
from jobs.measure.context import Context
from jobs.measure.registry import MEASUREMENTS
from jobs.problems.base import Problem, Split, TensorProblem

#: Offset of the measurement generator's seed from the run's seed (the trainer's fresh batches use +1).
MEASURE_SEED_OFFSET = 2


def measurement_batch(problem: Problem, examples: int, generator: torch.Generator) -> Any:
    """``examples`` training examples chosen by ``generator``, without augmentation.

    A problem without a stored training split (the noisy quadratic, the
    synthetic functions) gives one training minibatch drawn by
    ``generator`` instead: its own batch size, ``examples`` unused.
    """
    if not isinstance(problem, TensorProblem):
        return next(iter(problem.train_batches(generator)), None)
    train = problem.splits["train"]
    index = torch.randperm(len(train), generator=generator)[:examples].to(train.inputs.device)
    targets = None if train.targets is None else train.targets[index]
    return Split(problem.prepare(train.inputs[index]), targets)


@contextmanager
def untouched(model: nn.Module, optimizer: torch.optim.Optimizer | None) -> Iterator[None]:
    """Restore, bitwise, the model's parameters, buffers and gradients, the optimizer's state and the RNGs."""
    rng = checkpoint.capture_rng()
    state = copy.deepcopy(model.state_dict())
    gradients = [None if p.grad is None else p.grad.clone() for p in model.parameters()]
    optimizer_state = None if optimizer is None else copy.deepcopy(optimizer.state_dict())
    try:
        yield
    finally:
        model.load_state_dict(state)
        for param, gradient in zip(model.parameters(), gradients, strict=True):
            param.grad = gradient
        if optimizer is not None:
            optimizer.load_state_dict(optimizer_state)
        checkpoint.restore_rng(rng)


def take_measurement(config: Mapping[str, Any], problem: Problem, optimizer: torch.optim.Optimizer | None,
                     make_closure: Callable[[Any], Any], seed: int) -> dict[str, Any]:
    """Run the validated ``measure`` config's measurement; its record without epoch, step and time.

    ``make_closure(batch)`` gives a closure over a batch (the trainer's, with its own pass counts).
    """
    measure = MEASUREMENTS.load(config["name"])
    with untouched(problem.model, optimizer):
        generator = torch.Generator().manual_seed(seed + MEASURE_SEED_OFFSET)
        _seed_global_stream(seed + MEASURE_SEED_OFFSET)
        batch = measurement_batch(problem, config["examples"], generator)
        params = [p for p in problem.model.parameters() if p.requires_grad]
        context = Context(params, make_closure(batch), optimizer, generator)
        result = measure(context, **MEASUREMENTS.arguments(config))
    return {"measurement": config["name"], "examples": _size(batch), "scalars": result.scalars,
            "arrays": result.arrays}


def _seed_global_stream(seed: int) -> None:
    """Seed torch's CPU stream, and CUDA's where in use (not lazily: that would outlive :func:`untouched`)."""
    torch.random.default_generator.manual_seed(seed)
    if torch.cuda.is_initialized():
        torch.cuda.manual_seed_all(seed)


def _size(batch: Any) -> int | None:
    """How many examples the batch holds; None for the synthetic functions' empty batch."""
    return None if batch is None else len(batch)
