"""Read a sweep back from Weights & Biases: the same runs and metrics tables as :func:`collect_sweep`.

Each optbench run is one W&B run (see ``jobs/sinks.py``): id and name are the
run id, the group is the sweep id, the config is the spec flattened to dotted
keys (``optimizer.lr``), evaluation records are history rows with an ``epoch``
at W&B step ``step``, and the summary's ``state`` says completed or diverged.
Per-step diagnostics (``step/...`` keys) and rows without an epoch are left out.
W&B keeps no error text, so the runs table's ``error`` column is empty.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from analysis.collect import SweepData, count_points, runs_table, tidy_metrics
from jobs.run_folder import DONE_STATES
from jobs.sinks import WandbSink
from jobs.spec import unflatten

log = logging.getLogger(__name__)

#: Seconds W&B's public API waits for each request.
DEFAULT_TIMEOUT = 20
#: W&B run states → run states; the summary's ``state`` wins when the job wrote completed or diverged.
WANDB_STATES = {
    "finished": "completed", "crashed": "failed", "failed": "failed", "running": "running",
    "killed": "cancelled", "pending": "pending", "preempted": "cancelled", "preempting": "running",
}
#: job_type of the summary run :mod:`analysis.wandb_summary` adds to a sweep's group (not a training run).
SUMMARY_JOB_TYPE = "aggregate"
#: Texts W&B's JSON may hold for non-finite numbers.
NON_FINITE = {"NaN": math.nan, "nan": math.nan, "Infinity": math.inf, "inf": math.inf,
              "-Infinity": -math.inf, "-inf": -math.inf}


class WandbError(RuntimeError):
    """W&B cannot be read or written; the message (one sentence) names what to change."""


def collect_wandb(path: str, group: str | None = None, api: Any = None, timeout: float = DEFAULT_TIMEOUT) -> SweepData:
    """The runs of W&B project ``path`` ("entity/project" or "project"), of one ``group`` (sweep id) if given.

    ``api`` is a ``wandb.Api`` (made here, with ``timeout``, when ``None``). Runs
    that are not optbench training runs (no ``problem.name`` in their config, or
    the summary run) are skipped.
    """
    path = check_path(path)
    api = open_api(timeout) if api is None else api
    entries, states, records, groups = [], [], [], set()
    for run in _runs(api, path, group):
        spec = spec_from_config(run.config)
        problem = spec.get("problem")
        if getattr(run, "job_type", None) == SUMMARY_JOB_TYPE or not (isinstance(problem, dict) and "name" in problem):
            log.debug("skipping W&B run %s: not an optbench training run", run.id)
            continue
        entries.append({"run_id": str(run.id or run.name), "setting_id": spec_setting_id(spec), "spec": spec})
        states.append(run_state(run))
        records.append(_read_history(run, path))
        if getattr(run, "group", None):
            groups.add(str(run.group))
    if not entries:
        if group:
            raise WandbError(f"The group {group!r} of W&B project {path} holds no optbench runs; pass the sweep id "
                             "(the runs' W&B group) as shown on wandb.ai.")
        raise WandbError(f"W&B project {path} holds no optbench runs; pass --wandb ENTITY/PROJECT of the project "
                         "the sweep logged to.")
    run_ids = [e["run_id"] for e in entries]
    metrics = metrics_table(records, run_ids, [e["setting_id"] for e in entries])
    runs = runs_table(entries, states, [""] * len(entries))
    runs["points"] = count_points(runs, metrics)
    sweep_id = group or (next(iter(groups)) if len(groups) == 1 else path)
    info = {"sweep_id": sweep_id, "name": sweep_id, "source": "wandb", "wandb_path": path,
            "groups": sorted(groups), "runs": len(runs)}
    log.info("collected %d runs (%d evaluation points) from W&B %s", len(runs), len(metrics), path)
    # W&B runs have no local files to fingerprint.
    return SweepData(info, runs, metrics, {"latest_mtime_ns": 0, "files": 0})


def check_path(path: str) -> str:
    parts = str(path).strip().strip("/").split("/")
    if not 1 <= len(parts) <= 2 or not all(p and not any(c.isspace() for c in p) for p in parts):
        raise WandbError(f"W&B path {path!r} is not ENTITY/PROJECT or PROJECT; pass it as shown on wandb.ai.")
    return "/".join(parts)


def open_api(timeout: float = DEFAULT_TIMEOUT) -> Any:
    """``wandb.Api`` with ``timeout``; a missing key or an unreachable server is a :class:`WandbError`."""
    import wandb

    try:
        return wandb.Api(timeout=timeout)
    except wandb.errors.UsageError:
        raise WandbError("No W&B API key is configured; set WANDB_API_KEY or run 'wandb login'.") from None
    except wandb_errors() as error:
        raise WandbError(f"W&B cannot be reached or refused the API key ({reason(error)}); check the network, "
                         "WANDB_BASE_URL and WANDB_API_KEY.") from None


def _runs(api: Any, path: str, group: str | None) -> Iterator[Any]:
    """The W&B runs of ``path``, with W&B's errors turned into :class:`WandbError`."""
    try:
        yield from api.runs(path, filters={"group": group} if group else None)
    except ValueError as error:
        if "could not find" not in str(error).lower():
            raise
        raise WandbError(f"W&B project {path} not found; pass --wandb ENTITY/PROJECT as shown on wandb.ai.") from None
    except wandb_errors() as error:
        raise WandbError(f"Reading the runs of W&B project {path} failed ({reason(error)}); check the network and "
                         "that your API key can read the project.") from None


