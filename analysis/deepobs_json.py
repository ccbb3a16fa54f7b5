"""Exchange results with DeepOBS: write runs as DeepOBS result JSONs, read DeepOBS trees as a sweep.

DeepOBS (Schneider, Balles & Hennig, ICLR 2019) writes one JSON per run at
``<output_dir>/<testproblem>/<optimizer_name>/<setting>/random_seed__<seed>__<%Y-%m-%d-%H-%M-%S>.json``.
``<setting>`` is ``num_epochs__<N>__batch_size__<B>``, then ``__weight_decay__<wd>`` when given,
then ``__<name>__<value>`` for every optimizer hyperparameter and then every training
parameter that is not None, each group sorted by name; floats are written with ten
significant digits and trailing zeros cut (``0.1`` → ``1.e-01``, ``0.99`` → ``9.9e-01``),
everything else with ``str``.

Two versions of the content are read:

* **1.2.0-beta** (PyTorch and TensorFlow runners, ``deepobs.abstract_runner``): ``testproblem``,
  ``batch_size``, ``num_epochs``, ``random_seed``, ``weight_decay`` (null: the problem's
  default), ``optimizer_name`` (the optimizer class name: ``SGD``, ``Adam``, ``MomentumOptimizer``),
  ``optimizer_hyperparams`` (the class's keyword arguments: ``lr`` in PyTorch, ``learning_rate``
  in TensorFlow), ``training_params`` (``lr_sched_epochs``/``lr_sched_factors`` for the schedule
  runner), the per-epoch lists ``{train,valid,test}_losses`` and ``{train,valid,test}_accuracies``
  (accuracies left out when the problem has none) and ``minibatch_train_losses``. A run whose
  minibatch loss turns NaN/inf stops, and its remaining epochs are filled with the epoch-0 values.
* **1.1** (TensorFlow, the runs of the ICLR paper and the published DeepOBS_Baselines):
  ``optimizer`` instead of ``optimizer_name``, ``hyperparams`` (without the learning rate),
  top-level ``learning_rate``, ``lr_sched_epochs``, ``lr_sched_factors``, ``train_log_interval``;
  no validation lists; a diverged run keeps training and logs NaN.

In both, every per-epoch list has ``num_epochs + 1`` entries (evaluation at the start of every
epoch and after the last) and Python's :mod:`json` writes non-finite values as ``NaN``/``Infinity``.

Export writes the 1.2 layout. A diverged run is written as DeepOBS's runner writes an aborted
one. DeepOBS evaluates at the start of every epoch and, when the last minibatch loss of epoch
``e`` is NaN/inf, calls ``Runner._abort_routine`` (``deepobs/abstract_runner/abstract_runner.py``),
which appends the list's epoch-0 value ``num_epochs - e`` times to every per-epoch list (and
``minibatch_train_losses[0]`` once per missing epoch to that list): the lists hold the ``e + 1``
finite evaluations 0..e, then copies of entry 0, ``num_epochs + 1`` entries in all, and never a NaN.
So the export keeps the run's points before its first non-finite loss (a run that diverged
inside an epoch has none) and fills every list from there with its epoch-0 value; DeepOBS's
analyzer (which averages a setting's lists element-wise) then reads it as DeepOBS's own, the
aborted run ending at its initial performance. ``minibatch_train_losses`` stays empty (optbench
does not export per-minibatch losses). What DeepOBS has no key for goes under ``"optbench"``,
which DeepOBS ignores: the run's ids, state, number of measured points, spec columns, other
metric columns and, under ``replaced``, the measured values the padding stands in for (the NaN
and infinite ones), so a round trip keeps identity, state and values.
Settings that differ only outside the optimizer would share a DeepOBS folder; the spec columns
that vary within a problem are written as training parameters, which DeepOBS puts in the name.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from analysis.collect import (
    RUN_COLUMNS,
    SPEC_SCALARS,
    SPEC_SECTIONS,
    Fingerprint,
    SweepData,
    runs_table,
    tidy_metrics,
)
from jobs import spec as run_spec
from jobs.run_folder import DONE_STATES, atomic_write_text

log = logging.getLogger(__name__)

#: Key of the optbench extras inside an exported result (DeepOBS reads named keys only).
OPTBENCH_KEY = "optbench"
RESULT_GLOB = "random_seed__*.json"
TIME_FORMAT = "%Y-%m-%d-%H-%M-%S"
#: DeepOBS per-epoch list → metrics-table column.
CURVES = (
    ("train_losses", "train_loss"), ("valid_losses", "valid_loss"), ("test_losses", "test_loss"),
    ("train_accuracies", "train_accuracy"), ("valid_accuracies", "valid_accuracy"),
    ("test_accuracies", "test_accuracy"),
)
LOSS_COLUMNS = ("train_loss", "valid_loss", "test_loss")
REQUIRED = ("testproblem", "batch_size", "num_epochs", "random_seed", "train_losses", "test_losses")
#: Spec columns that have keys of their own in a DeepOBS result.
FIRST_CLASS = ("train.epochs", "train.batch_size", "problem.weight_decay")
#: optbench optimizer → the PyTorch class DeepOBS would name it after; others keep their name.
TORCH_CLASSES = {"sgd": "SGD", "adam": "Adam", "adamw": "AdamW", "adagrad": "Adagrad", "rmsprop": "RMSprop"}


# ----------------------------------------------------------------------------- names


def float_text(value: float) -> str:
    """A float as DeepOBS writes it in folder names: ten significant digits, trailing zeros cut."""
    if not math.isfinite(value):
        return str(value)
    mantissa, exponent = f"{value:.10e}".split("e")
    return f"{mantissa.rstrip('0')}e{exponent}"


def _value_text(value: Any) -> str:
    return float_text(value) if isinstance(value, float) else str(value)


def setting_folder_name(num_epochs: int, batch_size: Any, weight_decay: float | None,
                        hyperparams: Mapping[str, Any], training_params: Mapping[str, Any]) -> str:
    """DeepOBS's setting folder name (``num_epochs__100__batch_size__128__lr__1.e-01``)."""
    name = f"num_epochs__{num_epochs}__batch_size__{batch_size}"
    if weight_decay is not None:
        name += f"__weight_decay__{float_text(float(weight_decay))}"
    for key, value in sorted(hyperparams.items()):
        name += f"__{key}__{_value_text(value)}"
    for key, value in sorted(training_params.items()):
        if value is not None:
            name += f"__{key}__{_value_text(value)}"
    return name


