"""COCOB-Backprop: continuous coin betting (Orabona & Tommasi, NeurIPS 2017).

"Training Deep Networks without Learning Rates Through Coin Betting",
Algorithm 2. Each coordinate is a gambler betting that the next negative
gradient has the sign of its current offset from the start ``w_1``. Per
coordinate, with the gradient ``g`` of step t:

    L      <- max(L, |g|)                      (largest gradient seen; L_0 = eps)
    G      <- G + |g|                          (sum of absolute gradients)
    Reward <- max(Reward - (w_t - w_1) g, 0)   (money won so far)
    theta  <- theta - g                        (sum of negative gradients)
    w_{t+1} = w_1 + theta / (L max(G + L, alpha L)) * (L + Reward)

The first step therefore moves every coordinate by exactly ``1/alpha``
against its gradient's sign (for ``alpha >= 2``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch

from jobs.optim.protocol import Closure, evaluate


class COCOB(torch.optim.Optimizer):
    """COCOB-Backprop: no learning rate; ``alpha`` bounds how fast a coordinate may move.

    Default ``alpha=100`` is the paper's (the dissertation's grid is
    {25, 50, ..., 200}); ``eps=1e-8`` is the initial ``L``, which keeps the
    first division finite for coordinates whose gradient is still zero.
    Memory: five buffers per parameter (``w_1``, ``L``, ``G``, ``Reward``,
    ``theta``); cost: one forward and backward pass.

    Choice: the reward uses the offset from the initial weights,
    ``w_t - w_1``, as the paper's Algorithm 2 does (some ports use ``w_t``).

    ``diagnostics``: ``effective_lr`` (``||w_{t+1} - w_t|| / ||g||``, the SGD
    learning rate that would move as far), ``step_size`` (that distance),
    ``evaluations``.
    """

    def __init__(self, params: Iterable[Any], alpha: float = 100.0, eps: float = 1e-8):
        if not 0.0 < alpha < math.inf:
            raise ValueError(f"alpha must be a finite number > 0 (got {alpha!r}).")
        if not 0.0 < eps < math.inf:
            raise ValueError(f"eps must be a finite number > 0 (got {eps!r}).")
        super().__init__(params, {"alpha": alpha, "eps": eps})
        self.diagnostics: dict[str, float | int] = {}

    def step(self, closure: Closure | None = None) -> torch.Tensor | None:  # type: ignore[override]
        loss = None if closure is None else evaluate(closure, backward=True)
        moved, squared = [], []
        with torch.no_grad():
            for group in self.param_groups:
                alpha = group["alpha"]
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    g = p.grad
                    state = self.state[p]
                    if not state:
                        state["initial"] = p.detach().clone()
                        state["scale"] = torch.full_like(p, group["eps"])  # L
                        state["abs_sum"] = torch.zeros_like(p)  # G
                        state["reward"] = torch.zeros_like(p)
                        state["neg_grad_sum"] = torch.zeros_like(p)  # theta
                    initial, scale, abs_sum = state["initial"], state["scale"], state["abs_sum"]
                    reward, neg_grad_sum = state["reward"], state["neg_grad_sum"]
                    magnitude = g.abs()
                    torch.maximum(scale, magnitude, out=scale)
                    abs_sum.add_(magnitude)
                    reward.sub_((p - initial) * g).clamp_(min=0.0)
                    neg_grad_sum.sub_(g)
                    denominator = scale * torch.maximum(abs_sum + scale, alpha * scale)
                    target = initial + neg_grad_sum / denominator * (scale + reward)
                    moved.append(torch.linalg.vector_norm(target - p))
                    squared.append(torch.linalg.vector_norm(g))
                    p.copy_(target)
        distance, norm = (torch.linalg.vector_norm(torch.stack(terms)).item() if terms else 0.0
                          for terms in (moved, squared))
        self.diagnostics = {
            "step_size": distance,
            "effective_lr": distance / norm if norm > 0 else 0.0,
            "evaluations": int(closure is not None),
        }
        return loss
