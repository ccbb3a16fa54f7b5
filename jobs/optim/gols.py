"""GOLS-I: Gradient-Only Line Search that is Inexact (Kafka & Wilke 2019).

"Resolving learning rates adaptively by locating stochastic non-negative
associated gradient projection points using line searches", as Algorithm 4
of the PAL/LABPAL dissertation (seed ``003``, section 2.6.4) states it.
Only signs of directional derivatives matter, each measured on its own
minibatch. With ``l'_B(lr) = grad L_B(theta + lr d) . d``:

    lr_max = min(1 / ||d||, 1e7),  lr = clip(previous lr, lr_min, lr_max)
    accept lr at once if 0 <= l'_B1(lr) <= c2 |l'_B0(0)|
    else if l'_B1(lr) < 0 and lr < lr_max:  grow:   lr *= eta, measure l'(lr), until l' >= 0 or lr > lr_max / eta
    else if l'_B1(lr) >= 0 and lr > lr_min: shrink: lr /= eta, measure l'(lr), until l' < 0 or lr < lr_min * eta
    else keep lr (a search that starts at a bound stays there)
    theta <- theta + lr d

The bounds are those of the authors' ``Opt_PyGOLS.py`` (GitHub gorglab/GOLS,
``LineSearch='Inexact'``): a search grows only from below ``lr_max`` and
shrinks only from above ``lr_min``, and each new lr is measured before the
bound check ends the search. Algorithm 4 as printed checks the bound first
and so returns an lr it never measured, ``eta * lr_max`` from a start at
``lr_max``. As in the authors' code, a search that starts within a factor
``eta`` of a bound may take one step past it (to at most ``eta * lr_max`` or
down to ``lr_min / eta``), measured like every other.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch

from jobs.optim.line_search import LineSearchOptimizer
from jobs.optim.protocol import Closure, evaluate
from jobs.optim.vectors import copies, dots, grads, place

ACCEPTED, GREW, SHRANK, NO_STEP, AT_BOUND = 0, 1, 2, 3, 4


class GOLSI(LineSearchOptimizer):
    """Gradient-only inexact line search; each evaluation on a fresh minibatch.

    Defaults are Algorithm 4's: ``lr_init=1e-8`` (later searches start from
    the previous step's lr), ``c2=0.9``, ``eta=2``, ``lr_min=1e-8``, and
    ``lr_max=1e7`` (the cap besides ``1/||d||``). ``momentum`` (default 0,
    the dissertation's grids try 0.4 and 0.9) makes the direction
    ``d = -g + momentum * d_prev``.

    Cost: one forward and backward pass at theta on the step's minibatch,
    then one forward and backward pass per evaluated step size, each on a
    fresh minibatch from :meth:`set_batch_source`. Without a source every
    evaluation reuses the step's minibatch (a deterministic gradient-only
    search on the minibatch loss). ``diagnostics["evaluations"]`` counts
    forward passes, all with a backward pass.

    Choices:

    * A non-finite directional derivative counts as positive (the step went
      too far); while growing it stops the search at the previous lr.
    * With momentum, a direction that is not a descent direction on the
      step's minibatch (``g . d >= 0``) is reset to ``-g``.
    * A zero or non-finite gradient takes no step.

    ``diagnostics``: ``step_size`` (distance moved), ``effective_lr`` (lr),
    ``slope`` (``l'_B0(0)`` per unit distance), ``loss``, ``case`` (0
    accepted at once, 1 grew, 2 shrank, 3 no step, 4 kept a first lr that
    sits at a bound: ``lr_max`` with a negative slope or ``lr_min`` with a
    positive one), ``evaluations``.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr_init: float = 1e-8,
        c2: float = 0.9,
        eta: float = 2.0,
        momentum: float = 0.0,
        lr_min: float = 1e-8,
        lr_max: float = 1e7,
    ):
        if not 0.0 < lr_init < math.inf:
            raise ValueError(f"lr_init must be a finite number > 0 (got {lr_init!r}).")
        if not 0.0 < c2 < math.inf:
            raise ValueError(f"c2 must be a finite number > 0 (got {c2!r}).")
        if not 1.0 < eta < math.inf:
            raise ValueError(f"eta must be a finite number > 1 (got {eta!r}).")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1) (got {momentum!r}).")
        if not 0.0 < lr_min < lr_max:
            raise ValueError(f"lr_min and lr_max must satisfy 0 < lr_min < lr_max (got {lr_min!r}, {lr_max!r}).")
        defaults = {"lr_init": lr_init, "c2": c2, "eta": eta, "momentum": momentum, "lr_min": lr_min,
                    "lr_max": lr_max}
        super().__init__(params, defaults)

    def step(self, closure: Closure | None = None) -> torch.Tensor:  # type: ignore[override]
        closure = self.require(closure)
        h, state = self.hyper, self.global_state
        loss = evaluate(closure, backward=True)
        l0 = loss.item()
        params = self.params_with_grad()
        with torch.no_grad():
            direction, dd, slope0 = self.descent_direction(params, h["momentum"])
        if not (math.isfinite(l0) and math.isfinite(dd) and dd > 0):
            self._report(0.0, 0.0, math.nan, l0, NO_STEP, evaluations=1)
            return loss

        norm = math.sqrt(dd)
        lr_min, eta = h["lr_min"], h["eta"]
        lr_max = min(1.0 / norm, h["lr_max"])
        lr = min(max(state.get("lr", h["lr_init"]), lr_min), lr_max)
        origin = copies(params)
        evaluations = 1

        def slope(at: float) -> float:
            nonlocal evaluations
            place(params, origin, direction, at)
            evaluate(self.fresh_closure(closure), backward=True)
            evaluations += 1
            with torch.no_grad():
                value = dots([(grads(params), direction)])[0]
            return value if math.isfinite(value) else math.inf

        first = slope(lr)
        if 0.0 <= first <= h["c2"] * abs(slope0):
            case = ACCEPTED
        elif first < 0.0 and lr < lr_max:
            case = GREW
            while True:
                lr *= eta
                value = slope(lr)
                if value == math.inf:
                    lr /= eta
                    break
                if value >= 0.0 or lr > lr_max / eta:
                    break
        elif first >= 0.0 and lr > lr_min:
            case = SHRANK
            while True:
                lr /= eta
                if slope(lr) < 0.0 or lr < lr_min * eta:
                    break
        else:
            case = AT_BOUND

        place(params, origin, direction, lr)
        self.keep_direction(params, direction, self.hyper["momentum"])
        state["lr"] = lr
        self._report(lr * norm, lr, slope0 / norm, l0, case, evaluations)
        return loss

    def _report(self, distance: float, lr: float, slope: float, l0: float, case: int, evaluations: int) -> None:
        self.diagnostics = {
            "step_size": distance,
            "effective_lr": lr,
            "slope": slope,
            "loss": l0,
            "case": case,
            "evaluations": evaluations,
        }
