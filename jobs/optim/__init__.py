"""The shared optimizer core: every optimizer is a ``torch.optim.Optimizer``.

Closure protocol: ``step(closure)`` where ``closure(backward=True)``
re-evaluates the loss on the same minibatch with the same random numbers
(dropout) on every call, zeroes and fills ``.grad`` only when ``backward``
is true, and returns the loss tensor. Optimizers that need more than one
evaluation per step (line searches) expose per-step diagnostics in
``optimizer.diagnostics``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["PAL"]


def __getattr__(name: str) -> Any:
    # Lazy, so that importing jobs.optim.registry (config validation) never imports torch.
    if name == "PAL":
        from jobs.optim.pal import PAL

        return PAL
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
