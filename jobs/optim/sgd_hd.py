"""SGD-HD: SGD with hypergradient descent on the learning rate (Baydin et al., ICLR 2018).

"Online Learning Rate Adaptation with Hypergradient Descent". The loss
after one SGD step, as a function of the learning rate, has the derivative
``d/d lr L(theta_{t-1} - lr g_{t-1}) = -g_t . g_{t-1}`` (Eq. 2.48 of the
PAL/LABPAL dissertation, seed ``003``). Gradient descent on the learning
rate with the hypergradient learning rate ``beta`` gives, per step:

    lr_t    = lr_{t-1} + beta * g_t . g_{t-1}      (g_0 . g_{-1} := 0)
    theta_t = theta_{t-1} - lr_t * g_t
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch

from jobs.optim.protocol import Closure, evaluate
from jobs.optim.vectors import dot


class SGDHD(torch.optim.Optimizer):
    """SGD whose learning rate follows its own hypergradient.

    Defaults ``lr=0.001``, ``hypergrad_lr=0.001`` are Baydin et al.'s SGD-HD
    setting; the dissertation's grid is lr in {0.1, 0.01, 0.001} x
    hypergrad_lr in {0.1, 0.01, 0.001, 0.0001}.

    Choices: each param group adapts its own ``lr`` from the dot product of
    its own parameters' gradients (one group, the usual case, is Baydin et
    al.'s single global learning rate). The adapted rate lives in
    ``group["lr"]``, so ``state_dict()`` carries it; it is not clipped, as
    in the paper (it can turn negative if the hypergradient says so).
    Learning-rate schedules do not apply: the method sets the rate itself.
    Cost: one forward and backward pass; memory: the previous gradient.

    ``diagnostics``: ``effective_lr`` (first group's lr used this step),
    ``hypergradient`` (its ``-g_t . g_{t-1}``), ``evaluations``.
    """

    def __init__(self, params: Iterable[Any], lr: float = 0.001, hypergrad_lr: float = 0.001):
        if not 0.0 < lr < math.inf:
            raise ValueError(f"lr must be a finite number > 0 (got {lr!r}).")
        if not 0.0 <= hypergrad_lr < math.inf:
            raise ValueError(f"hypergrad_lr must be a finite number >= 0 (got {hypergrad_lr!r}).")
        super().__init__(params, {"lr": lr, "hypergrad_lr": hypergrad_lr})
        self.diagnostics: dict[str, float | int] = {}

    def step(self, closure: Closure | None = None) -> torch.Tensor | None:  # type: ignore[override]
        loss = None if closure is None else evaluate(closure, backward=True)
        report = None
        with torch.no_grad():
            for group in self.param_groups:
                params = [p for p in group["params"] if p.grad is not None]
                previous = [self.state[p].get("previous_grad") for p in params]
                pairs = [(p.grad, g) for p, g in zip(params, previous, strict=True) if g is not None]
                hypergradient = -dot(*zip(*pairs, strict=True)) if pairs else 0.0
                group["lr"] -= group["hypergrad_lr"] * hypergradient
                for p, kept in zip(params, previous, strict=True):
                    p.add_(p.grad, alpha=-group["lr"])
                    if kept is None:
                        self.state[p]["previous_grad"] = p.grad.detach().clone()
                    else:
                        kept.copy_(p.grad)
                if report is None:
                    report = {"effective_lr": group["lr"], "hypergradient": hypergradient}
        self.diagnostics = {**(report or {"effective_lr": 0.0, "hypergradient": 0.0}),
                            "evaluations": int(closure is not None)}
        return loss
