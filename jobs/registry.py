"""Name → implementation maps with parameter schemas, imported lazily.

Optimizers, problems and schedules each keep a :class:`Registry`. An entry
names its implementation as ``"module:attribute"`` so that validating a
config never imports torch; :meth:`Registry.load` imports it when a job
actually builds the thing.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from jobs.schema import Param, SpecError, validate_params


@dataclass(frozen=True)
class Entry:
    target: str
    params: Mapping[str, Param] = field(default_factory=dict)
    doc: str = ""


class Registry:
    def __init__(self, kind: str, entries: Mapping[str, Entry]):
        self.kind = kind
        self.entries = dict(entries)

    def names(self) -> list[str]:
        return sorted(self.entries)

    def entry(self, name: Any) -> Entry:
        try:
            return self.entries[name]
        except (KeyError, TypeError):
            options = ", ".join(self.names())
            raise SpecError(f"Unknown {self.kind} {name!r}; choose one of: {options}.") from None

    def validate(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """``{"name": ..., **params}`` with every parameter checked and coerced."""
        if not isinstance(config, Mapping) or "name" not in config:
            raise SpecError(f"{self.kind} must be a mapping with a 'name' key, e.g. {self.kind}={self.names()[0]}.")
        name = config["name"]
        entry = self.entry(name)
        values = {k: v for k, v in config.items() if k != "name"}
        checked = validate_params(self.kind, f"{self.kind} {name!r}", entry.params, values)
        return {"name": name, **checked}

    def arguments(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """Keyword arguments for the implementation: the params of a validated config, lists as tuples."""
        return {k: (tuple(v) if isinstance(v, list) else v) for k, v in config.items() if k != "name"}

    def load(self, name: str) -> Any:
        module, _, attribute = self.entry(name).target.partition(":")
        return getattr(importlib.import_module(module), attribute)
