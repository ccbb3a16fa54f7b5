"""The config tree: where it is, which options each group has, Hydra composition.

Composition goes through Hydra's compose API, but only once per distinct
choice of config-group options: a sweep's value overrides (learning rates,
seeds, ...) are applied to the composed config by :mod:`orchestrator.sweep`,
which is what makes a 10,000-run grid expand in seconds instead of minutes.

Options come from three places, stacked: optbench's own ``conf/``, the
user's config folders (``--config-dir DIR``, repeatable, and
``OPTBENCH_CONFIG_PATH``, a list like ``PATH``) on Hydra's search path, and
installed packages' entry points (``optbench.optimizers``,
``optbench.problems``, see :mod:`jobs.plugins`), whose default config Hydra
gets from its ConfigStore once an option of theirs is chosen. A name is
defined in one place only: a user file or an entry point with the name of
an option that already exists is refused rather than quietly shadowing it.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterable, Mapping
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml
from omegaconf import OmegaConf

from jobs import plugins
from jobs.schema import SpecError
from orchestrator.errors import UserError

#: conf/ as a wheel installs it (package data of orchestrator), and as a clone or an editable install has it.
PACKAGED_CONF = Path(__file__).resolve().parent / "conf"
SOURCE_CONF = Path(__file__).resolve().parents[1] / "conf"
PRIMARY = "config"
CONFIG_PATH_VARIABLE = "OPTBENCH_CONFIG_PATH"
#: Groups and keys that configure how runs execute, not what they compute: never swept.
EXECUTION_GROUPS = ("launcher", "container", "logger", "data_dir")
#: Groups whose options may also come from installed packages' entry points.
PLUGIN_GROUPS = tuple(plugins.ENTRY_POINT_GROUPS)


#: Settings that changed their name: old dotted key → new one (an override of the old key gets one sentence).
RENAMED_KEYS = {"launcher.timeout_min": "launcher.time_min"}
#: A group with more options than this names only the closest few in an error (the problem group has dozens).
LISTED_OPTIONS = 20


def _choices(options: list[str], given: Any) -> str:
    if len(options) <= LISTED_OPTIONS:
        return f"choose one of: {', '.join(options)}"
    closest = difflib.get_close_matches(str(given), options, n=5, cutoff=0.0)
    return f"the closest of its {len(options)} options are: {', '.join(closest)}"


def default_conf_dir() -> Path:
    """optbench's own config tree (``OPTBENCH_CONF`` replaces it, for tests and forks)."""
    given = os.environ.get("OPTBENCH_CONF")
    if given:
        return Path(given).resolve()
    return PACKAGED_CONF if PACKAGED_CONF.is_dir() else SOURCE_CONF


def user_config_dirs(given: Iterable[str | Path] = ()) -> list[Path]:
    """The user's config folders: ``OPTBENCH_CONFIG_PATH``'s, then the ``--config-dir`` ones, each once."""
    listed = [p for p in os.environ.get(CONFIG_PATH_VARIABLE, "").split(os.pathsep) if p]
    return list(dict.fromkeys(Path(p).expanduser().resolve() for p in [*listed, *given]))


