"""The config tree: where it is, which options each group has, Hydra composition.

Composition goes through Hydra's compose API, but only once per distinct
choice of config-group options: a sweep's value overrides (learning rates,
seeds, ...) are applied to the composed config by :mod:`orchestrator.sweep`,
which is what makes a 10,000-run grid expand in seconds instead of minutes.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml
from omegaconf import OmegaConf

from orchestrator.errors import UserError

PROJECT_CONF = Path(__file__).resolve().parents[1] / "conf"
PRIMARY = "config"
#: Groups and keys that configure how runs execute, not what they compute: never swept.
EXECUTION_GROUPS = ("launcher", "container", "logger", "data_dir")


#: A group with more options than this names only the closest few in an error (the problem group has dozens).
LISTED_OPTIONS = 20


def _choices(options: list[str], given: Any) -> str:
    if len(options) <= LISTED_OPTIONS:
        return f"choose one of: {', '.join(options)}"
    closest = difflib.get_close_matches(str(given), options, n=5, cutoff=0.0)
    return f"the closest of its {len(options)} options are: {', '.join(closest)}"


def default_conf_dir() -> Path:
    return Path(os.environ.get("OPTBENCH_CONF") or PROJECT_CONF).resolve()


class ConfigTree:
    def __init__(self, root: Path | None = None):
        self.root = (root or default_conf_dir()).resolve()
        if not (self.root / f"{PRIMARY}.yaml").is_file():
            raise UserError(f"No {PRIMARY}.yaml in config folder {self.root}; set OPTBENCH_CONF to optbench's conf/.")
        self._composed: dict[tuple[str, ...], dict[str, Any]] = {}

    @cached_property
    def groups(self) -> frozenset[str]:
        return frozenset(p.name for p in self.root.iterdir() if p.is_dir())

    def options(self, group: str) -> list[str]:
        return sorted(p.stem for p in (self.root / group).glob("*.yaml"))

    def check_option(self, group: str, option: Any) -> None:
        options = self.options(group)
        if not isinstance(option, str) or option not in options:
            raise UserError(f"Unknown {group} {option!r}; {_choices(options, option)} (files in {self.root / group}).")

    def default_option(self, group: str) -> str:
        """The option of ``group`` that the primary config's defaults list chooses."""
        for entry in OmegaConf.load(self.root / f"{PRIMARY}.yaml").get("defaults", []):
            if isinstance(entry, Mapping) and group in entry:
                return str(entry[group])
        raise UserError(f"{PRIMARY}.yaml chooses no {group}; add '- {group}: NAME' to its defaults list.")

    def load_sweep(self, name: str) -> dict[str, Any]:
        self.check_option("sweep", name)
        path = self.root / "sweep" / f"{name}.yaml"
        try:
            data = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark else ""
            problem = getattr(error, "problem", None) or "cannot be parsed"
            raise UserError(f"Sweep file {path} is not valid YAML{where} ({problem}); fix it.") from None
        if data is not None and not isinstance(data, dict):
            raise UserError(f"Sweep file {name}.yaml must be a mapping with 'params', 'seeds' and 'protocol'.")
        unknown = sorted(set(data or {}) - {"params", "seeds", "protocol"})
        if unknown:
            raise UserError(f"Sweep file {name}.yaml has an unknown key '{unknown[0]}'; "
                            "use only 'params', 'seeds' and 'protocol'.")
        if not isinstance((data or {}).get("params") or {}, dict):
            raise UserError(f"params in sweep file {name}.yaml must map override keys to values or lists, "
                            "such as {optimizer: [sgd, adam]}.")
        return data or {}

    def compose(self, overrides: tuple[str, ...]) -> dict[str, Any]:
        """The primary config with ``overrides`` applied, as plain unresolved data (cached)."""
        if overrides not in self._composed:
            self._composed[overrides] = self._compose(list(overrides))
        return self._composed[overrides]

    def _compose(self, overrides: list[str]) -> dict[str, Any]:
        from hydra import compose, initialize_config_dir
        from hydra.errors import HydraException

        try:
            with initialize_config_dir(config_dir=str(self.root), version_base="1.3", job_name="optbench"):
                config = compose(config_name=PRIMARY, overrides=overrides)
        except HydraException as error:
            first = str(error).strip().splitlines()[0].rstrip(".")
            unknown = re.fullmatch(r"Could not override '([^']+)'", first)
            if unknown:
                key = unknown.group(1)
                group = key.split(".")[0]
                where = f" (conf/{group}/ lists its keys)" if group in self.groups else ""
                raise UserError(f"Cannot set {key}{where}: check its spelling, or add a new key "
                                f"with a leading + as in +{key}.NAME=VALUE.") from None
            raise UserError(f"Hydra could not apply the overrides ({first}); fix or remove that override.") from None
        return OmegaConf.to_container(config, resolve=False)
