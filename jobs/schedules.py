"""Learning-rate schedules as multipliers of the base learning rate.

Each schedule is a pure function ``factor(progress, **params)`` of the
fraction of training done (``step / total_steps`` in [0, 1]), so one
definition serves any training length; :func:`lr_lambda` binds it for
``torch.optim.lr_scheduler.LambdaLR``, stepped once per optimizer step.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from jobs.registry import Entry, Registry
from jobs.schema import Param, positive


def constant(progress: float) -> float:
    return 1.0


def step(progress: float, milestones: tuple[float, ...], factor: float) -> float:
    """Multiply by ``factor`` at each milestone (fractions of training).

    The line-search papers' SGD baseline is ``milestones=[0.5, 0.75]``,
    ``factor=0.1``: ÷10 at 50 % and again at 75 % of training.
    """
    return factor ** sum(progress >= m for m in milestones)


def cosine(progress: float, final_factor: float) -> float:
    """Cosine annealing from 1 to ``final_factor`` over the whole run."""
    return final_factor + (1.0 - final_factor) * 0.5 * (1.0 + math.cos(math.pi * progress))


_FRACTIONS = Param("floats", low=0.0, high=1.0, low_open=True, high_open=True, help="fractions of training")

SCHEDULES = Registry(
    "schedule",
    {
        "constant": Entry("jobs.schedules:constant", {}, doc="The base learning rate throughout."),
        "step": Entry(
            "jobs.schedules:step",
            {"milestones": _FRACTIONS, "factor": positive("multiplier applied at each milestone")},
            doc="Multi-step decay at fractions of training.",
        ),
        "cosine": Entry(
            "jobs.schedules:cosine",
            {"final_factor": Param("float", low=0.0, high=1.0, help="multiplier reached at the end")},
            doc="Cosine annealing (Loshchilov & Hutter 2017) without restarts.",
        ),
    },
)


def lr_lambda(config: Mapping[str, Any], total_steps: int) -> Callable[[int], float]:
    """The multiplier of optimizer step ``t`` for a validated schedule config."""
    function = SCHEDULES.load(config["name"])
    params = SCHEDULES.arguments(config)
    horizon = max(total_steps, 1)
    return lambda t: function(min(t / horizon, 1.0), **params)
