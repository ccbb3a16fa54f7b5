"""Learning-rate schedules as multipliers of the base learning rate.

Each schedule is a pure function ``factor(progress, **params)`` of the
fraction of training done (``step / total_steps`` in [0, 1]), so one
definition serves any training length; :func:`lr_lambda` binds it for
``torch.optim.lr_scheduler.LambdaLR``, stepped once per optimizer step.

Every schedule also takes an optional ``warmup`` (a fraction of training):
the factor rises linearly from 0 to 1 over the warm-up, then the schedule
runs over the rest of training as if that were all of it (the common
"warm-up, then decay" shape). ``warmup: 0`` (the default) is left out of
the validated config, so a spec without warm-up keeps its run id.

Every fraction a schedule takes (``step``'s milestones, ``linear``'s
``end``, ``wsd``'s ``decay``) is one of the training after the warm-up.

Schedules that decay reach ``final_factor`` at the end of training; the
per-step forms of the optimization lecture (seed ``004``) follow by
substituting ``progress = k / total_steps``, e.g. exponential decay
``alpha_k = b^k alpha_0`` is ``final_factor = b^total_steps``.

AlgoPerf's baselines' schedules are ``cosine`` and ``linear`` with
``final_factor: 0`` and a warm-up (presets ``conf/schedule/algoperf_*.yaml``);
Schedule-Free's is ``constant`` with a warm-up.
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
    """Multiply by ``factor`` at each milestone (fractions of training); one milestone is plain step decay.

    The line-search papers' SGD baseline is ``milestones=[0.5, 0.75]``,
    ``factor=0.1``: ÷10 at 50 % and again at 75 % of training.
    """
    return factor ** sum(progress >= m for m in milestones)


def linear(progress: float, final_factor: float, end: float) -> float:
    """Linear decay from 1 to ``final_factor`` until ``end`` (a fraction of training), then constant."""
    done = min(progress / end, 1.0)
    return (1.0 - done) + done * final_factor


def exponential(progress: float, final_factor: float) -> float:
    """Exponential decay from 1 to ``final_factor``: the same factor ``final_factor^(1/T)`` every step."""
    return final_factor**progress


def cosine(progress: float, final_factor: float) -> float:
    """Cosine annealing from 1 to ``final_factor`` over the whole run."""
    return final_factor + (1.0 - final_factor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def sgdr(progress: float, first_period: float, period_factor: float, final_factor: float) -> float:
    """Cosine annealing with warm restarts (SGDR, Loshchilov & Hutter 2017).

    The first cycle lasts ``first_period`` of training, each next one
    ``period_factor`` times longer (their ``T_0``, ``T_mult``); every cycle
    anneals from 1 to ``final_factor`` and the next restarts at 1. A
    restart point within 1e-12 (rounding) belongs to the new cycle.
    """
    m = period_factor
    if m == 1.0:
        cycle = math.floor(progress / first_period + 1e-12)
    else:  # cycle i starts at first_period * (m^i - 1) / (m - 1)
        cycle = math.floor(math.log1p(progress * (m - 1.0) / first_period) / math.log(m) + 1e-12)
    start = first_period * (cycle if m == 1.0 else (m**cycle - 1.0) / (m - 1.0))
    period = first_period * m**cycle
    if progress < start - 1e-12:  # rounding put us one cycle too far
        period /= m
        start -= period
    return cosine((progress - start) / period, final_factor)


def inverse_time(progress: float, final_factor: float) -> float:
    """1/t decay, ``1 / (1 + c * progress)`` with ``c`` chosen so that it ends at ``final_factor``.

    Per step this is ``alpha_k = alpha_0 / (1 + gamma k)`` with ``gamma = c / total_steps``.
    """
    return 1.0 / (1.0 + (1.0 / final_factor - 1.0) * progress)


#: How ``wsd`` decays, as the fraction ``d`` of its decay phase done: the share of the drop to ``final_factor`` made.
WSD_SHAPES = {
    "linear": lambda d: d,
    "1-sqrt": math.sqrt,  # Hägele et al. 2024: best of the shapes they compared
    "cosine": lambda d: 0.5 * (1.0 - math.cos(math.pi * d)),
}


def wsd(progress: float, decay: float, shape: str, final_factor: float) -> float:
    """Warmup-stable-decay (Hu et al. 2024; Hägele et al. 2024), its warm-up being every schedule's ``warmup``.

    The base learning rate until the last ``decay`` of training, then down to
    ``final_factor`` at the end along ``shape``: ``1 - (1 - final_factor) * s(d)``
    with ``d`` the fraction of the decay phase done and ``s`` one of :data:`WSD_SHAPES`
    (``1-sqrt``: ``1 - sqrt(d)`` down to zero).
    """
    done = max(progress - (1.0 - decay), 0.0) / decay
    return 1.0 - (1.0 - final_factor) * WSD_SHAPES[shape](done)


def with_warmup(function: Callable[..., float], warmup: float) -> Callable[..., float]:
    """Linear warm-up from 0 to 1 over ``warmup``, then ``function`` over the remaining training."""
    if warmup == 0:
        return function

    def warmed_up(progress: float, **params: Any) -> float:
        if progress < warmup:
            return progress / warmup
        return function((progress - warmup) / (1.0 - warmup), **params)

    return warmed_up


_FRACTIONS = Param("floats", low=0.0, high=1.0, low_open=True, high_open=True, help="fractions of training")
_FINAL = Param("float", low=0.0, high=1.0, help="multiplier reached at the end")
_FINAL_POSITIVE = Param("float", low=0.0, high=1.0, low_open=True, help="multiplier reached at the end, > 0")
WARMUP = Param("float", low=0.0, high=1.0, high_open=True, help="fraction of training spent warming up; 0: none")


class ScheduleRegistry(Registry):
    """Schedules, each of which also accepts the optional ``warmup`` parameter."""

    def validate(self, config: Mapping[str, Any]) -> dict[str, Any]:
        if not isinstance(config, Mapping) or "warmup" not in config:
            return super().validate(config)
        warmup = WARMUP.coerce("schedule.warmup", config["warmup"])
        checked = super().validate({k: v for k, v in config.items() if k != "warmup"})
        return {**checked, "warmup": warmup} if warmup > 0 else checked

    def arguments(self, config: Mapping[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in super().arguments(config).items() if k != "warmup"}


SCHEDULES = ScheduleRegistry(
    "schedule",
    {
        "constant": Entry("jobs.schedules:constant", {}, doc="The base learning rate throughout."),
        "step": Entry(
            "jobs.schedules:step",
            {"milestones": _FRACTIONS, "factor": positive("multiplier applied at each milestone")},
            doc="Multi-step decay at fractions of training.",
        ),
        "linear": Entry(
            "jobs.schedules:linear",
            {"final_factor": _FINAL,
             "end": Param("float", low=0.0, high=1.0, low_open=True, help="fraction of training where decay ends")},
            doc="Linear decay to final_factor, then constant.",
        ),
        "exponential": Entry(
            "jobs.schedules:exponential",
            {"final_factor": _FINAL_POSITIVE},
            doc="Exponential decay: the same multiplier every step, reaching final_factor at the end.",
        ),
        "cosine": Entry(
            "jobs.schedules:cosine",
            {"final_factor": _FINAL},
            doc="Cosine annealing (Loshchilov & Hutter 2017) without restarts.",
        ),
        "sgdr": Entry(
            "jobs.schedules:sgdr",
            {
                "first_period": Param("float", low=0.0, high=1.0, low_open=True,
                                      help="length of the first cycle, a fraction of training"),
                "period_factor": Param("float", low=1.0, help="each cycle is this many times longer than the last"),
                "final_factor": _FINAL,
            },
            doc="Cosine annealing with warm restarts (SGDR, Loshchilov & Hutter 2017).",
        ),
        "inverse_time": Entry(
            "jobs.schedules:inverse_time",
            {"final_factor": _FINAL_POSITIVE},
            doc="1/t decay, reaching final_factor at the end.",
        ),
        "wsd": Entry(
            "jobs.schedules:wsd",
            {
                "decay": Param("float", low=0.0, high=1.0, low_open=True,
                               help="the last fraction of training, where the learning rate decays"),
                "shape": Param("str", choices=tuple(WSD_SHAPES), help="how it decays"),
                "final_factor": _FINAL,
            },
            doc="Warmup-stable-decay: constant, then a decay to final_factor over the last fraction of training.",
        ),
    },
)


def lr_lambda(config: Mapping[str, Any], total_steps: int) -> Callable[[int], float]:
    """The multiplier of optimizer step ``t`` for a validated schedule config."""
    function = with_warmup(SCHEDULES.load(config["name"]), config.get("warmup", 0.0))
    params = SCHEDULES.arguments(config)
    horizon = max(total_steps, 1)
    return lambda t: function(min(t / horizon, 1.0), **params)
