"""Sweep expansion: Hydra overrides → validated run specs.

Overrides use Hydra's grammar (``optimizer=sgd,adam``, ``seed='range(3)'``,
``optimizer.lr='choice(0.1,0.01)'``) plus ``logspace(start,stop,num)`` for
log-spaced grids. A named sweep (``sweep=NAME``, a file in ``conf/sweep/``)
contributes its ``params`` and ``seeds`` first; overrides on the command
line replace the sweep file's for the same key.

The grid is the Cartesian product of all sweep overrides, in the order
given (the first varies slowest). Hydra composes the config once per
distinct choice of config-group options; each run's value overrides are
then set on that plain data, and every spec is validated before anything
is written or started.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Union

from hydra.core.override_parser.overrides_parser import OverridesParser, create_functions
from hydra.core.override_parser.types import ChoiceSweep, Override, OverrideType
from hydra.errors import HydraException
from omegaconf import OmegaConf

from analysis.labels import label_settings
from jobs.schema import SpecError
from jobs.spec import SPEC_KEYS, flatten, run_id, setting_id, validate_spec
from orchestrator import rungs
from orchestrator.config import EXECUTION_GROUPS, ConfigTree
from orchestrator.errors import UserError
from orchestrator.search import Dimension, Search, draw, from_file, from_override, is_dimension

ADHOC_NAME = "adhoc"
#: Groups that say how a sweep is made or run, not what a run computes: one option per sweep.
NOT_SWEPT = (*EXECUTION_GROUPS, "search")


def logspace(start, stop, num):
    """``num`` log-spaced values from ``start`` to ``stop`` inclusive (12 significant digits)."""
    if start <= 0 or stop <= 0 or num < 1:
        raise ValueError("logspace needs start > 0, stop > 0 and num >= 1")
    if num == 1:
        return ChoiceSweep(list=[float(start)], simple_form=True)
    lo, hi = math.log10(start), math.log10(stop)
    values = [float(f"{10 ** (lo + (hi - lo) * i / (num - 1)):.12g}") for i in range(num)]
    return ChoiceSweep(list=values, simple_form=True)  # a list of values: a grid axis, never a search dimension


# Hydra checks a grammar function's arguments against real type objects, not strings.
_number = Union[int, float]  # noqa: UP007 - Hydra's checker needs typing.Union, not int | float
logspace.__annotations__ = {"start": _number, "stop": _number, "num": int, "return": ChoiceSweep}


def _parser() -> OverridesParser:
    functions = create_functions()
    functions.register(name="logspace", func=logspace)
    return OverridesParser(functions)


@dataclass
class Run:
    run_id: str
    setting_id: str
    spec: dict[str, Any]
    #: A run drawn by a search: which draw it is (``trial``) in which independent search (``study``).
    trial: int | None = None
    study: int | None = None
    #: This start trains it only to ``{"epochs": b, "rung": i}`` (successive halving); never recorded.
    budget: dict[str, int] | None = field(default=None, compare=False)


@dataclass
class Sweep:
    name: str
    overrides: list[str]
    runs: list[Run]
    launcher: dict[str, Any]
    logger: dict[str, Any]
    container: dict[str, Any] = field(default_factory=dict)
    data_dir: str | None = None
    created: float = field(default_factory=time.time)
    #: A protocol from the field that continues after this sweep (see orchestrator.tune); empty: none.
    protocol: dict[str, Any] = field(default_factory=dict)
    #: How its points were drawn (see orchestrator.search); empty: a grid.
    search: dict[str, Any] = field(default_factory=dict)

    @property
    def sweep_id(self) -> str:
        """``<name>-<hash of its run ids>``: the same grid is the same sweep whenever launched."""
        digest = hashlib.sha256("\n".join(sorted(r.run_id for r in self.runs)).encode()).hexdigest()[:8]
        return f"{self.name}-{digest}"

    @cached_property
    def labels(self) -> dict[str, str]:
        """``setting_id`` → its label (:func:`analysis.labels.label_settings`, the labeller every view uses)."""
        settings = {run.setting_id: flatten({k: v for k, v in run.spec.items() if k != "seed"}) for run in self.runs}
        return label_settings(settings)

    def describe(self, run: Run) -> str:
        """One line for people: problem · its setting's label · seed."""
        return f"{run.spec['problem']['name']} · {self.labels[run.setting_id]} · seed={run.spec['seed']}"


