"""SLS: stochastic Armijo line search (Vaswani et al., NeurIPS 2019).

"Painless Stochastic Gradient: Interpolation, Line-Search, and Convergence
Rates", the SGD + Armijo variant, as Algorithm 3 of the PAL/LABPAL
dissertation (seed ``003``, section 2.6.3) states it. Per step, on one
minibatch B of a data set with ``n`` batches per epoch:

    lr <- min(lr * gamma^(1/n), lr_max)                 (reset: grow by gamma per epoch)
    repeat:  try theta - lr * g                           (first try: the reset lr)
             accept if L_B(theta - lr g) <= L_B(theta) - c * lr * ||g||^2
             else lr <- beta * lr

``gamma^(1/n)`` is the dissertation's ``gamma^(|B|/|D|)``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch

from jobs.optim.line_search import LineSearchOptimizer
from jobs.optim.protocol import Closure, evaluate
from jobs.optim.vectors import copies, dot, finite, grads, place


class SLS(LineSearchOptimizer):
    """SGD with a stochastic Armijo backtracking line search and the step-size reset rule.

    Defaults are Algorithm 3's: ``lr_init=1``, ``c=0.1``, ``beta=0.9``,
    ``gamma=2``, and ``lr_max=10`` (Vaswani et al.'s cap, the dissertation's
    grids' "maximum step size"). Cost: one forward and backward pass plus
    one forward pass per tried step size (``diagnostics["evaluations"]``
    counts all forward passes).

    Choices:

    * The reset needs the number of batches per epoch ``n``: pass
      ``n_batches_per_epoch`` or let the trainer call
      :meth:`set_training_length`. If neither says, the step size is not
      grown between steps (Vaswani et al.'s reset option 0) and a warning is
      logged once.
    * The cap ``lr_max`` applies to the reset step size, the first one tried.
    * As in Vaswani et al.'s code, a gradient norm below ``1e-8`` takes no
      step, and the search gives up after ``max_backtracks`` reductions. We
      then leave theta unchanged (their code takes a tiny step) and carry the
      reduced step size into the next step's reset.
    * Non-finite trial losses fail the Armijo test, so the search backtracks
      out of them; a non-finite loss or gradient at theta takes no step.

    ``diagnostics``: ``step_size`` (distance moved, ``lr * ||g||``),
    ``effective_lr`` (the accepted ``lr``; 0 when no step), ``loss``,
    ``grad_norm``, ``backtracks``, ``accepted`` (1/0), ``evaluations``.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr_init: float = 1.0,
        c: float = 0.1,
        beta: float = 0.9,
        gamma: float = 2.0,
        lr_max: float = 10.0,
        n_batches_per_epoch: int | None = None,
        max_backtracks: int = 100,
    ):
        if not 0.0 < lr_init < math.inf:
            raise ValueError(f"lr_init must be a finite number > 0 (got {lr_init!r}).")
        if not 0.0 < c < 1.0:
            raise ValueError(f"c must be in (0, 1) (got {c!r}).")
        if not 0.0 < beta < 1.0:
            raise ValueError(f"beta must be in (0, 1) (got {beta!r}).")
        if not 1.0 <= gamma < math.inf:
            raise ValueError(f"gamma must be a finite number >= 1 (got {gamma!r}).")
        if not lr_max > 0.0:
            raise ValueError(f"lr_max must be > 0 (got {lr_max!r}).")
        if n_batches_per_epoch is not None and n_batches_per_epoch < 1:
            raise ValueError(f"n_batches_per_epoch must be >= 1 (got {n_batches_per_epoch!r}).")
        if max_backtracks < 0:
            raise ValueError(f"max_backtracks must be >= 0 (got {max_backtracks!r}).")
        defaults = {"lr_init": lr_init, "c": c, "beta": beta, "gamma": gamma, "lr_max": lr_max,
                    "n_batches_per_epoch": n_batches_per_epoch, "max_backtracks": max_backtracks}
        super().__init__(params, defaults)

    def set_training_length(self, total_steps: int, steps_per_epoch: int) -> None:
        """Take the epoch length from the trainer unless the constructor fixed it."""
        if self.hyper["n_batches_per_epoch"] is None:
            self.global_state["n_batches_per_epoch"] = int(steps_per_epoch)

    def reset_factor(self) -> float:
        """``gamma ** (1 / n_batches_per_epoch)``: the step size grows by ``gamma`` over one epoch."""
        n = self.hyper["n_batches_per_epoch"] or self.global_state.get("n_batches_per_epoch")
        if n is None:
            self.warn_once("epoch", "SLS does not know the number of batches per epoch, so its step size is not "
                                    "reset upwards; set n_batches_per_epoch or call set_training_length().")
            return 1.0
        return self.hyper["gamma"] ** (1.0 / n)

    def step(self, closure: Closure | None = None) -> torch.Tensor:  # type: ignore[override]
        closure = self.require(closure)
        h, state = self.hyper, self.global_state
        lr = min(state.get("lr", h["lr_init"]) * self.reset_factor(), h["lr_max"])

        loss = evaluate(closure, backward=True)
        l0 = loss.item()
        params = self.params_with_grad()
        gradient = grads(params)
        gg = dot(gradient, gradient)
        if not finite(l0, gg) or math.sqrt(gg) < 1e-8:
            self._report(0.0, 0.0, l0, gg, backtracks=0, accepted=False, evaluations=1)
            return loss

        origin = copies(params)
        evaluations, accepted = 1, False
        for backtracks in range(h["max_backtracks"] + 1):  # noqa: B007 - the count is reported
            if backtracks:
                lr *= h["beta"]
            place(params, origin, gradient, -lr)
            trial = evaluate(closure, backward=False).item()
            evaluations += 1
            if trial <= l0 - h["c"] * lr * gg:
                accepted = True
                break
        if not accepted:
            place(params, origin, gradient, 0.0)
        state["lr"] = lr
        self._report(lr if accepted else 0.0, lr * math.sqrt(gg) if accepted else 0.0, l0, gg, backtracks,
                     accepted, evaluations)
        return loss

    def _report(self, lr: float, distance: float, l0: float, gg: float, backtracks: int, accepted: bool,
                evaluations: int) -> None:
        self.diagnostics = {
            "step_size": distance,
            "effective_lr": lr,
            "loss": l0,
            "grad_norm": math.sqrt(gg) if gg >= 0 else math.nan,
            "backtracks": backtracks,
            "accepted": int(accepted),
            "evaluations": evaluations,
        }
