"""ALI-G: Adaptive Learning-rates for Interpolation with Gradients (Berrada et al., ICML 2020).

"Training Neural Networks for and by Interpolation". A Polyak step size
that assumes the minimal loss is 0 (interpolation), capped by the maximal
learning rate ``eta`` (Eq. 2.50 of the PAL/LABPAL dissertation, seed
``003``):

    gamma = min(L_B(theta) / (||g||^2 + eps), eta)
    z     <- mu * z - gamma * g                    (only with momentum mu > 0)
    theta <- theta - gamma * g + mu * z            (Nesterov momentum)
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch

from jobs.optim.protocol import Closure, evaluate
from jobs.optim.vectors import dot


class ALIG(torch.optim.Optimizer):
    """Polyak step sizes capped at ``lr``, with Nesterov momentum as in Berrada et al.

    ``lr`` is ALI-G's maximal learning rate ``eta`` (their ``max_lr``). It is
    named ``lr`` so that learning-rate schedules scale the cap, which is how
    Berrada et al. decay it when they do. Defaults: ``lr=0.1``,
    ``momentum=0.9`` (their CIFAR setting; the dissertation's grid is lr in
    {10, 1, 0.1, 0.01} x momentum in {0.85, 0.9, 0.95}), ``eps=1e-5`` (their
    code's default).

    Choices: the dissertation says only "SGD with momentum"; we follow the
    paper and its code, whose momentum is Nesterov's (above), not torch's
    heavy ball. The step size is global (one loss, the gradient norm over all
    parameters, ``eps`` from the first group); each param group caps it
    with its own ``lr``. A non-finite loss or gradient takes no step. The loss must
    be non-negative with minimum near 0 for the Polyak step to make sense.
    Cost: one forward and backward pass.

    ``diagnostics``: ``effective_lr`` (the first group's gamma),
    ``polyak_step`` (before the cap), ``loss``, ``grad_norm``, ``evaluations``.
    """

    def __init__(self, params: Iterable[Any], lr: float = 0.1, momentum: float = 0.9, eps: float = 1e-5):
        if not lr > 0.0:
            raise ValueError(f"lr must be > 0 (got {lr!r}).")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1) (got {momentum!r}).")
        if not 0.0 < eps < math.inf:
            raise ValueError(f"eps must be a finite number > 0 (got {eps!r}).")
        super().__init__(params, {"lr": lr, "momentum": momentum, "eps": eps})
        self.diagnostics: dict[str, float | int] = {}

    def step(self, closure: Closure | None = None) -> torch.Tensor:  # type: ignore[override]
        if closure is None:
            raise ValueError("ALIG needs a closure that returns the minibatch loss (its step size uses it).")
        loss = evaluate(closure, backward=True)
        value = loss.item()
        params = [p for group in self.param_groups for p in group["params"] if p.grad is not None]
        gg = dot([p.grad for p in params], [p.grad for p in params])
        polyak = value / (gg + self.param_groups[0]["eps"])
        if not math.isfinite(polyak):
            polyak = 0.0  # a non-finite loss or gradient: no step
        gammas = []
        with torch.no_grad():
            for group in self.param_groups:
                gamma = min(polyak, group["lr"])
                gammas.append(gamma)
                momentum = group["momentum"]
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    p.add_(p.grad, alpha=-gamma)
                    if momentum > 0:
                        buffer = self.state[p].get("momentum_buffer")
                        if buffer is None:
                            buffer = self.state[p]["momentum_buffer"] = torch.zeros_like(p)
                        buffer.mul_(momentum).add_(p.grad, alpha=-gamma)
                        p.add_(buffer, alpha=momentum)
        self.diagnostics = {
            "effective_lr": gammas[0],
            "polyak_step": polyak,
            "loss": value,
            "grad_norm": math.sqrt(gg),
            "evaluations": 1,
        }
        return loss