def deepobs_optimizer_name(name: str) -> str:
    """optbench's optimizer name → the class name a DeepOBS runner records (``sgd`` → ``SGD``)."""
    return TORCH_CLASSES.get(name, name)


def optbench_optimizer_name(name: str) -> str:
    """A DeepOBS optimizer class name → a short lower-case name (``MomentumOptimizer`` → ``momentum``)."""
    short = name.removesuffix("Optimizer").lower()
    return "sgd" if short == "gradientdescent" else short


# ----------------------------------------------------------------------------- export


def export_deepobs(runs: pd.DataFrame, metrics: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Write one DeepOBS result JSON per completed or diverged run with evaluation points.

    Pending, running, failed and cancelled runs are left out (DeepOBS writes a result only when
    a run ends); so is a run not evaluated at every epoch start (``train.eval_every`` above 1).
    Exporting again into the same folder overwrites each run's earlier file.
    """
    out_dir = Path(out_dir)
    columns = _spec_columns(runs)
    points = {run_id: frame for run_id, frame in metrics.groupby("run_id", observed=True, sort=False)}
    done = runs[runs["state"].isin(DONE_STATES) & runs["run_id"].isin(list(points))]
    other = [c for c in columns if not c.startswith("optimizer.") and c not in FIRST_CLASS]
    varying = {problem: _varying(group, other) for problem, group in done.groupby("problem", sort=False)}
    stamp = time.strftime(TIME_FORMAT)
    written: list[Path] = []
    for row in done.to_dict("records"):
        result = _deepobs_result(row, points[row["run_id"]], columns, varying[row["problem"]])
        if result is None:
            continue
        folder = out_dir / result["testproblem"] / result["optimizer_name"] / setting_folder_name(
            result["num_epochs"], result["batch_size"], result["weight_decay"], result["optimizer_hyperparams"],
            result["training_params"])
        path = _target(folder, result["random_seed"], row["run_id"], stamp)
        if path in written:
            log.warning("runs %s and another share DeepOBS setting %s and seed %d; writing both",
                        row["run_id"], folder.name, result["random_seed"])
            path = path.with_name(f"{path.stem}__{row['run_id']}.json")
        atomic_write_text(path, json.dumps(result, indent=4))
        written.append(path)
    log.info("wrote %d DeepOBS result files (of %d runs) under %s", len(written), len(runs), out_dir)
    return written


def _spec_columns(runs: pd.DataFrame) -> list[str]:
    """The runs table's spec columns (not labels or sweep ids an aggregate may have added)."""
    sections = (*SPEC_SECTIONS, *SPEC_SCALARS)
    return [c for c in runs.columns if c not in RUN_COLUMNS and c.split(".", 1)[0] in sections]


def _varying(rows: pd.DataFrame, columns: Sequence[str]) -> list[str]:
    return [c for c in columns if len({repr(_plain(v)) for v in rows[c] if not _missing(v)}) > 1]


def _deepobs_result(row: Mapping[str, Any], points: pd.DataFrame, columns: Sequence[str],
                    varying: Sequence[str]) -> dict[str, Any] | None:
    run_id = row["run_id"]
    epochs = points["epoch"].to_numpy()
    count = len(epochs)
    num_epochs = _integer_or_none(row.get("train.epochs"))
    if num_epochs is None:
        num_epochs = count - 1
    complete = row["state"] != "completed" or count == num_epochs + 1
    if not (np.array_equal(epochs, np.arange(count)) and count <= num_epochs + 1 and complete):
        log.warning("not exporting run %s: evaluated at epochs %s, but DeepOBS needs every epoch 0..%d",
                    run_id, epochs.tolist(), num_epochs)
        return None
    if not {"train_loss", "test_loss"} <= set(points.columns):
        log.warning("not exporting run %s: DeepOBS needs train and test losses", run_id)
        return None
    hyperparams = {c.removeprefix("optimizer."): _native(row[c]) for c in columns
                   if c.startswith("optimizer.") and c != "optimizer.name" and not _missing(row[c])}
    result: dict[str, Any] = {
        "testproblem": row["problem"],
        "batch_size": _integer_or_none(row.get("train.batch_size")),
        "num_epochs": num_epochs,
        "random_seed": int(row["seed"]),
        "weight_decay": None if _missing(row.get("problem.weight_decay")) else float(row["problem.weight_decay"]),
        "optimizer_name": deepobs_optimizer_name(row["optimizer"]),
        "optimizer_hyperparams": hyperparams,
        "training_params": {c: _native(row[c]) for c in varying if not _missing(row[c])},
    }
    if _is_number(hyperparams.get("lr")):
        result["learning_rate"] = hyperparams["lr"]  # the 1.1 key
    kept = _before_divergence(points) if row["state"] == "diverged" else count
    shared, replaced = set(), {}
    for key, column in CURVES:
        if column not in points.columns:
            continue
        values = points[column].to_numpy(dtype=np.float64)
        if column not in LOSS_COLUMNS and np.isnan(values).all():
            continue  # the problem reports no accuracy
        shared.add(column)
        result[key] = np.concatenate([values[:kept], np.full(num_epochs + 1 - kept, values[0])]).tolist()
        if kept < count:
            replaced[column] = values[kept:].tolist()
    result["minibatch_train_losses"] = []
    extra = [c for c in points.columns if c not in ("run_id", "setting_id", "epoch") and c not in shared]
    result[OPTBENCH_KEY] = {
        "run_id": run_id,
        "setting_id": row["setting_id"],
        "state": row["state"],
        "optimizer": row["optimizer"],
        "points": count,
        "columns": {c: _plain(row[c]) for c in columns},  # missing ones too: the runs table keeps its columns
        "metrics": {c: points[c].to_numpy(dtype=np.float64).tolist() for c in extra
                    if not np.isnan(points[c].to_numpy(dtype=np.float64)).all()},
    }
    if replaced:
        result[OPTBENCH_KEY]["replaced"] = replaced
    return result


def _before_divergence(points: pd.DataFrame) -> int:
    """How many points precede the first with a non-finite loss: those DeepOBS would have kept."""
    losses = points[[c for c in LOSS_COLUMNS if c in points.columns]].to_numpy(dtype=np.float64)
    bad = ~np.isfinite(losses).all(axis=1)
    return int(np.argmax(bad)) if bad.any() else len(points)


def _target(folder: Path, seed: int, run_id: str, stamp: str) -> Path:
    """The file of an earlier export of the run, else a new DeepOBS file name."""
    for path in sorted(folder.glob(f"random_seed__{seed}__*.json")):
        try:
            if json.loads(path.read_text(encoding="utf-8"))[OPTBENCH_KEY]["run_id"] == run_id:
                return path
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return folder / f"random_seed__{seed}__{stamp}.json"


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _plain(value: Any) -> Any:
    """A JSON-ready scalar (numpy scalars become Python ones, ``pd.NA`` None)."""
    if value is pd.NA:
        return None
    return value.item() if isinstance(value, np.generic) else value


def _native(value: Any) -> Any:
    """Like :func:`_plain`, and the JSON text the runs table holds for a list becomes the list again."""
    value = _plain(value)
    if isinstance(value, str) and value.startswith("["):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _integer_or_none(value: Any) -> int | None:
    return None if _missing(value) else int(value)


# ----------------------------------------------------------------------------- import


@dataclass
class DeepOBSRun:
    """One result file, read: identity, state, spec and the measured points (column → values)."""

    path: Path
    run_id: str
    setting_id: str
    state: str
    spec: dict[str, Any]
    curves: dict[str, np.ndarray]

    @property
    def points(self) -> int:
        return len(self.curves["train_loss"])


def import_deepobs(folder: Path) -> SweepData:
    """Read every ``random_seed__*.json`` under ``folder`` into the tables :func:`collect_sweep` makes.

    A file that is not a DeepOBS result is skipped with a warning; two results of the same run
    (setting and seed) keep the later file.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder; pass a DeepOBS output_dir.")
    paths = sorted(folder.rglob(RESULT_GLOB))
    if not paths:
        raise ValueError(f"No DeepOBS result JSON ({RESULT_GLOB}) was found under {folder}.")
    fingerprint = Fingerprint()
    found: dict[str, DeepOBSRun] = {}
    problems: list[str] = []
    for path in paths:
        fingerprint.add(path.stat())
        try:
            run = read_deepobs_result(path)
        except ValueError as error:
            log.warning("skipping a DeepOBS file: %s", error)
            problems.append(str(error))
            continue
        if run.run_id in found:
            log.warning("%s and %s hold the same run (%s); keeping the later", found[run.run_id].path, path,
                        run.run_id)
        found[run.run_id] = run
    if not found:
        raise ValueError(f"None of the {len(paths)} DeepOBS result files under {folder} could be read: {problems[0]}")
    results = list(found.values())
    entries = [{"run_id": r.run_id, "setting_id": r.setting_id, "spec": r.spec} for r in results]
    runs = runs_table(entries, [r.state for r in results], [""] * len(results))
    runs["points"] = np.array([r.points for r in results], dtype=np.int64)
    metrics = _metrics_table(results)
    name = folder.resolve().name
    info = {"sweep_id": f"deepobs-{name}", "name": name, "source": "deepobs", "path": str(folder),
            "runs": len(results), "skipped": len(problems)}
    log.info("imported %d DeepOBS runs (%d evaluation points) from %s", len(runs), len(metrics), folder)
    return SweepData(info, runs, metrics, fingerprint.as_dict())


def read_deepobs_result(path: Path) -> DeepOBSRun:
    """Read one DeepOBS result file (1.1 or 1.2 format, or an optbench export); ValueError names what is wrong."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise ValueError(f"{path} is not readable JSON ({error}).") from error
    if not isinstance(data, dict):
        raise ValueError(f"{path} holds a JSON {type(data).__name__}, not a DeepOBS result object.")
    missing = [k for k in REQUIRED if k not in data]
    if "optimizer_name" not in data and "optimizer" not in data:
        missing.append("optimizer_name")
    if missing:
        raise ValueError(f"{path} lacks the DeepOBS key(s) {', '.join(missing)}.")
    num_epochs = _count(data, "num_epochs", path)
    curves = {column: _numbers(data[key], key, path) for key, column in CURVES if key in data}
    lengths = sorted({len(v) for v in curves.values()})
    if lengths != [num_epochs + 1]:
        raise ValueError(f"{path} has per-epoch lists of {lengths} entries, but num_epochs {num_epochs} needs "
                         f"{num_epochs + 1}.")
    own = data.get(OPTBENCH_KEY)
    if own is not None:
        return _own_run(path, data, own, curves)
    spec = _spec(data, path)
    points, state = _measured(curves, aborts_padded="optimizer_name" in data)
    curves = {c: v[:points] for c, v in curves.items()}
    curves.update(_derived(data, spec, points))
    try:
        return DeepOBSRun(path, run_spec.run_id(spec), run_spec.setting_id(spec), state, spec, curves)
    except ValueError:  # canonical JSON refuses NaN and infinities
        raise ValueError(f"{path} has a hyperparameter that is not a finite number.") from None


def _count(data: Mapping[str, Any], key: str, path: Path) -> int:
    value = data[key]
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{path}: {key} is {value!r}, not a non-negative integer.")
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _numbers(values: Any, key: str, path: Path) -> np.ndarray:
    if not isinstance(values, list) or not all(_is_number(v) for v in values):
        raise ValueError(f"{path}: {key} is not a list of numbers.")
    return np.asarray(values, dtype=np.float64)


def _spec(data: Mapping[str, Any], path: Path) -> dict[str, Any]:
    """An optbench-shaped spec from DeepOBS's metadata (``learning_rate`` becomes ``lr``)."""
    optimizer = data.get("optimizer_name", data.get("optimizer"))
    hyperparams = data.get("optimizer_hyperparams", data.get("hyperparams")) or {}
    training = data.get("training_params") or {}
    if not isinstance(optimizer, str) or not isinstance(data["testproblem"], str):
        raise ValueError(f"{path}: testproblem and the optimizer name must be strings.")
    if not isinstance(hyperparams, dict) or not isinstance(training, dict):
        raise ValueError(f"{path}: the optimizer hyperparameters and training_params must be objects.")
    hyperparams = {("lr" if k == "learning_rate" else k): v for k, v in hyperparams.items()}
    if "lr" not in hyperparams and data.get("learning_rate") is not None:
        hyperparams["lr"] = data["learning_rate"]
    milestones = data.get("lr_sched_epochs", training.get("lr_sched_epochs"))
    factors = data.get("lr_sched_factors", training.get("lr_sched_factors"))
    if milestones is None:
        schedule: dict[str, Any] = {"name": "constant"}
    elif not (isinstance(milestones, list) and isinstance(factors, list) and len(milestones) == len(factors)):
        raise ValueError(f"{path}: lr_sched_epochs and lr_sched_factors are not two lists of one length.")
    else:
        schedule = {"name": "lr_sched", "lr_sched_epochs": milestones, "lr_sched_factors": factors}
    problem = {"name": data["testproblem"]}
    if data.get("weight_decay") is not None:
        problem["weight_decay"] = data["weight_decay"]
    train = {"epochs": data["num_epochs"], "batch_size": data["batch_size"]}
    train.update({k: v for k, v in training.items() if v is not None and not k.startswith("lr_sched_")})
    return {"problem": problem, "optimizer": {"name": optbench_optimizer_name(optimizer), **hyperparams},
            "schedule": schedule, "train": train, "seed": _count(data, "random_seed", path)}


def _measured(curves: Mapping[str, np.ndarray], aborts_padded: bool) -> tuple[int, str]:
    """How many points were measured, and the state.

    A run is diverged from its first non-finite loss on (1.1 runs keep logging NaN; the rest is
    dropped, as optbench stops there). A 1.2 run stopped by a non-finite minibatch loss has no NaN:
    its tail repeats the epoch-0 values exactly in every list, which real training never does.
    """
    losses = np.vstack([curves[c] for c in LOSS_COLUMNS if c in curves])
    bad = ~np.isfinite(losses).all(axis=0)
    if bad.any():
        return int(np.argmax(bad)) + 1, "diverged"
    length = losses.shape[1]
    if aborts_padded:
        stacked = np.vstack(list(curves.values()))
        start = length
        while start > 1 and np.array_equal(stacked[:, start - 1], stacked[:, 0]):
            start -= 1
        if start < length:
            return start, "diverged"
    return length, "completed"


def _derived(data: Mapping[str, Any], spec: Mapping[str, Any], points: int) -> dict[str, np.ndarray]:
    """``lr`` (from the learning rate and schedule) and ``step`` (1.1 runs logging every step)."""
    derived: dict[str, np.ndarray] = {}
    lr = spec["optimizer"].get("lr")
    if _is_number(lr):
        # As optbench logs it: evaluation e shows the rate epoch e-1 trained with (evaluation 0 the
        # one epoch 0 starts with); epoch n trains with the factor of the last milestone <= n.
        factors = np.ones(points)
        schedule = spec["schedule"]
        for milestone, factor in zip(schedule.get("lr_sched_epochs", []), schedule.get("lr_sched_factors", []),
                                     strict=True):
            factors[np.maximum(np.arange(points) - 1, 0) >= milestone] = factor
        derived["lr"] = float(lr) * factors
    logged = data.get("minibatch_train_losses")
    epochs = data["num_epochs"]
    if data.get("train_log_interval") == 1 and isinstance(logged, list) and epochs and len(logged) % epochs == 0:
        derived["step"] = np.arange(points, dtype=np.float64) * (len(logged) // epochs)
    return derived


def _own_run(path: Path, data: Mapping[str, Any], own: Any, curves: dict[str, np.ndarray]) -> DeepOBSRun:
    """A file optbench exported: identity, state, spec and extra metrics from the ``optbench`` key."""
    try:
        run_id, setting_id, state = str(own["run_id"]), str(own["setting_id"]), str(own["state"])
        points, columns, extra = int(own["points"]), dict(own["columns"]), dict(own["metrics"])
        optimizer = str(own["optimizer"])
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"{path}: the '{OPTBENCH_KEY}' entry is incomplete ({error!r}).") from error
    if not 1 <= points <= data["num_epochs"] + 1:
        raise ValueError(f"{path}: '{OPTBENCH_KEY}' claims {points} points of {data['num_epochs'] + 1}.")
    replaced = own.get("replaced") or {}
    if not isinstance(replaced, dict):
        raise ValueError(f"{path}: {OPTBENCH_KEY}.replaced is not an object.")
    tails = {c: _numbers(v, f"{OPTBENCH_KEY}.replaced.{c}", path) for c, v in replaced.items()}
    if len({len(v) for v in tails.values()}) > 1 or any(len(v) > points for v in tails.values()):
        raise ValueError(f"{path}: {OPTBENCH_KEY}.replaced holds lists of {sorted({len(v) for v in tails.values()})} "
                         f"entries; it needs one length of at most {points}.")
    kept = points - (len(next(iter(tails.values()))) if tails else 0)  # the points before DeepOBS's padding
    curves = {c: np.concatenate([v[:kept], tails[c]]) if c in tails else v[:points] for c, v in curves.items()}
    for column, values in extra.items():
        curves[column] = _numbers(values, f"{OPTBENCH_KEY}.metrics.{column}", path)
        if len(curves[column]) != points:
            raise ValueError(f"{path}: {OPTBENCH_KEY}.metrics.{column} has {len(values)} entries, not {points}.")
    spec = run_spec.unflatten(columns)
    spec.setdefault("problem", {})["name"] = data["testproblem"]
    spec.setdefault("optimizer", {})["name"] = optimizer
    spec["seed"] = _count(data, "random_seed", path)
    return DeepOBSRun(path, run_id, setting_id, state, spec, curves)


def _metrics_table(results: Sequence[DeepOBSRun]) -> pd.DataFrame:
    """The tidy metrics table of :mod:`analysis.collect` from the runs' measured points (epochs 0, 1, ...)."""
    names = list(dict.fromkeys(c for r in results for c in r.curves))
    columns = {"epoch": np.concatenate([np.arange(r.points, dtype=np.float64) for r in results])}
    for name in names:
        columns[name] = np.concatenate([r.curves.get(name, np.full(r.points, np.nan)) for r in results])
    codes = np.repeat(np.arange(len(results), dtype=np.int32), [r.points for r in results])
    return tidy_metrics(pa.table(columns), codes, [r.run_id for r in results], [r.setting_id for r in results])
