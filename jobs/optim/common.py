"""Pieces shared by the optimizers that evaluate more than one point per step.

* :class:`LineSearchOptimizer`: the base of the methods that search one line
  through all parameters jointly (PAL, LABPAL, SLS, GOLS-I, PLS). Their
  hyperparameters are global, so param groups cannot override them; they
  keep the last step's ``diagnostics``; and the ones that need fresh
  minibatches inside a step receive them through :meth:`set_batch_source`.
* Flat vector helpers over lists of tensors (one device sync per call).

Batch-source protocol: ``source()`` takes no arguments and returns a new
closure, with the closure protocol of :mod:`jobs.optim`, over a fresh random
training minibatch. The trainer averages losses and gradients over ranks
inside every closure, so optimizers that only use closure return values
(and the ``.grad`` a closure fills) stay rank-consistent.

Training-length protocol: optimizers whose rules depend on how long
training is (SLS's step-size reset per epoch, LABPAL's batch-size
schedule) implement ``set_training_length(total_steps, steps_per_epoch)``;
a trainer calls it once before the first step. A value given to the
constructor takes precedence over the trainer's.
"""

from __future__ import annotations

import inspect
import logging
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch

Closure = Callable[..., torch.Tensor]
BatchSource = Callable[[], Closure]

logger = logging.getLogger(__name__)


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
            logger.warning(message)


def evaluate(closure: Closure, backward: bool) -> torch.Tensor:
    """Call the closure with gradients enabled exactly when a backward pass is asked for."""
    if backward:
        with torch.enable_grad():
            return closure()
    with torch.no_grad():
        return closure(backward=False)


def dots(pairs: Sequence[tuple[Sequence[torch.Tensor], Sequence[torch.Tensor]]]) -> list[float]:
    """``[x . y for (x, y) in pairs]`` over flattened tensor lists, in float64, with one device sync."""
    if not pairs or not pairs[0][0]:
        return [0.0] * len(pairs)
    device = pairs[0][0][0].device

    def flat_dot(xs: Sequence[torch.Tensor], ys: Sequence[torch.Tensor]) -> torch.Tensor:
        terms = [torch.dot(x.reshape(-1), y.reshape(-1)).to(device, torch.float64) for x, y in zip(xs, ys, strict=True)]
        return torch.stack(terms).sum()

    return torch.stack([flat_dot(xs, ys) for xs, ys in pairs]).tolist()


def dot(xs: Sequence[torch.Tensor], ys: Sequence[torch.Tensor]) -> float:
    return dots([(xs, ys)])[0]


def grads(params: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    return [p.grad for p in params]


def copies(tensors: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    return [t.detach().clone() for t in tensors]


@torch.no_grad()
def place(params: Sequence[torch.Tensor], origin: Sequence[torch.Tensor], direction: Sequence[torch.Tensor],
          step: float) -> None:
    """``params = origin + step * direction``, recomputed from the origin so no rounding accumulates."""
    torch._foreach_copy_(list(params), list(origin))
    if step != 0.0:
        torch._foreach_add_(list(params), list(direction), alpha=step)


def finite(*values: float) -> bool:
    return all(math.isfinite(v) for v in values)
