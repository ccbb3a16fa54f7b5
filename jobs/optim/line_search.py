"""The base of the methods that search one line through all parameters jointly (PAL, LABPAL, SLS, GOLS-I, PLS).

Their hyperparameters are global, so param groups cannot override them;
they keep the last step's ``diagnostics``; and the ones that need fresh
minibatches inside a step receive them through
:meth:`LineSearchOptimizer.set_batch_source` (see :mod:`jobs.optim.protocol`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import torch

from jobs.optim.protocol import BatchSource, Closure
from jobs.optim.vectors import dots, grads

log = logging.getLogger(__name__)


class LineSearchOptimizer(torch.optim.Optimizer):
    """A ``torch.optim.Optimizer`` whose step searches one line through all parameters.

    Global state that belongs to no single parameter (the current step
    size, a phase) lives in ``self.state[GLOBAL]``, which ``state_dict()``
    saves and ``load_state_dict()`` restores like per-parameter state.
    """

    GLOBAL = "line_search"
    # Class-level fallbacks: torch's __getstate__ keeps only defaults, state and param groups.
    _batch_source: BatchSource | None = None

    def __init__(self, params: Iterable[Any], defaults: dict[str, Any]):
        super().__init__(params, defaults)
        self.diagnostics: dict[str, float | int] = {}

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        for key, default in self.defaults.items():
            if key in param_group and param_group[key] != default:
                name = type(self).__name__
                raise ValueError(
                    f"{name} searches one line through all parameters; set {key} in the constructor, "
                    "not per param group."
                )
        super().add_param_group(param_group)

    # -- fresh minibatches ------------------------------------------------------------------
    def set_batch_source(self, source: BatchSource | None) -> None:
        """Where fresh minibatches come from: ``source()`` returns a closure over a new random batch."""
        self._batch_source = source

    @property
    def has_batch_source(self) -> bool:
        return self._batch_source is not None

    def fresh_closure(self, fallback: Closure) -> Closure:
        """A closure over a fresh minibatch, or ``fallback`` (the step's own) when no source is set."""
        return fallback if self._batch_source is None else self._batch_source()

    # -- helpers ----------------------------------------------------------------------------
    def require(self, closure: Closure | None) -> Closure:
        if closure is None:
            raise ValueError(f"{type(self).__name__} needs a closure that re-evaluates the minibatch loss.")
        return closure

    def descent_direction(self, params: list[torch.Tensor], momentum: float) -> tuple[list[torch.Tensor], float, float]:
        """``d = -g + momentum * d_prev`` (``state[p]["direction"]``), or ``-g`` when that ``d`` does not descend.

        Returns ``d``, ``d . d`` and ``g . d``; call it after a backward pass, under ``torch.no_grad()``.
        """
        direction = []
        for p in params:
            d = p.grad.neg()
            previous = self.state[p].get("direction")
            if momentum > 0 and previous is not None:
                d.add_(previous, alpha=momentum)
            direction.append(d)
        dd, slope = dots([(direction, direction), (grads(params), direction)])
        if momentum > 0 and slope >= 0:
            direction = [p.grad.neg() for p in params]
            dd, slope = dots([(direction, direction), (grads(params), direction)])
        return direction, dd, slope

    def keep_direction(self, params: list[torch.Tensor], direction: list[torch.Tensor], momentum: float) -> None:
        """Remember the step's direction for :meth:`descent_direction`'s momentum term."""
        if momentum > 0:
            for p, d in zip(params, direction, strict=True):
                self.state[p]["direction"] = d

    @property
    def hyper(self) -> dict[str, Any]:
        """The hyperparameters: one set for the whole line search."""
        return self.param_groups[0]

    @property
    def global_state(self) -> dict[str, Any]:
        return self.state[self.GLOBAL]

    def all_params(self) -> list[torch.Tensor]:
        return [p for group in self.param_groups for p in group["params"]]

    def params_with_grad(self) -> list[torch.Tensor]:
        return [p for p in self.all_params() if p.grad is not None]

    def warn_once(self, key: str, message: str) -> None:
        warned = self.__dict__.setdefault("_warned", set())
        if key not in warned:
            warned.add(key)
            log.warning(message)
