"""SGD, Adam and AdamW over the stacked parameters of a vectorised group: each member's step is torch.optim's.

The group's M members keep their parameters in one matrix ``[M, P]`` (row m:
member m's parameters, flattened in the model's parameter order, see
:mod:`jobs.vectorized_train`), and so gradients and optimizer state. A step
replays torch.optim's single-tensor update (``foreach`` and ``fused`` off, what
torch.optim picks on CPU) operation by operation, in its order, with each
member's hyperparameters, so that on CPU every member's parameters come out
bitwise as torch.optim would make them for that run alone (the tests hold the
trajectories to it). A hyperparameter enters an operation in one of three ways:

* shared by every member: as the Python number torch.optim passes, one call on the whole matrix;
* differing, where the operation takes a tensor operand to the same effect (``mul``, ``div``,
  ``add`` of a number, ``lerp``'s weight): a column ``[M, 1]`` of the values in the parameters'
  dtype, one call; every element is rounded once, as with the number;
* differing, where torch.optim passes it as ``alpha`` or ``value`` (``add``, ``addcmul``,
  ``addcdiv``): row by row, each with its member's number. No tensor form rounds alike:
  ``add(alpha=)`` fuses the multiply-add on CPU (one rounding), a product then a sum rounds twice.

A group may vary ``lr`` (per step, from the members' schedules), SGD's ``momentum`` (zero for all
members or for none: zero means no buffer at all), ``dampening`` and ``weight_decay``, Adam's and
AdamW's ``betas``, ``eps`` and ``weight_decay``; ``nesterov`` is one for the group and AMSGrad
is not supported (:func:`jobs.vectorized.can_vectorize` checks both).

:meth:`StackedOptimizer.member_state` writes one member's state in ``torch.optim``'s
``state_dict`` layout (param groups from the member's own optimizer, built once as a template), and
:meth:`StackedOptimizer.load_member_states` reads such states back, whichever trainer wrote them.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor


def _shared(values: Sequence[float]) -> bool:
    return all(v == values[0] for v in values)


def _operand(values: Sequence[float], like: Tensor) -> float | Tensor:
    """The number itself when every member has it, else a column ``[M, 1]`` in ``like``'s dtype."""
    if _shared(values):
        return values[0]
    return torch.tensor(values, dtype=like.dtype, device=like.device).view(-1, 1)


def _add_(target: Tensor, other: Tensor, alphas: Sequence[float], skip_zero: bool = False) -> None:
    """``target[m].add_(other[m], alpha=alphas[m])`` for every member; ``skip_zero``: leave rows whose alpha is 0."""
    if _shared(alphas):
        if not (skip_zero and alphas[0] == 0):
            target.add_(other, alpha=alphas[0])
        return
    for row, alpha in enumerate(alphas):
        if not (skip_zero and alpha == 0):
            target[row].add_(other[row], alpha=alpha)


def _pointwise_(op: str, target: Tensor, first: Tensor, second: Tensor, values: Sequence[float]) -> None:
    """``target[m].<op>(first[m], second[m], value=values[m])`` for every member (``addcmul_`` or ``addcdiv_``).

    torch takes ``value`` as a number only: members that differ in it are updated row by row.
    """
    if _shared(values):
        getattr(target, op)(first, second, value=values[0])
        return
    for row, value in enumerate(values):
        getattr(target[row], op)(first[row], second[row], value=value)


