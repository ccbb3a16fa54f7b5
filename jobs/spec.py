"""The run spec: the fully resolved, validated config of one training run.

A spec is plain data (JSON-compatible dicts, lists, numbers, strings)::

    problem:   {name, **problem parameters}
    optimizer: {name, **hyperparameters}
    schedule:  {name, **schedule parameters}
    train:     {epochs, batch_size, eval_every, log_every, clip_grad_norm}
    seed, device, precision
    measure:   {name, epochs, examples, **measurement parameters}   (optional)

``measure`` (see :mod:`jobs.measure`) is part of the spec only when a
measurement is chosen, so the specs, and run ids, of runs without one are
what they were before measurements existed.

Launcher, container, logger and paths are deliberately not part of it, so
the same training run has the same :func:`run_id` wherever it is launched.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from typing import Any

from jobs.measure.registry import MEASUREMENTS, check_epochs
from jobs.optim.registry import OPTIMIZERS
from jobs.problems.registry import PROBLEMS
from jobs.schedules import SCHEDULES
from jobs.schema import Param, SpecError, count, validate_params

TRAIN_SCHEMA: dict[str, Param] = {
    "epochs": count(0, "passes over the training set"),
    "batch_size": count(1, "training minibatch size"),
    "eval_every": count(1, "epochs between evaluations (DeepOBS: 1, at every epoch start)"),
    "log_every": count(0, "steps between optimizer diagnostics in steps.jsonl; 0 logs none"),
    "clip_grad_norm": Param("float", low=0.0, low_open=True, nullable=True, help="max gradient norm; null: off"),
}
DEVICES = ("cpu", "cuda")
PRECISIONS = ("float32", "float64")
REQUIRED_KEYS = ("problem", "optimizer", "schedule", "train", "seed", "device", "precision")
#: Every top-level key of a spec; the optional ones appear only when set.
SPEC_KEYS = (*REQUIRED_KEYS, "measure")
ID_LENGTH = 12

log = logging.getLogger(__name__)


def validate_spec(config: Mapping[str, Any]) -> dict[str, Any]:
    """Return the canonical spec for ``config`` or raise one :class:`SpecError` sentence."""
    missing = [k for k in REQUIRED_KEYS if k not in config]
    if missing:
        raise SpecError(f"The run config has no '{missing[0]}' section; add it to the config or the overrides.")
    spec = {
        "problem": PROBLEMS.validate(config["problem"]),
        "optimizer": OPTIMIZERS.validate(config["optimizer"]),
        "schedule": SCHEDULES.validate(config["schedule"]),
        "train": validate_params("train", "train", TRAIN_SCHEMA, _mapping("train", config["train"])),
        "seed": Param("int", low=0).coerce("seed", config["seed"]),
        "device": Param("str", choices=DEVICES).coerce("device", config["device"]),
        "precision": Param("str", choices=PRECISIONS).coerce("precision", config["precision"]),
    }
    optimizer = OPTIMIZERS.resolve(spec["optimizer"])
    if optimizer.needs_likelihood(spec["optimizer"]) and not PROBLEMS.resolve(spec["problem"]).classifier:
        raise SpecError(
            f"optimizer {spec['optimizer']['name']!r} as configured needs the problem's likelihood, and "
            f"{spec['problem']['name']!r} is no classifier; choose a classification problem such as problem=digits_cnn"
            + (" or optimizer.curvature=hessian." if "curvature" in spec["optimizer"] else ".")
        )
    if optimizer.curvature and spec["train"]["clip_grad_norm"] is not None:
        raise SpecError(
            f"optimizer {spec['optimizer']['name']!r} takes its gradients with its curvature products, which "
            "train.clip_grad_norm does not clip; set train.clip_grad_norm=null."
        )
    if not optimizer.has_lr and (spec["schedule"]["name"] != "constant" or spec["schedule"].get("warmup")):
        shaped = "schedule.warmup" if spec["schedule"]["name"] == "constant" else f"schedule={spec['schedule']['name']}"
        raise SpecError(
            f"{shaped} needs a learning rate, but optimizer {spec['optimizer']['name']!r} chooses its own "
            "step; use schedule=constant without warmup."
        )
    if config.get("measure") is not None:
        spec["measure"] = MEASUREMENTS.validate(config["measure"])
        check_epochs(spec["measure"], spec["train"]["epochs"])
    return spec


def _mapping(key: str, value: Any) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise SpecError(f"{key} must be a mapping (got {value!r}).")
    return value


def canonical_json(data: Any) -> str:
    """Key-sorted compact JSON; tuples become lists, so equal specs give equal text."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=False)


def run_id(spec: Mapping[str, Any]) -> str:
    """Short content hash of a validated spec: the run's identity everywhere."""
    return hashlib.sha256(canonical_json(spec).encode()).hexdigest()[:ID_LENGTH]


def setting_id(spec: Mapping[str, Any]) -> str:
    """Hash of the spec without its seed: runs that differ only by seed share a setting."""
    return run_id({k: v for k, v in spec.items() if k != "seed"})


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"optimizer": {"lr": 0.1}}`` → ``{"optimizer.lr": 0.1}``: one key per hyperparameter, lists kept.

    The one flattener: W&B's config, labels and the runs table's columns all come from it.
    """
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def unflatten(flat: Mapping[str, Any]) -> dict[str, Any]:
    """``{"optimizer.lr": 0.1}`` → ``{"optimizer": {"lr": 0.1}}``; nested mappings among the values merge in.

    A key that would put a section where a value already is (``a=1`` and ``a.b=2``) is
    left out with a warning.
    """
    spec: dict[str, Any] = {}

    def put(key: str, value: Any) -> None:
        *sections, name = key.split(".")
        node = spec
        for section in sections:
            node = node.setdefault(section, {})
            if not isinstance(node, dict):
                log.warning("spec key %r clashes with a value at %r; ignoring it", key, section)
                return
        if isinstance(value, Mapping):
            for inner, item in value.items():
                put(f"{key}.{inner}", item)
        else:
            node[name] = value

    for key, value in flat.items():
        put(str(key), value)
    return spec
