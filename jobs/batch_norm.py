"""BatchNorm running statistics recomputed at the current parameters.

Training in train mode leaves each BatchNorm layer's running mean and
variance an exponential average over the points the parameters passed
through. An optimizer that evaluates elsewhere (Schedule-Free's x, see
:mod:`jobs.optim.protocol`) needs them at that point instead: reset, then
forward passes in train mode without gradients, momentum off, so that each
layer ends with the plain average over the batches of their means and
(unbiased) variances, as ``torch.optim.swa_utils.update_bn`` computes it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn


def batch_norm_layers(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """The model's BatchNorm layers that keep running statistics."""
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]


def recompute_batch_norm(model: nn.Module, forward: Callable[[Any], Any], batches: Iterable[Any]) -> None:
    """Replace every running mean and variance by their average over ``forward(batch)`` of ``batches``.

    ``batches`` is not consumed when the model has no BatchNorm layer; the
    model's mode and its layers' momenta are left as they were.
    """
    layers = batch_norm_layers(model)
    if not layers:
        return
    momenta = [layer.momentum for layer in layers]
    was_training = model.training
    for layer in layers:
        layer.reset_running_stats()
        layer.momentum = None  # a cumulative average: every batch counts the same
    model.train()
    try:
        with torch.no_grad():
            for batch in batches:
                forward(batch)
    finally:
        for layer, momentum in zip(layers, momenta, strict=True):
            layer.momentum = momentum
        model.train(was_training)