class StackedOptimizer:
    """The state of M members' optimizers of one kind, and their step; rows follow the group's members."""

    name: str
    #: Attributes holding one value per member (lists) and one row per member (tensors or None).
    per_member: tuple[str, ...] = ()
    stacked: tuple[str, ...] = ()

    def __init__(self, templates: Sequence[list[dict[str, Any]]]):
        """``templates``: each member's ``optimizer.state_dict()["param_groups"]`` before its first step."""
        self.templates = [copy.deepcopy(t) for t in templates]

    def step(self, params: Tensor, grad: Tensor, lrs: Sequence[float]) -> None:
        """One step of every member: ``params`` and ``grad`` are ``[M, P]``, ``lrs`` the members' current lrs."""
        raise NotImplementedError

    def select(self, rows: Sequence[int]) -> None:
        """Keep the members at ``rows`` (in that order): the others left the group."""
        for name in ("templates", *self.per_member):
            setattr(self, name, [getattr(self, name)[i] for i in rows])
        for name in self.stacked:
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, value[torch.tensor(list(rows), dtype=torch.long, device=value.device)])

    def member_state(self, row: int, lr: float, split: Sequence[int], shapes: Sequence[torch.Size]) -> dict[str, Any]:
        """Member ``row``'s ``optimizer.state_dict()``: its param groups at learning rate ``lr``, its state per tensor.

        ``split`` and ``shapes``: how a row of ``[M, P]`` divides into the model's parameters.
        """
        (group,) = copy.deepcopy(self.templates[row])
        group["lr"] = lr
        slots = self._member_slots(row, split, shapes)
        return {"state": {index: slot for index, slot in enumerate(slots) if slot}, "param_groups": [group]}

    def load_member_states(self, states: Sequence[Mapping[str, Any]], like: Tensor) -> None:
        """Every member's state from its ``optimizer.state_dict()``, one per row, onto ``like``'s device and dtype.

        The members must all have stepped, or none (they resume from one epoch boundary).
        """
        started = [bool(s["state"]) for s in states]
        if any(started) != all(started):
            raise ValueError("the members of a vectorised group must resume from the same epoch boundary")
        self._load(states if all(started) else None, like)

    def _load(self, states: Sequence[Mapping[str, Any]] | None, like: Tensor) -> None:
        raise NotImplementedError

    def _member_slots(self, row: int, split: Sequence[int], shapes: Sequence[torch.Size]) -> list[dict[str, Any]]:
        raise NotImplementedError


def _pieces(matrix: Tensor, row: int, split: Sequence[int], shapes: Sequence[torch.Size]) -> list[Tensor]:
    """Row ``row`` of ``matrix`` as the model's parameters, on the CPU (copies: a saved view saves its whole matrix)."""
    return [piece.reshape(shape).to("cpu", copy=True)
            for piece, shape in zip(matrix[row].split(list(split)), shapes, strict=True)]


def _rows(states: Sequence[Mapping[str, Any]], slot: str, like: Tensor) -> Tensor:
    """``[M, P]`` from each member's per-parameter tensors of ``slot``."""
    rows = [torch.cat([state["state"][i][slot].reshape(-1) for i in sorted(state["state"])]) for state in states]
    return torch.stack(rows).to(device=like.device, dtype=like.dtype)


class StackedSGD(StackedOptimizer):
    """torch.optim.SGD's ``_single_tensor_sgd``, member by member (``maximize`` off)."""

    name = "sgd"
    per_member = ("momentum", "dampening", "weight_decay")
    stacked = ("buffer",)

    def __init__(self, configs: Sequence[Mapping[str, Any]], templates: Sequence[list[dict[str, Any]]]):
        super().__init__(templates)
        self.momentum = [float(c["momentum"]) for c in configs]
        self.dampening = [float(c["dampening"]) for c in configs]
        self.weight_decay = [float(c["weight_decay"]) for c in configs]
        self.nesterov = bool(configs[0]["nesterov"])
        self.buffer: Tensor | None = None  # made by the first step when momentum is on

    def step(self, params: Tensor, grad: Tensor, lrs: Sequence[float]) -> None:
        _add_(grad, params, self.weight_decay, skip_zero=True)
        if self.momentum[0] != 0:
            if self.buffer is None:
                self.buffer = grad.detach().clone()
            else:
                self.buffer.mul_(_operand(self.momentum, grad))
                _add_(self.buffer, grad, [1 - d for d in self.dampening])
            if self.nesterov:
                _add_(grad, self.buffer, self.momentum)
            else:
                grad = self.buffer
        _add_(params, grad, [-lr for lr in lrs])

    def _member_slots(self, row: int, split: Sequence[int], shapes: Sequence[torch.Size]) -> list[dict[str, Any]]:
        if self.buffer is None:
            return [{} for _ in shapes]
        return [{"momentum_buffer": piece} for piece in _pieces(self.buffer, row, split, shapes)]

    def _load(self, states: Sequence[Mapping[str, Any]] | None, like: Tensor) -> None:
        self.buffer = None if states is None or self.momentum[0] == 0 else _rows(states, "momentum_buffer", like)


