"""Config names → optimizer classes, with hyperparameter schemas.

Importing this module does not import torch; :func:`build_optimizer` does.
Defaults live in ``conf/optimizer/<name>.yaml`` (what sweeps start from)
and in each class's signature (what library users get); the schemas here
only say which values are legal.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from jobs.registry import Entry, Registry
from jobs.schema import Param, non_negative, positive, unit_interval


@dataclass(frozen=True)
class OptimizerEntry(Entry):
    #: False for methods that choose their own step size (line searches):
    #: learning-rate schedules cannot apply to them.
    has_lr: bool = True


_BETAS = Param("floats", low=0.0, high=1.0, high_open=True, length=2, help="(beta1, beta2), each in [0, 1)")

OPTIMIZERS = Registry(
    "optimizer",
    {
        "sgd": OptimizerEntry(
            "torch.optim:SGD",
            {
                "lr": positive("learning rate"),
                "momentum": unit_interval("heavy-ball factor; 0 is plain SGD"),
                "dampening": unit_interval(),
                "nesterov": Param("bool"),
                "weight_decay": non_negative("L2 penalty added to the gradient"),
            },
            doc="SGD with heavy-ball or Nesterov momentum (torch.optim.SGD).",
        ),
        "adam": OptimizerEntry(
            "torch.optim:Adam",
            {
                "lr": positive("learning rate"),
                "betas": _BETAS,
                "eps": positive("added to the denominator; acts as damping"),
                "weight_decay": non_negative("L2 penalty added to the gradient"),
                "amsgrad": Param("bool"),
            },
            doc="Adam (Kingma & Ba 2015, torch.optim.Adam).",
        ),
        "pal": OptimizerEntry(
            "jobs.optim.pal:PAL",
            {
                "mu": positive("measuring distance along the unit direction"),
                "alpha": positive("update step adaptation: multiplies the step to the parabola's minimum"),
                "beta": unit_interval("direction adaptation: d = -g + beta * d_prev"),
                "s_max": positive("largest step along the unit direction"),
            },
            has_lr=False,
            doc="Parabolic Approximation Line Search (Mutschler & Zell 2020); 2 forward + 1 backward per step.",
        ),
    },
)


def build_optimizer(config: Mapping[str, Any], params: Iterable[Any]):
    """Instantiate the optimizer a validated config names, over ``params``."""
    return OPTIMIZERS.load(config["name"])(params, **OPTIMIZERS.arguments(config))
