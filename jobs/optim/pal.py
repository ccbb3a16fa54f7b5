"""PAL: Parabolic Approximation Line Search (Mutschler & Zell 2020).

Algorithm 8 of Mutschler's dissertation on empirical line searches (the
seed ``003``), also "Parabolic Approximation Line Search for DNNs",
NeurIPS 2020. Per step, on one minibatch:

    d_t  = -g_t + beta * d_{t-1}            (d_0 = -g_0)
    u    = d_t / ||d_t||                    (norm over all parameters jointly)
    l0   = L(theta),  b = g_t . u,  l_mu = L(theta + mu * u)
    a    = (l_mu - l0 - b * mu) / mu^2
    s    = -alpha * b / (2a)  if a > 0 and b < 0    (case 1: parabola minimum)
           mu                 if a <= 0 and b < 0   (case 2: concave or linear)
           0                  otherwise             (case 3: no descent along d)
    theta <- theta + min(s, s_max) * u

The effective learning rate is ``s / ||d_t||``: the step ``theta - lr * g``
that SGD would take for the same move when beta = 0.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch

from jobs.optim.line_search import LineSearchOptimizer
from jobs.optim.protocol import Closure
from jobs.optim.vectors import dots, grads


class PAL(LineSearchOptimizer):
    """Parabolic Approximation Line Search; needs a closure (see :mod:`jobs.optim`).

    Defaults are the first column of Algorithm 8's table: ``mu=0.1``,
    ``alpha=1.0``, ``beta=0.4``, ``s_max=3.16`` (10^0.5). The paper's code
    also used ``alpha=1/0.6`` (about 1.66, correcting parabolas that come
    out slightly too narrow) and ``mu=0.01`` in places; we keep 1.0 and 0.1
    and let sweeps choose.

    Choices the text leaves open:

    * The final point is computed from a saved copy of theta as
      ``theta + (s / ||d||) * d`` rather than by moving on from the measuring
      point, so a rejected step restores theta bitwise. That copy is the
      only memory beyond SGD with momentum, and it lives for one step.
    * A non-finite ``l0``, gradient, ``l_mu`` or parabola leaves theta as it
      was and keeps the previous direction (``case`` 0 in the diagnostics).
    * ``l_mu`` is measured in every case, as in Algorithm 8, so a step always
      costs two forward passes and one backward pass. A zero direction
      cannot be normalised: no update and no second evaluation.
    * The line search is one search over all parameters, so param groups
      cannot override the hyperparameters. Parameters whose ``.grad`` is
      None take no part in the step.
    * ``s_max=inf`` disables the cap (the registry still asks for a finite value).

    ``diagnostics`` holds the last step's ``step_size``, ``effective_lr``,
    ``slope`` (b), ``curvature`` (2a), ``loss`` (l0), ``case`` and
    ``evaluations`` (forward passes).
    """

    def __init__(
        self,
        params: Iterable[Any],
        mu: float = 0.1,
        alpha: float = 1.0,
        beta: float = 0.4,
        s_max: float = 3.16,
    ):
        if not 0.0 < mu < math.inf:
            raise ValueError(f"mu must be a finite number > 0 (got {mu!r}).")
        if not 0.0 < alpha < math.inf:
            raise ValueError(f"alpha must be a finite number > 0 (got {alpha!r}).")
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"beta must be in [0, 1) (got {beta!r}).")
        if not s_max > 0.0:
            raise ValueError(f"s_max must be > 0 (got {s_max!r}).")
        super().__init__(params, {"mu": mu, "alpha": alpha, "beta": beta, "s_max": s_max})

    def step(self, closure: Closure | None = None) -> torch.Tensor:  # type: ignore[override]
        closure = self.require(closure)
        group = self.param_groups[0]
        mu, alpha, beta, s_max = group["mu"], group["alpha"], group["beta"], group["s_max"]

        with torch.enable_grad():
            loss = closure()
        l0 = loss.item()
        params = [p for g in self.param_groups for p in g["params"] if p.grad is not None]
        with torch.no_grad():
            directions = [self._direction(p, beta) for p in params]
            norm, b = self._norm_and_slope(params, directions)
        if not all(map(math.isfinite, (l0, norm, b))):
            return self._reject(loss, l0, b, math.nan, evaluations=1)
        if norm == 0.0:
            self._keep(params, directions)
            self._report(0.0, 0.0, b, math.nan, l0, case=3, evaluations=1)
            return loss

        with torch.no_grad():
            origins = [p.detach().clone() for p in params]
            for p, d in zip(params, directions, strict=True):
                p.add_(d, alpha=mu / norm)
            l_mu = closure(backward=False).item()
            a = (l_mu - l0 - b * mu) / mu**2
            if not math.isfinite(a):
                for p, origin in zip(params, origins, strict=True):
                    p.copy_(origin)
                return self._reject(loss, l0, b, 2 * a, evaluations=2)

            if a > 0 and b < 0:
                s, case = -alpha * b / (2 * a), 1
            elif b < 0:
                s, case = mu, 2
            else:
                s, case = 0.0, 3
            s = min(s, s_max)
            for p, origin, d in zip(params, origins, directions, strict=True):
                p.copy_(origin)
                if s != 0.0:
                    p.add_(d, alpha=s / norm)
        self._keep(params, directions)
        self._report(s, s / norm, b, 2 * a, l0, case=case, evaluations=2)
        return loss

    def _direction(self, p: torch.Tensor, beta: float) -> torch.Tensor:
        d = p.grad.neg()
        previous = self.state[p].get("direction")
        if previous is not None:
            d.add_(previous, alpha=beta)
        return d

    @staticmethod
    def _norm_and_slope(params: list[torch.Tensor], directions: list[torch.Tensor]) -> tuple[float, float]:
        """||d|| and g.d/||d|| over all parameters, with one device sync."""
        dd, gd = dots([(directions, directions), (grads(params), directions)])
        norm = math.sqrt(dd)
        return norm, (gd / norm if norm > 0 else 0.0)

    def _keep(self, params: list[torch.Tensor], directions: list[torch.Tensor]) -> None:
        for p, d in zip(params, directions, strict=True):
            self.state[p]["direction"] = d

    def _reject(self, loss: torch.Tensor, l0: float, b: float, curvature: float, evaluations: int) -> torch.Tensor:
        self._report(0.0, 0.0, b, curvature, l0, case=0, evaluations=evaluations)
        return loss

    def _report(self, s: float, lr: float, b: float, curvature: float, l0: float, case: int, evaluations: int) -> None:
        self.diagnostics = {
            "step_size": s,
            "effective_lr": lr,
            "slope": b,
            "curvature": curvature,
            "loss": l0,
            "case": case,
            "evaluations": evaluations,
        }