class StackedAdam(StackedOptimizer):
    """torch.optim.Adam's ``_single_tensor_adam`` (AdamW: ``decoupled``), member by member.

    ``capturable``, ``differentiable``, ``maximize`` and ``amsgrad`` off: torch.optim's Python-number path,
    whose bias corrections are Python floats of each member's step count.
    """

    name = "adam"
    decoupled = False
    per_member = ("beta1", "beta2", "eps", "weight_decay", "steps")
    stacked = ("exp_avg", "exp_avg_sq")

    def __init__(self, configs: Sequence[Mapping[str, Any]], templates: Sequence[list[dict[str, Any]]]):
        super().__init__(templates)
        self.beta1 = [float(c["betas"][0]) for c in configs]
        self.beta2 = [float(c["betas"][1]) for c in configs]
        self.eps = [float(c["eps"]) for c in configs]
        self.weight_decay = [float(c["weight_decay"]) for c in configs]
        self.steps = [0 for _ in configs]
        self.exp_avg: Tensor | None = None  # made by the first step, with exp_avg_sq
        self.exp_avg_sq: Tensor | None = None

    def step(self, params: Tensor, grad: Tensor, lrs: Sequence[float]) -> None:
        if self.exp_avg is None or self.exp_avg_sq is None:
            self.exp_avg, self.exp_avg_sq = torch.zeros_like(params), torch.zeros_like(params)
        self.steps = [s + 1 for s in self.steps]
        if any(w != 0 for w in self.weight_decay):
            if self.decoupled:  # a member without decay multiplies by 1.0: unchanged, as if skipped
                params.mul_(_operand([1 - lr * w for lr, w in zip(lrs, self.weight_decay, strict=True)], params))
            else:
                _add_(grad, params, self.weight_decay, skip_zero=True)
        self.exp_avg.lerp_(grad, _operand([1 - b for b in self.beta1], grad))
        self.exp_avg_sq.mul_(_operand(self.beta2, grad))
        _pointwise_("addcmul_", self.exp_avg_sq, grad, grad, [1 - b for b in self.beta2])
        steps = [float(s) for s in self.steps]  # torch.optim reads its float step tensor with .item()
        correction1 = [1 - b**s for b, s in zip(self.beta1, steps, strict=True)]
        correction2_sqrt = [(1 - b**s) ** 0.5 for b, s in zip(self.beta2, steps, strict=True)]
        step_sizes = [lr / c for lr, c in zip(lrs, correction1, strict=True)]
        denominator = (self.exp_avg_sq.sqrt() / _operand(correction2_sqrt, params)).add_(_operand(self.eps, params))
        _pointwise_("addcdiv_", params, self.exp_avg, denominator, [-s for s in step_sizes])

    def _member_slots(self, row: int, split: Sequence[int], shapes: Sequence[torch.Size]) -> list[dict[str, Any]]:
        if self.exp_avg is None or self.exp_avg_sq is None:
            return [{} for _ in shapes]
        # torch.optim's step counter: a float tensor of the default dtype (float64 when that is the default)
        step = torch.tensor(float(self.steps[row]), dtype=torch.get_default_dtype())
        return [{"step": step.clone(), "exp_avg": first, "exp_avg_sq": second}
                for first, second in zip(_pieces(self.exp_avg, row, split, shapes),
                                         _pieces(self.exp_avg_sq, row, split, shapes), strict=True)]

    def _load(self, states: Sequence[Mapping[str, Any]] | None, like: Tensor) -> None:
        if states is None:
            self.steps, self.exp_avg, self.exp_avg_sq = [0 for _ in self.steps], None, None
            return
        self.steps = [int(s["state"][min(s["state"])]["step"].item()) for s in states]
        self.exp_avg, self.exp_avg_sq = _rows(states, "exp_avg", like), _rows(states, "exp_avg_sq", like)


class StackedAdamW(StackedAdam):
    name = "adamw"
    decoupled = True


STACKED = {cls.name: cls for cls in (StackedSGD, StackedAdam, StackedAdamW)}


def stacked_optimizer(configs: Sequence[Mapping[str, Any]],
                      templates: Sequence[list[dict[str, Any]]]) -> StackedOptimizer:
    """The stacked optimizer of the members' validated optimizer configs (one name for all)."""
    return STACKED[configs[0]["name"]](configs, templates)
