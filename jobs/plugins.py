"""Optimizers and problems from outside optbench: a class named by ``target: "module:Class"``.

A plugin is a class in the user's own package or source folder: a
``torch.optim.Optimizer`` subclass, or a :class:`jobs.problems.base.Problem`
subclass. optbench finds it through an entry point of an installed package
(``optbench.optimizers`` / ``optbench.problems``, the name is the config
option) or through ``target:`` in a user config file; either way the run
spec carries the target, so a job needs nothing but the spec to build it.

Hyperparameters come from the constructor's signature: every parameter
with a JSON default (a number, string, boolean, null, or a list of
numbers) or a type annotation optbench can check (``float``, ``int``,
``bool``, ``str``, ``Literal[...]``, ``tuple[float, float]``,
``list[float]``, ``X | None``). An unannotated default of ``0`` takes any
number; of ``None``, any scalar. A class may narrow its parameters with a
``hyperparameters`` attribute, ``{name: {"low", "high", "low_open",
"high_open", "choices", "help"}}``. An optimizer's first constructor
parameter takes the parameters to optimize; a problem's ``batch_size``,
``device``, ``dtype`` and ``data_dir`` come from the trainer, by name, when
it takes them.

Identity: a plugin's spec section holds ``target`` and ``code_hash``, the
sha256 of the Python files of the package that defines the class (its
module's folder and below; a top-level module alone), so both are part of
the run id. Editing the plugin and launching again therefore starts new
runs (with new ids) rather than reusing results of other code; a comment
edit counts as a change too, which is the price of never being wrong. A job
checks that the code it imports has the hash its spec names, so a compute
node or an image holding other code than the login node fails the run
instead of mislabelling it (the launcher checks images before submitting).
What the hash cannot tell, a run's provenance records: the distribution and
its version, and for code outside an installed package its folder's git
commit and dirty flag.

Nothing here imports torch until a plugin is loaded.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import sys
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

from jobs.schema import Param, SpecError

ENTRY_POINT_GROUPS = {"optimizer": "optbench.optimizers", "problem": "optbench.problems"}
#: Keys of a plugin's spec section that are not constructor arguments.
RESERVED = ("name", "target", "code_hash")
#: Problem constructor arguments the trainer supplies.
PROBLEM_CONTEXT = ("batch_size", "device", "dtype", "data_dir")
#: What ``hyperparameters`` may say about a parameter.
DECLARABLE = ("low", "high", "low_open", "high_open", "choices", "help")
HASH_LENGTH = 16


@dataclass(frozen=True)
class Plugin:
    """A loaded plugin class and what optbench derived from it."""

    kind: str  # optimizer | problem
    target: str
    cls: type
    params: Mapping[str, Param]
    defaults: Mapping[str, Any]  # the constructor's defaults, as JSON data
    code_hash: str
    extras: Mapping[str, Any] = field(default_factory=dict)  # kind-specific facts, see optimizer_facts/problem_facts

    def config(self, name: str) -> dict[str, Any]:
        """The default config of this plugin under option ``name``: what an entry point contributes to Hydra."""
        return {"name": name, "target": self.target, **self.defaults}


def entry_point_targets(kind: str) -> dict[str, metadata.EntryPoint]:
    """Option name → entry point, for every installed package that declares ``kind`` plugins."""
    found: dict[str, metadata.EntryPoint] = {}
    for point in metadata.entry_points(group=ENTRY_POINT_GROUPS[kind]):
        other = found.get(point.name)
        if other is not None and other.value != point.value:
            raise SpecError(f"Two installed packages declare the {kind} {point.name!r} ({_dist_name(other)}: "
                            f"{other.value}, {_dist_name(point)}: {point.value}); uninstall one of them.")
        found[point.name] = point
    return found


def _dist_name(point: metadata.EntryPoint) -> str:
    return point.dist.name if point.dist is not None else "an unknown package"


def entry_point_sentence(name: str, point: metadata.EntryPoint) -> str:
    return f"entry point {name!r} of {_dist_name(point)} ({point.value})"


def load(kind: str, target: Any) -> Plugin:
    """The plugin ``target`` names, checked; one :class:`SpecError` sentence for what is wrong."""
    if not isinstance(target, str) or not _well_formed(target):
        raise SpecError(f"{kind}.target must look like 'package.module:Class' (got {target!r}).")
    return _load(kind, target)


def _well_formed(target: str) -> bool:
    module, colon, attribute = target.partition(":")
    return bool(colon) and all(part.isidentifier() for part in (*module.split("."), *attribute.split(".")))


@cache
def _load(kind: str, target: str) -> Plugin:
    cls = import_target(kind, target)
    _check_base(kind, target, cls)
    skip = _skipped_parameters(kind, cls)
    params, defaults = schema_of(cls, skip, f"{kind} {target}")
    facts = optimizer_facts(cls, params) if kind == "optimizer" else problem_facts(cls)
    return Plugin(kind, target, cls, params, defaults, code_hash(cls), facts)


def import_target(kind: str, target: str) -> type:
    module_name, _, attribute = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as error:
        raise SpecError(f"{kind}.target {target} does not import ({type(error).__name__}: {error}); install the "
                        "package that has it, or put its folder on PYTHONPATH or in the folder you launch from.") \
            from None
    value: Any = module
    for part in attribute.split("."):
        if not hasattr(value, part):
            raise SpecError(f"{kind}.target {target}: module {module_name} has no {attribute}; check the class name.")
        value = getattr(value, part)
    if not isinstance(value, type):
        raise SpecError(f"{kind}.target {target} is a {type(value).__name__}, not a class; name the class.")
    return value


def _check_base(kind: str, target: str, cls: type) -> None:
    if kind == "optimizer":
        import torch

        base, what = torch.optim.Optimizer, "torch.optim.Optimizer"
    else:
        from jobs.problems.base import Problem

        base, what = Problem, "jobs.problems.base.Problem"
    if not issubclass(cls, base):
        raise SpecError(f"{kind}.target {target} is not a {what} subclass; an {kind} plugin must be one.")


def _skipped_parameters(kind: str, cls: type) -> tuple[str, ...]:
    """Constructor parameters that are not hyperparameters: an optimizer's first (its params), a problem's context."""
    if kind == "problem":
        return PROBLEM_CONTEXT
    names = [p.name for p in inspect.signature(cls).parameters.values()
             if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return tuple(names[:1])


def schema_of(cls: type, skip: Sequence[str], what: str) -> tuple[dict[str, Param], dict[str, Any]]:
    """Each configurable constructor parameter's :class:`Param` and JSON default (absent: it has none)."""
    declared = getattr(cls, "hyperparameters", None) or {}
    if not isinstance(declared, Mapping):
        raise SpecError(f"{cls.__name__}.hyperparameters must map parameter names to settings ({what}).")
    try:
        hints = typing.get_type_hints(cls.__init__)
    except Exception:  # annotations that do not evaluate here: fall back to the defaults
        hints = {}
    params: dict[str, Param] = {}
    defaults: dict[str, Any] = {}
    for name, parameter in inspect.signature(cls).parameters.items():
        if name in skip or parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        if name in RESERVED:
            raise SpecError(f"{cls.__name__} takes a parameter {name!r}, which optbench's config uses for itself "
                            f"({what}); rename it.")
        default = parameter.default
        param = _param(hints.get(name), default)
        if param is None or (default is not parameter.empty and not _is_json(default)):
            if default is parameter.empty:
                raise SpecError(f"{cls.__name__}'s parameter {name!r} has no default and no type optbench can set "
                                f"from a config ({what}); give it a default or a float/int/bool/str annotation.")
            continue  # an object default (a callable, a module): not a hyperparameter
        settings = declared.get(name, {})
        unknown = sorted(set(settings) - set(DECLARABLE))
        if unknown:
            raise SpecError(f"{cls.__name__}.hyperparameters[{name!r}] has an unknown setting {unknown[0]!r}; "
                            f"use {', '.join(DECLARABLE)}.")
        params[name] = _declared(param, settings)
        if default is not parameter.empty:
            defaults[name] = _as_json(default)
    extra = sorted(set(declared) - set(params))
    if extra:
        raise SpecError(f"{cls.__name__}.hyperparameters names {extra[0]!r}, which its constructor does not take "
                        f"as a hyperparameter ({what}).")
    return params, defaults