class ConfigTree:
    def __init__(self, root: Path | None = None, user_dirs: Iterable[Path] | None = None):
        self.root = (root or default_conf_dir()).resolve()
        if not (self.root / f"{PRIMARY}.yaml").is_file():
            raise UserError(f"No {PRIMARY}.yaml in config folder {self.root}; set OPTBENCH_CONF to optbench's conf/.")
        self.user_dirs = user_config_dirs() if user_dirs is None else [Path(d).resolve() for d in user_dirs]
        self._files = self._option_files()
        self._entry_points: dict[str, dict[str, Any]] = {}
        self._composed: dict[tuple[str, ...], dict[str, Any]] = {}

    @cached_property
    def groups(self) -> frozenset[str]:
        return frozenset(p.name for p in self.root.iterdir() if p.is_dir())

    def _option_files(self) -> dict[str, dict[str, Path]]:
        """group → option → its file, over optbench's tree and the user's folders; refuses clashes."""
        files: dict[str, dict[str, Path]] = {}
        for folder in [self.root, *self.user_dirs]:
            if folder != self.root:
                _check_user_dir(folder, self.groups)
            for group in self.groups:
                for path in sorted((folder / group).glob("*.yaml")):
                    earlier = files.setdefault(group, {}).get(path.stem)
                    if earlier is not None:
                        raise UserError(f"{path} defines the {group} {path.stem!r}, which {earlier} defines already; "
                                        "rename your file (names are unique across config folders).")
                    files[group][path.stem] = path
        return files

    def entry_points(self, group: str) -> dict[str, Any]:
        """Options of ``group`` that installed packages declare (read once per tree, not loaded yet)."""
        if group not in PLUGIN_GROUPS:
            return {}
        if group not in self._entry_points:
            try:
                self._entry_points[group] = plugins.entry_point_targets(group)
            except SpecError as error:
                raise UserError(str(error)) from None
        return self._entry_points[group]

    def options(self, group: str) -> list[str]:
        return sorted({*self._files.get(group, {}), *self.entry_points(group)})

    def check_option(self, group: str, option: Any) -> None:
        options = self.options(group)
        if not isinstance(option, str) or option not in options:
            where = ", ".join(str(d / group) for d in [self.root, *self.user_dirs])
            plugins_too = f", and entry points {plugins.ENTRY_POINT_GROUPS[group]}" if group in PLUGIN_GROUPS else ""
            raise UserError(f"Unknown {group} {option!r}; {_choices(options, option)} (files in {where}"
                            f"{plugins_too}).")
        if option in self._files.get(group, {}) and option in self.entry_points(group):
            point = self.entry_points(group)[option]
            raise UserError(f"The {group} {option!r} is both {self._files[group][option]} and the "
                            f"{plugins.entry_point_sentence(option, point)}; rename one of them.")

    def option_config(self, group: str, option: str) -> dict[str, Any]:
        """What choosing ``option`` of ``group`` contributes: its file's data, or an entry point's defaults."""
        self.check_option(group, option)
        path = self._files.get(group, {}).get(option)
        if path is not None:
            return OmegaConf.to_container(OmegaConf.load(path), resolve=False) or {}
        return self._entry_point_plugin(group, option).config(option)

    def _entry_point_plugin(self, group: str, option: str) -> plugins.Plugin:
        point = self.entry_points(group)[option]
        try:
            return plugins.load(group, point.value)
        except SpecError as error:
            raise UserError(f"The {plugins.entry_point_sentence(option, point)} cannot be used: {error}") \
                from None

    def _register_entry_points(self, overrides: Iterable[str]) -> None:
        """Give Hydra the default config of every entry-point option these overrides choose."""
        from hydra.core.config_store import ConfigStore

        for override in overrides:
            group, _, option = override.partition("=")
            if group not in PLUGIN_GROUPS or option in self._files.get(group, {}):
                continue
            if option not in self.entry_points(group):
                continue
            plugin = self._entry_point_plugin(group, option)
            if group == "problem":  # like conf/problem/*.yaml: the problem and its training defaults
                train = {k: v for k, v in (("batch_size", plugin.extras["batch_size"]),
                                           ("epochs", plugin.extras["epochs"])) if v is not None}
                ConfigStore.instance().store(group=group, name=option, package="_global_",
                                             node={"problem": plugin.config(option), "train": train})
            else:
                ConfigStore.instance().store(group=group, name=option, node=plugin.config(option))

    def default_option(self, group: str) -> str:
        """The option of ``group`` that the primary config's defaults list chooses."""
        for entry in OmegaConf.load(self.root / f"{PRIMARY}.yaml").get("defaults", []):
            if isinstance(entry, Mapping) and group in entry:
                return str(entry[group])
        raise UserError(f"{PRIMARY}.yaml chooses no {group}; add '- {group}: NAME' to its defaults list.")

    def load_sweep(self, name: str) -> dict[str, Any]:
        self.check_option("sweep", name)
        path = self._files["sweep"][name]
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

        self._register_entry_points(overrides)
        search_path = [f"hydra.searchpath=[{','.join(_quoted(f'file://{d}') for d in self.user_dirs)}]"]
        try:
            with initialize_config_dir(config_dir=str(self.root), version_base="1.3", job_name="optbench"):
                config = compose(config_name=PRIMARY, overrides=overrides + (search_path if self.user_dirs else []))
        except HydraException as error:
            first = str(error).strip().splitlines()[0].rstrip(".")
            unknown = re.fullmatch(r"Could not override '([^']+)'", first)
            if unknown and unknown.group(1) in RENAMED_KEYS:
                old, new = unknown.group(1), RENAMED_KEYS[unknown.group(1)]
                raise UserError(f"{old} is now called {new}; set {new} instead.") from None
            if unknown:
                key = unknown.group(1)
                group = key.split(".")[0]
                where = f" (conf/{group}/ lists its keys)" if group in self.groups else ""
                raise UserError(f"Cannot set {key}{where}: check its spelling, or, for a key its config file does "
                                f"not list (such as a plugin's constructor parameter), add it with a leading +: "
                                f"+{key}=VALUE.") from None
            raise UserError(f"Hydra could not apply the overrides ({first}); fix or remove that override.") from None
        return OmegaConf.to_container(config, resolve=False)


def _check_user_dir(folder: Path, groups: frozenset[str]) -> None:
    """A user config folder holds option files in optbench's groups, and no root config of its own."""
    if not folder.is_dir():
        raise UserError(f"The config folder {folder} does not exist; check --config-dir and {CONFIG_PATH_VARIABLE}.")
    if (folder / f"{PRIMARY}.yaml").exists():
        raise UserError(f"{folder / PRIMARY}.yaml would replace optbench's root config; a config folder holds only "
                        f"group folders ({', '.join(sorted(groups))}): move its settings into those or overrides.")
    for child in sorted(folder.iterdir()):
        if child.is_dir() and child.name not in groups and not child.name.startswith((".", "_")):
            raise UserError(f"{child} is not a config group; the groups are {', '.join(sorted(groups))} "
                            "(rename or move that folder).")


def _quoted(text: str) -> str:
    """A string as a quoted value in Hydra's override grammar."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
