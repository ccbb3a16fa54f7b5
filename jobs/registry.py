"""Name → implementation maps with parameter schemas, imported lazily.

Optimizers, problems and schedules each keep a :class:`Registry`. An entry
names its implementation as ``"module:attribute"`` so that validating a
config of a built-in never imports torch; :meth:`Registry.load` imports it
when a job actually builds the thing.

A config with a ``target`` names a plugin instead (see :mod:`jobs.plugins`):
its entry is derived from the class, and from then on built-ins and
plugins take the same path through validation, building and training.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from jobs import plugins
from jobs.plugins import Plugin
from jobs.schema import Param, SpecError, validate_params


@dataclass(frozen=True)
class Entry:
    target: str
    params: Mapping[str, Param] = field(default_factory=dict)
    doc: str = ""
    #: The loaded plugin when this entry is one (None: a built-in).
    plugin: Plugin | None = None


class Registry:
    def __init__(self, kind: str, entries: Mapping[str, Entry],
                 plugin_entry: Callable[[Plugin], Entry] | None = None):
        """``plugin_entry`` makes a plugin's entry; None: this registry takes no plugins."""
        self.kind = kind
        self.entries = dict(entries)
        self.plugin_entry = plugin_entry

    def names(self) -> list[str]:
        return sorted(self.entries)

    def entry(self, name: Any) -> Entry:
        try:
            return self.entries[name]
        except (KeyError, TypeError):
            options = ", ".join(self.names())
            raise SpecError(f"Unknown {self.kind} {name!r}; choose one of: {options}.") from None

    def resolve(self, config: Mapping[str, Any]) -> Entry:
        """The entry a config names: a built-in by its name, a plugin by its target (its code checked)."""
        if not isinstance(config, Mapping) or "name" not in config:
            raise SpecError(f"{self.kind} must be a mapping with a 'name' key, e.g. {self.kind}={self.names()[0]}.")
        if config.get("target") is None:
            return self.entry(config["name"])
        name = config["name"]
        if self.plugin_entry is None:
            raise SpecError(f"{self.kind}.target is not supported: a {self.kind} is one of optbench's; remove it.")
        if not isinstance(name, str) or not name:
            raise SpecError(f"{self.kind}.name must name the plugin in words, e.g. {self.kind}.name=my_{self.kind}.")
        if name in self.entries:
            raise SpecError(f"{self.kind} {name!r} is one of optbench's own, so a plugin cannot use that name "
                            f"({config['target']}); rename the plugin's config.")
        plugin = plugins.load(self.kind, config["target"])
        plugins.check_code(plugin, config.get("code_hash"))
        return self.plugin_entry(plugin)

    def validate(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """``{"name": ..., **params}`` with every parameter checked and coerced.

        A plugin's section also holds its ``target`` and ``code_hash``, and its
        parameters that the config leaves out take the constructor's defaults.
        """
        entry = self.resolve(config)
        name = config["name"]
        if entry.plugin is None:
            values = {k: v for k, v in config.items() if k != "name"}
            return {"name": name, **validate_params(self.kind, f"{self.kind} {name!r}", entry.params, values)}
        values = {**entry.plugin.defaults, **{k: v for k, v in config.items() if k not in plugins.RESERVED}}
        checked = validate_params(self.kind, f"{self.kind} {name!r} ({entry.target})", entry.params, values)
        return {"name": name, "target": entry.target, "code_hash": entry.plugin.code_hash, **checked}

    def arguments(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """Keyword arguments for the implementation: the params of a validated config, lists as tuples."""
        return {k: (tuple(v) if isinstance(v, list) else v) for k, v in config.items() if k not in plugins.RESERVED}

    def load(self, config: Mapping[str, Any] | str) -> Any:
        """The implementation a validated config (or a built-in's name) names, imported now."""
        entry = self.entry(config) if isinstance(config, str) else self.resolve(config)
        if entry.plugin is not None:
            return entry.plugin.cls
        module, _, attribute = entry.target.partition(":")
        return getattr(importlib.import_module(module), attribute)
