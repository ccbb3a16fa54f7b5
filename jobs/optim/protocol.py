"""The closure protocol between a trainer and an optimizer, and the optional hooks around it.

``step(closure)``: ``closure(backward=True)`` re-evaluates the loss on the
step's minibatch with the same random numbers (dropout) on every call,
zeroes and fills ``.grad`` only when ``backward`` is true, and returns the
loss tensor. A plugin's ``step()`` may take no closure: then the trainer
calls the closure once first and the step finds the gradient in ``.grad``
(:func:`step_with`).

Batch-source protocol: ``set_batch_source(source)``, where ``source()``
takes no arguments and returns a new closure over a fresh random training
minibatch. The trainer averages losses and gradients over ranks inside
every closure, so optimizers that only use closure return values (and the
``.grad`` a closure fills) stay rank-consistent.

Training-length protocol: optimizers whose rules depend on how long
training is (SLS's step-size reset per epoch, LABPAL's batch-size
schedule) implement ``set_training_length(total_steps, steps_per_epoch)``;
a trainer calls it once before the first step. A value given to the
constructor takes precedence over the trainer's.

Diagnostics: ``optimizer.diagnostics``, a dict of numbers the last step
set (step size, effective learning rate, curvature, evaluations), logged
by the trainer.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Protocol

import torch


class Closure(Protocol):
    """What an optimizer's ``step`` receives: one minibatch, re-evaluated on every call."""

    def __call__(self, backward: bool = True) -> torch.Tensor: ...


BatchSource = Callable[[], Closure]


def evaluate(closure: Closure, backward: bool) -> torch.Tensor:
    """Call the closure with gradients enabled exactly when a backward pass is asked for."""
    if backward:
        with torch.enable_grad():
            return closure()
    with torch.no_grad():
        return closure(backward=False)


def takes_closure(optimizer: torch.optim.Optimizer) -> bool:
    """Whether ``optimizer.step`` takes a closure (torch.optim's and optbench's do; a plugin's may not)."""
    return len(inspect.signature(optimizer.step).parameters) > 0


def step_with(optimizer: torch.optim.Optimizer, closure: Closure, closure_taken: bool = True) -> torch.Tensor:
    """One step on the closure's minibatch; a ``step()`` without a closure gets the minibatch gradient first."""
    if closure_taken:
        return optimizer.step(closure)
    loss = closure()
    optimizer.step()
    return loss