def _read_history(run: Any, path: str) -> list[dict[str, float]]:
    try:
        return eval_records(run.scan_history())
    except wandb_errors() as error:
        raise WandbError(f"Reading the history of W&B run {path}/{run.id} failed ({reason(error)}); check the network "
                         "and try again.") from None


def wandb_errors() -> tuple[type[BaseException], ...]:
    """What W&B's public API raises for network, permission and server failures (it varies between versions)."""
    import requests
    import wandb

    errors: list[type[BaseException]] = [wandb.errors.Error, requests.RequestException]
    try:
        from wandb.sdk.lib.service.service_connection import WandbApiFailedError
    except ImportError:
        pass
    else:
        errors.append(WandbApiFailedError)
    return tuple(errors)


def reason(error: BaseException) -> str:
    """The first line of an error's message, without a closing full stop, to quote inside a sentence."""
    lines = str(error).strip().splitlines()
    return lines[0].rstrip(".") if lines else type(error).__name__


def spec_from_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """A W&B config (dotted keys, or nested dicts) → the nested spec.

    W&B's own ``_`` keys and the keys the job adds beside the spec (``sweep_id``, ``run_id``, ...: see
    :class:`jobs.sinks.WandbSink`) are left out.
    """
    return unflatten({key: value for key, value in config.items()
                           if not str(key).startswith("_") and key not in WandbSink.RUN_KEYS})


def spec_setting_id(spec: Mapping[str, Any]) -> str:
    """:func:`jobs.spec.setting_id`, or a hash of the same shape where the spec is not canonical JSON (NaN)."""
    from jobs.spec import ID_LENGTH, setting_id

    try:
        return setting_id(spec)
    except (TypeError, ValueError):
        text = json.dumps({k: v for k, v in spec.items() if k != "seed"}, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:ID_LENGTH]


def run_state(run: Any) -> str:
    """The state the job wrote to the summary when it is completed or diverged, else W&B's state mapped."""
    try:
        written = run.summary.get("state")
    except (AttributeError, KeyError):
        written = None
    if written in DONE_STATES:
        return str(written)
    return WANDB_STATES.get(str(getattr(run, "state", "")).lower(), "unknown")


def eval_records(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, float]]:
    """History rows with an epoch → evaluation records (``_step`` as ``step``; numbers only)."""
    records = []
    for row in rows:
        if _number(row.get("epoch")) is None:
            continue
        record = {}
        for key, value in row.items():
            name = "step" if key == "_step" else key
            if name.startswith(("_", "step/")):
                continue
            number = _number(value)
            if number is not None:
                record[name] = number
        records.append(record)
    return records


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        return NON_FINITE.get(value)
    return None


def metrics_table(
    records: Sequence[Sequence[Mapping[str, float]]], run_ids: Sequence[str], setting_ids: Sequence[str]
) -> pd.DataFrame:
    """The tidy metrics table of :mod:`analysis.collect` from each run's evaluation records."""
    counts = np.array([len(r) for r in records], dtype=np.int64)
    rows = [record for run_records in records for record in run_records]
    names = list(dict.fromkeys(name for record in rows for name in record))
    columns = {name: np.array([record.get(name, math.nan) for record in rows], dtype=np.float64) for name in names}
    run_codes = np.repeat(np.arange(len(run_ids), dtype=np.int32), counts)
    return tidy_metrics(pa.table(columns) if columns else pa.table({}), run_codes, run_ids, setting_ids)