def expand(overrides: Iterable[str], tree: ConfigTree | None = None) -> Sweep:
    """Expand command-line overrides (and the named sweep they select) into validated runs."""
    tree = tree or ConfigTree()
    name, combined, protocol = with_sweep_file(list(overrides), tree)
    parsed = _parse(combined)
    sweeps, fixed = _split(parsed, tree)
    fixed_groups = tuple(o.input_line for o in fixed)
    # Composed with the first option of each swept group, so that fixed overrides of keys only a chosen
    # option has (measure=taylor,update_line measure.examples=64) apply; gives launcher/logger and reports
    # bad fixed overrides early.
    first_choices = tuple(f"{override.get_key_element()}={next(iter(_values(override, tree)))}"
                          for override in sweeps if _is_group(override, tree))
    base = tree.compose(fixed_groups + first_choices)
    strategy = Search.from_config(base.get("search"))
    dimensions = _search_dimensions(strategy, sweeps, parsed, base, tree)
    axes = [[(o, value) for value in _values(o, tree)] for o in sweeps
            if not any(d.key == o.key_or_group for d in dimensions)]
    bracket_trials = _bracket_trials(strategy, base) if dimensions else []
    points: list[dict[str, Any] | None] = draw(strategy, dimensions, sum(bracket_trials) or None) if dimensions \
        else [None]

    runs: dict[str, Run] = {}
    for combination in itertools.product(*axes):
        group_choices = tuple(f"{o.get_key_element()}={v}" for o, v in combination if _is_group(o, tree))
        config = tree.compose(fixed_groups + group_choices)
        values = [(o.key_or_group, o.type, o.input_line, v) for o, v in combination if not _is_group(o, tree)]
        for trial, point in enumerate(points):
            drawn = [(key, OverrideType.CHANGE, f"the search's {key}", v) for key, v in (point or {}).items()]
            spec = _validated(_apply(config, values + drawn))
            rid = run_id(spec)
            runs.setdefault(rid, Run(rid, setting_id(spec), spec, trial=trial if point is not None else None))

    searched = [d.key for d in dimensions] + [o.key_or_group for o in sweeps if not _is_group(o, tree)
                                              and o.key_or_group != "seed" and not is_dimension(o)]
    search = strategy.record(dimensions, searched, bracket_trials)
    if strategy.halving:
        rungs.check(search, [run.spec for run in runs.values()])
    execution = OmegaConf.to_container(OmegaConf.create({key: base.get(key) for key in EXECUTION_GROUPS}),
                                       resolve=True)
    return Sweep(
        name=name,
        overrides=combined,
        runs=list(runs.values()),
        launcher=dict(execution["launcher"] or {}),
        logger=dict(execution["logger"] or {}),
        container=dict(execution["container"] or {}),
        data_dir=execution["data_dir"],
        protocol=protocol,
        search=search,
    )


def _search_dimensions(strategy: Search, sweeps: list[Override], parsed: list[Override], base: Mapping[str, Any],
                       tree: ConfigTree) -> list[Dimension]:
    """The search space of a search that draws: swept keys in function form, and the space file's.

    Halving draws only when it has a search space; without one its candidates are the grid's settings.
    """
    if not strategy.draws and not strategy.halving:
        if strategy.space:
            raise UserError("search.space needs a search that draws points: add search=random or "
                            "search=quasirandom.")
        return []
    dimensions = [from_override(o, _lookup(base, o.key_or_group)) for o in sweeps
                  if not _is_group(o, tree) and o.key_or_group != "seed" and is_dimension(o)]
    if strategy.space:
        given = {o.key_or_group: o for o in parsed}
        for dimension in from_file(strategy.space):
            if dimension.key in given:
                raise UserError(f"{dimension.key} is in search.space={strategy.space} and also given as "
                                f"{given[dimension.key].input_line!r}; give each key one way.")
            dimensions.append(dimension)
    if not dimensions and not strategy.halving:
        raise UserError(f"search={strategy.name} needs a search space: sweep a key with interval(a,b), "
                        "tag(log,interval(a,b)), choice(...) or range(...), or give search.space=FILE.")
    return dimensions


def _bracket_trials(strategy: Search, base: Mapping[str, Any]) -> list[int]:
    """How many points each bracket draws: search.trials, or Hyperband's sizes for the base config's epochs."""
    if not strategy.halving or strategy.brackets == 1:
        return [strategy.trials]
    epochs = int(_lookup(base, "train.epochs") or 0)
    return rungs.bracket_sizes(epochs, strategy.min_epochs, strategy.eta, strategy.brackets)


def _lookup(config: Mapping[str, Any], key: str) -> Any:
    """The composed value at a dotted key (None where there is none)."""
    node: Any = config
    for part in key.split("."):
        node = node.get(part) if isinstance(node, Mapping) else None
    return node


def with_sweep_file(overrides: list[str], tree: ConfigTree) -> tuple[str, list[str], dict[str, Any]]:
    """The sweep's name, its overrides (the sweep file's first) and the file's protocol."""
    chosen = [o for o in overrides if o.split("=", 1)[0].strip() == "sweep"]
    if len(chosen) > 1:
        raise UserError("Give sweep=NAME at most once; a launch expands one named sweep.")
    rest = [o for o in overrides if o not in chosen]
    if not chosen:
        return ADHOC_NAME, rest, {}
    name = chosen[0].split("=", 1)[1].strip()
    sweep = tree.load_sweep(name)
    from_file = [f"{key}={_as_override_value(value)}" for key, value in (sweep.get("params") or {}).items()]
    if "seeds" in sweep:
        from_file.append(f"seed={_as_override_value(sweep['seeds'])}")
    cli_keys = {override_key(o) for o in rest}
    protocol = sweep.get("protocol") or {}
    if not isinstance(protocol, Mapping):
        raise UserError(f"protocol in sweep file {name}.yaml must be a mapping such as {{name: deepobs}}.")
    return name, [o for o in from_file if override_key(o) not in cli_keys] + rest, dict(protocol)