def _declared(param: Param, settings: Mapping[str, Any]) -> Param:
    if "choices" in settings:
        settings = {**settings, "choices": tuple(settings["choices"])}
    return replace(param, **settings)


def _param(hint: Any, default: Any) -> Param | None:
    """The Param a type hint (else the default's type) calls for; None: not something a config can hold."""
    if hint is not None:
        return _param_of_hint(hint)
    if default is inspect.Parameter.empty:
        return None
    if default is None:
        return Param("scalar", nullable=True)
    if isinstance(default, bool):
        return Param("bool")
    if isinstance(default, int):
        return Param("number")
    if isinstance(default, float):
        return Param("float")
    if isinstance(default, str):
        return Param("str")
    if isinstance(default, list | tuple) and default and all(_is_number(v) for v in default):
        return Param("floats", length=len(default))
    return None


def _param_of_hint(hint: Any) -> Param | None:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        kept = [a for a in args if a is not type(None) and not _is_tensor_type(a)]
        nullable = type(None) in args
        if {*kept} == {int, float}:
            return Param("number", nullable=nullable)
        lists = [_param_of_hint(a) for a in kept]
        if len(kept) > 1 and all(p is not None and p.kind == "floats" for p in lists):
            # lists of numbers of several lengths (pytorch-optimizer's Betas: 2 or 3 of them): any length
            lengths = {p.length for p in lists}
            return Param("floats", length=lengths.pop() if len(lengths) == 1 else None, nullable=nullable)
        if len(kept) != 1:
            return None
        inner = _param_of_hint(kept[0])
        return None if inner is None else replace(inner, nullable=nullable)
    if origin is typing.Literal:
        kinds = {type(a) for a in args}
        kind = "str" if kinds == {str} else "int" if kinds == {int} else None
        return None if kind is None else Param(kind, choices=tuple(args))
    if origin in (tuple, list, Sequence) or hint in (tuple, list):
        items = [a for a in args if a is not Ellipsis]
        if items and not all(_param_of_hint(a) is not None and _param_of_hint(a).kind in ("float", "number")
                             for a in items):
            return None
        fixed = origin is tuple and args and Ellipsis not in args
        return Param("floats", length=len(args) if fixed else None)
    return {float: Param("float"), int: Param("int"), bool: Param("bool"), str: Param("str")}.get(hint)


