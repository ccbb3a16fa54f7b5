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

Evaluation-point protocol: an optimizer whose gradients are taken at one
point and whose result is another (Schedule-Free: gradients at y, the
average x is the model) has the methods ``train()`` and ``eval()``, as the
``schedulefree`` package's do: ``eval()`` puts the evaluation point into
the parameters, ``train()`` the training point; each does nothing when the
optimizer is in that mode already, and ``state_dict()`` records the mode
(the package: ``train_mode`` in every param group). The trainer detects
the two methods (:func:`has_eval_point`; plugins need declare nothing) and,
at every epoch boundary, calls ``eval()`` before evaluation, measurements
and the checkpoint and ``train()`` before it trains on, so the metrics, the
measurements and the checkpoint see x, and a resumed run calls ``train()``
on the checkpoint's x as the unbroken run did. Where it evaluates or
measures, it first recomputes the model's BatchNorm statistics at x from
training minibatches (:mod:`jobs.batch_norm`): those training left are y's.
Why detection rather than a registry flag: the methods are what the
trainer calls, and a plugin that has them is served without saying so.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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


def has_eval_point(optimizer: torch.optim.Optimizer) -> bool:
    """Whether the optimizer evaluates at a point of its own: it has ``train()`` and ``eval()`` (see above)."""
    return callable(getattr(optimizer, "train", None)) and callable(getattr(optimizer, "eval", None))


@contextmanager
def at_training_point(optimizer: torch.optim.Optimizer) -> Iterator[None]:
    """Steps inside move an optimizer with an evaluation point from there and back: the update of x, not of y."""
    if not has_eval_point(optimizer):
        yield
        return
    optimizer.train()
    try:
        yield
    finally:
        optimizer.eval()


def step_with(optimizer: torch.optim.Optimizer, closure: Closure, closure_taken: bool = True) -> torch.Tensor:
    """One step on the closure's minibatch; a ``step()`` without a closure gets the minibatch gradient first."""
    if closure_taken:
        return optimizer.step(closure)
    loss = closure()
    optimizer.step()
    return loss