def override_key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~").strip()


def _as_override_value(value: Any) -> str:
    """A sweep-file value as override text: YAML lists become choices, strings stay grammar."""
    if isinstance(value, list):
        return ",".join(_as_override_value(v) for v in value)
    if isinstance(value, str):
        return value
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else repr(value)


def _parse(overrides: list[str]) -> list[Override]:
    parser = _parser()
    parsed = []
    for text in overrides:
        try:
            parsed.extend(parser.parse_overrides([text]))
        except HydraException as error:
            lines = [line for line in str(error).strip().splitlines() if not line.startswith("See https")]
            reason = lines[-1].rstrip(".") if lines else "unreadable"
            raise UserError(
                f"Malformed override {text!r} ({reason}); write it as KEY=VALUE in Hydra's grammar."
            ) from None
    keys = [o.get_key_element() for o in parsed]
    duplicate = next((k for k in keys if keys.count(k) > 1), None)
    if duplicate:
        raise UserError(f"{duplicate} is given more than once; give each key once (a,b,c sweeps over values).")
    return parsed


def _is_group(override: Override, tree: ConfigTree) -> bool:
    return override.key_or_group in tree.groups and override.package is None


def _split(parsed: list[Override], tree: ConfigTree) -> tuple[list[Override], list[Override]]:
    sweeps, fixed = [], []
    for override in parsed:
        if override.key_or_group == "sweep":
            continue
        if override.is_sweep_override():
            if override.key_or_group.split(".")[0] in NOT_SWEPT:
                key = override.key_or_group
                raise UserError(f"{key} cannot be swept; launch one sweep per {key}.")
            sweeps.append(override)
        else:
            if _is_group(override, tree) and override.type is OverrideType.CHANGE:
                tree.check_option(override.key_or_group, override.value())
            fixed.append(override)
    return sweeps, fixed


def _values(override: Override, tree: ConfigTree) -> list[Any]:
    if override.is_interval_sweep():
        raise UserError(f"{override.input_line} is an interval; a grid needs values: use choice(), range() or "
                        "logspace(), or draw from it with search=random or search=quasirandom.")
    try:
        values = list(override.sweep_iterator())
    except HydraException as error:
        raise UserError(
            f"Cannot expand {override.input_line} ({error}); use choice(), range() or logspace()."
        ) from None
    if not values:
        raise UserError(f"{override.input_line} expands to no values; give at least one.")
    if _is_group(override, tree):
        for value in values:
            tree.check_option(override.key_or_group, value)
    return values


def _apply(config: Mapping[str, Any], values: list[tuple[str, OverrideType, str, Any]]) -> dict[str, Any]:
    """Set ``(key, how, where it was given, value)`` on composed data, copying only the dicts on each key's path."""
    result = dict(config)
    for key, how, given, value in values:
        path = key.split(".")
        node = result
        for depth, part in enumerate(path[:-1]):
            child = node.get(part)
            if not isinstance(child, Mapping):
                raise _no_such_key(given, ".".join(path[: depth + 1]))
            node[part] = node = dict(child)
        leaf = path[-1]
        if how is OverrideType.DEL:
            node.pop(leaf, None)
            continue
        if how is OverrideType.CHANGE and leaf not in node:
            raise _no_such_key(given, key)
        if how is OverrideType.ADD and leaf in node:
            raise UserError(f"{key} already exists; drop the '+' to change it.")
        node[leaf] = value
    # Only the spec's keys become the run; the execution keys' interpolations (data_dir's ${oc.env:...}) are
    # resolved once per sweep in expand(), not once per run at OmegaConf's price.
    if _has_interpolation({key: result[key] for key in SPEC_KEYS if key in result}):
        result = OmegaConf.to_container(OmegaConf.create(result), resolve=True)
    return result


def _no_such_key(given: str, key: str) -> UserError:
    return UserError(f"{key} is not a config key; check the spelling of {given!r} or add it with '+'.")


def _has_interpolation(data: Any) -> bool:
    if isinstance(data, str):
        return "${" in data
    if isinstance(data, Mapping):
        return any(_has_interpolation(v) for v in data.values())
    if isinstance(data, list):
        return any(_has_interpolation(v) for v in data)
    return False


def _validated(config: Mapping[str, Any]) -> dict[str, Any]:
    try:
        return validate_spec({key: config.get(key) for key in SPEC_KEYS if key in config})
    except SpecError as error:
        raise UserError(str(error)) from None
