"""Vector arithmetic over lists of tensors (all of a model's parameters as one vector), one device sync per call."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch


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