def _is_tensor_type(hint: Any) -> bool:
    return getattr(hint, "__name__", "") == "Tensor" and getattr(hint, "__module__", "").startswith("torch")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_json(value: Any) -> bool:
    if value is None or isinstance(value, bool | str) or _is_number(value):
        return True
    return isinstance(value, list | tuple) and all(_is_number(v) for v in value)


def _as_json(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def optimizer_facts(cls: type, params: Mapping[str, Param]) -> dict[str, Any]:
    """``has_lr``: learning-rate schedules can scale its ``lr``."""
    return {"has_lr": "lr" in params}


def problem_facts(cls: type) -> dict[str, Any]:
    """Defaults for the config (batch size, epochs), whether it is a classifier, and the files it reads."""
    return {"batch_size": getattr(cls, "default_batch_size", None), "epochs": getattr(cls, "default_epochs", None),
            "classifier": getattr(cls, "likelihood", None) is not None,
            "dataset_files": getattr(cls, "dataset_files", None)}


# -- identity and provenance ----------------------------------------------------------------------------------


def code_files(cls: type) -> tuple[Path, list[Path]]:
    """The folder the hash is relative to, and the Python files of the package that defines ``cls``."""
    module = sys.modules[cls.__module__]
    origin = Path(inspect.getfile(module)).resolve()
    if not module.__package__:
        return origin.parent, [origin]
    folder = origin.parent
    return folder, sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)


def code_hash(cls: type) -> str:
    folder, files = code_files(cls)
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:HASH_LENGTH]


def check_code(plugin: Plugin, recorded: Any) -> None:
    """The code here must be the code the run was launched with."""
    if recorded is not None and recorded != plugin.code_hash:
        folder, _ = code_files(plugin.cls)
        raise SpecError(f"The code of {plugin.kind} {plugin.target} ({folder}) is not the code this run was "
                        f"launched with (code_hash {recorded} then, {plugin.code_hash} here); launch the sweep again "
                        "to run the new code as new runs, or restore the old code.")


def source_root(cls: type) -> Path | None:
    """The folder on the import path that holds ``cls``'s top-level package, unless a regular install holds it.

    Code in a source folder, or in a package installed in editable mode,
    lives outside the environment: jobs must be given this folder (and
    containers must bind it) to import it.
    """
    distribution = distribution_of(cls)
    if distribution is not None and not editable(distribution):
        return None
    depth = cls.__module__.count(".") + 1
    origin = Path(inspect.getfile(sys.modules[cls.__module__])).resolve()
    return origin.parents[depth if origin.name == "__init__.py" else depth - 1]


def distribution_of(cls: type) -> metadata.Distribution | None:
    """The installed distribution that provides ``cls``'s top-level package, if any."""
    top = cls.__module__.split(".")[0]
    for name in metadata.packages_distributions().get(top) or []:
        try:
            return metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
    return None


def editable(distribution: metadata.Distribution) -> bool:
    try:
        text = distribution.read_text("direct_url.json")
        return bool(text and json.loads(text).get("dir_info", {}).get("editable"))
    except (OSError, ValueError):
        return False


def sections(spec: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """The spec's plugin sections as (kind, config): those with a ``target``."""
    return [(kind, spec[kind]) for kind in ENTRY_POINT_GROUPS
            if isinstance(spec.get(kind), Mapping) and spec[kind].get("target") is not None]


def add_source_folders(folders: Sequence[str]) -> None:
    """Make the plugins' source folders importable in this process (a job, given them by its launcher)."""
    for folder in folders:
        if folder not in sys.path:
            sys.path.append(folder)
