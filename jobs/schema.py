"""Typed, range-checked parameters: the vocabulary every registry uses.

A registry (optimizers, problems, schedules) describes each entry's
parameters with :class:`Param`. Validation coerces config values to their
declared type (so ``lr=1`` and ``lr=1.0`` hash to the same run) and turns
every mistake into one :class:`SpecError` sentence that names the key to
change. Nothing here imports torch: the control plane validates thousands
of run specs without paying for it.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any


class SpecError(ValueError):
    """A run spec that cannot run; the message is one sentence for the user."""


@dataclass(frozen=True)
class Param:
    """One parameter: its type, an optional range and optional choices.

    ``kind`` is one of ``float``, ``int``, ``bool``, ``str``, ``floats``
    (a list of floats, e.g. Adam's betas; ``length`` fixes its size),
    ``number`` (an int or a float, whichever the value is: a whole number
    becomes an int, so ``0`` and ``0.0`` are one value) or ``scalar`` (any
    number, string or boolean). The last two are for plugins whose
    constructor says no more than a default of ``0`` or ``None`` (see
    :mod:`jobs.plugins`). Execution settings add ``strs`` (a list of
    strings), ``mapping`` (names to values, the values as they are: what
    each may be is for its consumer to check) and ``bool_or_auto`` (true,
    false or the string ``auto``). Values stay JSON data (lists, not
    tuples) so a spec is its own canonical form. Bounds are inclusive unless
    ``low_open``/``high_open`` say otherwise; ``nonempty`` refuses an empty
    string (each item of a ``strs``).
    """

    kind: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[Any, ...] | None = None
    length: int | None = None
    nullable: bool = False
    nonempty: bool = False
    help: str = ""

    def coerce(self, key: str, value: Any) -> Any:
        if value is None:
            if self.nullable:
                return None
            raise SpecError(f"{key} must be set (got null).")
        if self.kind == "floats":
            return self._coerce_floats(key, value)
        if self.kind == "strs":
            return self._coerce_strs(key, value)
        if self.kind == "mapping":
            if not isinstance(value, Mapping):
                raise SpecError(f"{key} must be a mapping of names to values (got {value!r}).")
            return dict(value)
        converted = _convert_scalar(self.kind, key, value)
        self._check_choices(key, converted)
        self._check_nonempty(key, converted)
        if self.kind in ("float", "int", "number") or (self.kind == "scalar" and _is_number(converted)):
            self._check_range(key, converted)
        return converted

    def _coerce_floats(self, key: str, value: Any) -> list[float]:
        if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
            raise SpecError(f"{key} must be a list of {self.length} numbers (got {value!r}).")
        items = [_convert_scalar("float", f"{key}[{i}]", v) for i, v in enumerate(value)]
        if self.length is not None and len(items) != self.length:
            raise SpecError(f"{key} must be a list of {self.length} numbers (got {len(items)}).")
        for i, item in enumerate(items):
            self._check_range(f"{key}[{i}]", item)
        return items

    def _coerce_strs(self, key: str, value: Any) -> list[str]:
        if isinstance(value, str | bytes | Mapping) or not hasattr(value, "__iter__"):
            raise SpecError(f"{key} must be a list of strings (got {value!r}).")
        items = [_convert_scalar("str", f"{key}[{i}]", v) for i, v in enumerate(value)]
        for i, item in enumerate(items):
            self._check_nonempty(f"{key}[{i}]", item)
        return items

    def _check_nonempty(self, key: str, value: Any) -> None:
        if self.nonempty and value == "":
            raise SpecError(f"{key} must not be empty (got '').")

    def _check_choices(self, key: str, value: Any) -> None:
        if self.choices is not None and value not in self.choices:
            options = ", ".join(str(c) for c in self.choices)
            raise SpecError(f"{key} must be one of {options} (got {value!r}).")

    def _check_range(self, key: str, value: float) -> None:
        if isinstance(value, float) and not math.isfinite(value):
            raise SpecError(f"{key} must be a finite number (got {value!r}).")
        too_low = self.low is not None and (value <= self.low if self.low_open else value < self.low)
        too_high = self.high is not None and (value >= self.high if self.high_open else value > self.high)
        if too_low or too_high:
            bounded = self.low is not None and self.high is not None
            raise SpecError(f"{key} must be {'in ' if bounded else ''}{self.describe_range()} (got {value!r}).")

    def describe_range(self) -> str:
        if self.low is not None and self.high is not None:
            left = "(" if self.low_open else "["
            right = ")" if self.high_open else "]"
            return f"{left}{_fmt(self.low)}, {_fmt(self.high)}{right}"
        if self.low is not None:
            return f"{'>' if self.low_open else '>='} {_fmt(self.low)}"
        if self.high is not None:
            return f"{'<' if self.high_open else '<='} {_fmt(self.high)}"
        return "any value"


def _fmt(x: float) -> str:
    return f"{x:g}"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _convert_scalar(kind: str, key: str, value: Any) -> Any:
    if kind == "scalar":
        if isinstance(value, bool | str) or _is_number(value):
            return _whole(value) if _is_number(value) else value
        raise SpecError(f"{key} must be a number, a string or true/false (got {value!r}).")
    if kind == "bool":
        if isinstance(value, bool):
            return value
        raise SpecError(f"{key} must be true or false (got {value!r}).")
    if kind == "str":
        if isinstance(value, str):
            return value
        raise SpecError(f"{key} must be a string (got {value!r}).")
    if kind == "bool_or_auto":
        if isinstance(value, bool) or value == "auto":
            return value
        raise SpecError(f"{key} must be auto, true or false (got {value!r}).")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SpecError(f"{key} must be a number (got {value!r}).")
    if kind == "int":
        if isinstance(value, float) and not value.is_integer():
            raise SpecError(f"{key} must be a whole number (got {value!r}).")
        return int(value)
    if kind == "number":
        return _whole(value)
    return float(value)


def _whole(value: int | float) -> int | float:
    """A whole float as an int (one canonical form for ``0`` and ``0.0``); other numbers as they are."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


# Shorthands for the ranges that recur across registries.
def positive(help: str = "") -> Param:
    return Param("float", low=0.0, low_open=True, help=help)


def non_negative(help: str = "") -> Param:
    return Param("float", low=0.0, help=help)


def unit_interval(help: str = "") -> Param:
    """[0, 1): momentum factors, decay rates."""
    return Param("float", low=0.0, high=1.0, high_open=True, help=help)


def count(low: int = 0, help: str = "") -> Param:
    return Param("int", low=low, help=help)


def validate_params(
    prefix: str, what: str, schema: Mapping[str, Param], values: Mapping[str, Any], optional: Collection[str] = ()
) -> dict[str, Any]:
    """Check ``values`` against ``schema``: no unknown keys, none missing, every value coerced.

    ``prefix`` is the dotted config path used in messages (``optimizer`` gives
    ``optimizer.lr must be > 0 (got -1.0).``); ``what`` names the owner in
    prose (``optimizer 'sgd'``). Keys in ``optional`` may be absent, and are
    then absent from the result too: their consumer has a default of its own.
    """
    unknown = sorted(set(values) - set(schema))
    if unknown:
        known = ", ".join(sorted(schema)) or "none"
        raise SpecError(f"{prefix}.{unknown[0]} is not a parameter of {what}; its parameters are: {known}.")
    missing = sorted(set(schema) - set(values) - set(optional))
    if missing:
        raise SpecError(f"{prefix}.{missing[0]} is missing; set it with {prefix}.{missing[0]}=VALUE.")
    return {key: schema[key].coerce(f"{prefix}.{key}", values[key]) for key in schema if key in values}
