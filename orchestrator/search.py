"""How a sweep's points are chosen: a grid, or random or quasi-random draws from a search space.

``search=grid`` (the default) takes the Cartesian product of every swept key.
``search=halving`` runs successive halving or Hyperband over the grid's
settings, or over points drawn from a search space as ``search.sampler``
(random or quasirandom) draws them (see :mod:`orchestrator.rungs`).
``search=random`` and ``search=quasirandom`` draw ``search.trials`` points
from a search space, the same points for every combination of the grid axes
(problems, optimizers, seeds, plain lists), so optimizers are compared on
the same draws. A search dimension is a value key swept in function form:

- ``interval(a,b)``: uniform on [a, b); ``tag(log,interval(a,b))``: log-uniform;
- ``choice(x,y,…)``: one of the values; ``range(a,b[,step])``: one of the integers;

or an entry of an AlgoPerf search-space JSON (``search.space=FILE``: keys are
optbench's dotted keys, values ``{"min", "max", "scaling": "linear"|"log"}``
or ``{"feasible_points": [...]}``, in the file's order). Plain lists
(``a,b,c``), ``logspace(…)``, group choices (``optimizer=…``) and seeds stay
grid axes.

Both strategies map a point ``x ∈ [0, 1)`` per dimension to a value as
AlgoPerf does (see :mod:`orchestrator.halton`): random search draws the
``x`` from ``numpy.random.RandomState(search.seed)``, trial by trial and
dimension by dimension in order; quasi-random search takes them from
AlgoPerf's scrambled Halton sequence. Draws are kept at full precision, so
the same command and seed give the same specs, hence the same run ids.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, Override, RangeSweep

from jobs.schema import Param, SpecError, count, validate_params
from orchestrator import halton
from orchestrator.errors import UserError

STRATEGIES = ("grid", "random", "quasirandom", "halving")
SAMPLERS = ("random", "quasirandom")
SCHEMA = {
    "name": Param("str", choices=STRATEGIES),
    "trials": count(1, "points drawn from the search space"),
    "seed": count(0, "the draws' seed"),
    "space": Param("str", nullable=True, help="an AlgoPerf search-space JSON (optbench's dotted keys)"),
}
HALVING_SCHEMA = {
    **SCHEMA,
    "eta": count(2, "the factor between rungs: a rung keeps 1/eta of its candidates, for eta times the epochs"),
    "min_epochs": count(1, "the first rung's budget in epochs"),
    "brackets": count(1, "Hyperband's brackets (1: successive halving)"),
    "sampler": Param("str", choices=SAMPLERS, help="how candidates are drawn from a search space"),
}


@dataclass(frozen=True)
class Search:
    """``conf/search/<name>.yaml``, checked."""

    name: str
    trials: int
    seed: int
    space: str | None
    eta: int = 3
    min_epochs: int = 1
    brackets: int = 1
    sampler: str = "random"

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None) -> Search:
        config = dict(config or {"name": "grid"})
        halving = config.get("name") == "halving"
        defaults = {"trials": 1, "seed": 0, "space": None,
                    **({"eta": 3, "min_epochs": 1, "brackets": 1, "sampler": "random"} if halving else {})}
        try:
            values = validate_params("search", "the search", HALVING_SCHEMA if halving else SCHEMA,
                                     {**defaults, **config})
        except SpecError as error:
            raise UserError(str(error)) from None
        return cls(**values)

    @property
    def draws(self) -> bool:
        """Its points come from a search space (halving may take a grid's instead)."""
        return self.name in SAMPLERS

    @property
    def halving(self) -> bool:
        return self.name == "halving"

    def record(self, dimensions: Sequence[Dimension], keys: Sequence[str] = (),
               bracket_trials: Sequence[int] = ()) -> dict[str, Any]:
        """What ``sweep.json`` keeps of the search (nothing for a grid).

        Halving adds its settings, the searched ``keys`` (what tells candidates apart) and, for drawn
        candidates, how many trials each bracket took in trial order (``bracket_trials``).
        """
        if self.name == "grid":
            return {}
        drawn = {"trials": self.trials, "seed": self.seed, "space_file": self.space,
                 "space": {d.key: d.describe() for d in dimensions}} if dimensions else {}
        if not self.halving:
            return {"strategy": self.name, **drawn}
        return {"strategy": self.name, "eta": self.eta, "min_epochs": self.min_epochs, "brackets": self.brackets,
                **({"sampler": self.sampler, **drawn, "trials": sum(bracket_trials)} if dimensions else {}),
                "keys": list(keys), "bracket_trials": list(bracket_trials)}


@dataclass(frozen=True)
class Dimension:
    """One key of a search space and how a point ``x ∈ [0, 1)`` becomes its value."""

    key: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    values: tuple[Any, ...] | None = None

    def value(self, x: float) -> Any:
        if self.values is not None:
            return halton.pick(x, self.values)
        scale = halton.scale_log if self.log else halton.scale_linear
        return scale(x, self.low, self.high)

    def describe(self) -> dict[str, Any]:
        """The dimension in AlgoPerf's search-space JSON form."""
        if self.values is not None:
            return {"feasible_points": list(self.values)}
        return {"min": self.low, "max": self.high, "scaling": "log" if self.log else "linear"}


def is_dimension(override: Override) -> bool:
    """A swept value key in function form: interval(), choice() or range() (plain lists stay a grid)."""
    value = override.value()
    if isinstance(value, IntervalSweep | RangeSweep):
        return True
    return isinstance(value, ChoiceSweep) and not value.simple_form


def from_override(override: Override, current: Any) -> Dimension:
    """The dimension an override describes; ``current`` is the key's composed value (its type)."""
    key, value, text = override.key_or_group, override.value(), override.input_line
    if isinstance(value, IntervalSweep):
        if isinstance(current, bool) or not isinstance(current, int | float):
            raise UserError(f"{text}: {key} is not a number (it is {current!r}), so an interval cannot search it; "
                            "give its values with choice(...).")
        return _interval(key, float(value.start), float(value.end), "log" in value.tags, text)
    if isinstance(value, RangeSweep):
        values = tuple(range(int(value.start), int(value.stop), int(value.step)))
    else:
        values = tuple(value.list)
    if not values:
        raise UserError(f"{text} has no values to choose from; give at least one.")
    return Dimension(key, values=values)


def _interval(key: str, low: float, high: float, log: bool, where: str) -> Dimension:
    if not (math.isfinite(low) and math.isfinite(high)) or not low < high:
        raise UserError(f"{where}: the interval from {low:g} to {high:g} is empty; give interval(low,high) with "
                        "low < high.")
    if log and low <= 0:
        raise UserError(f"{where}: a log scale needs bounds > 0 (got {low:g}); raise the lower bound or drop "
                        "tag(log, ...).")
    return Dimension(key, low, high, log)


def from_file(path: str | Path) -> list[Dimension]:
    """An AlgoPerf search-space JSON: ``{key: {"min", "max", "scaling"} | {"feasible_points"}}``, in file order."""
    file = Path(path).expanduser()
    try:
        space = json.loads(file.read_text(encoding="utf-8"))
    except OSError as error:
        raise UserError(f"search.space={path} cannot be read ({error.strerror}); give the path to a search-space "
                        "JSON file.") from None
    except ValueError as error:
        raise UserError(f"search.space={path} is not valid JSON ({error}); fix the file.") from None
    if not isinstance(space, dict) or not space:
        raise UserError(f"search.space={path} must map config keys to ranges, e.g. "
                        '{"optimizer.lr": {"min": 1e-5, "max": 0.1, "scaling": "log"}}.')
    dimensions = []
    for key, entry in space.items():
        where = f"search.space={path}, key {key!r}"
        if _feasible_points(entry):
            dimensions.append(Dimension(key, values=tuple(entry["feasible_points"])))
            continue
        if not _bounds(entry):
            raise UserError(f"{where} must be {{\"min\": number, \"max\": number, \"scaling\": \"linear\" or "
                            f"\"log\"}} or {{\"feasible_points\": [values]}} (got {entry!r}).")
        dimensions.append(_interval(key, float(entry["min"]), float(entry["max"]), entry["scaling"] == "log", where))
    return dimensions


def _feasible_points(entry: Any) -> bool:
    return isinstance(entry, dict) and set(entry) == {"feasible_points"} and \
        isinstance(entry["feasible_points"], list) and bool(entry["feasible_points"])


def _bounds(entry: Any) -> bool:
    numbers = isinstance(entry, dict) and all(
        isinstance(entry.get(k), int | float) and not isinstance(entry.get(k), bool) for k in ("min", "max"))
    return numbers and set(entry) == {"min", "max", "scaling"} and entry["scaling"] in ("linear", "log")


def draw(search: Search, dimensions: Sequence[Dimension], trials: int | None = None) -> list[dict[str, Any]]:
    """``trials`` points (default ``search.trials``), each a value per dimension, in trial order."""
    trials = search.trials if trials is None else trials
    if (search.sampler if search.halving else search.name) == "quasirandom":
        unit = halton.sequence(trials, len(dimensions), search.seed)
    else:
        unit = np.random.RandomState(search.seed).random_sample((trials, len(dimensions))).tolist()
    return [{d.key: _plain(d.value(x)) for d, x in zip(dimensions, point, strict=True)} for point in unit]


def _plain(value: Any) -> Any:
    """A drawn value as JSON data (numpy scalars become Python numbers)."""
    return value.item() if isinstance(value, np.generic) else value
