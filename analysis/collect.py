"""Read a sweep's run folders into two tables: one row per run, one row per evaluation point.

The metrics of every run are parsed in one pass: each ``metrics.jsonl`` is cut
at its last newline (a killed job may leave a torn last line), the files are
joined and parsed once by :func:`pyarrow.json.read_json` (which accepts the
``NaN``/``Infinity`` tokens Python's :mod:`json` writes), and the run of each
row is attached with :func:`numpy.repeat` over the per-file line counts. Input
the fast path cannot take (a blank or corrupt line, a field that changes type)
falls back to a per-file parse that skips bad lines with a warning.

Runs are never dropped: pending runs (no folder yet), running, failed and
diverged runs all have a row in the runs table with their state. Runs with
curvature measurements also bring their ``measurements.jsonl`` (see
:mod:`analysis.measurements`).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.json as pa_json

from analysis.measurements import Measurements, combine_measurements, read_measurements
from jobs.run_folder import (
    HALVING_FILE,
    MEASUREMENTS,
    METRIC_KEYS,
    METRICS,
    RUNS_FILE,
    STATUS,
    SWEEP_FILE,
    read_jsonl,
    read_status,
    read_sweep_info,
    read_sweep_runs,
)
from jobs.spec import flatten

log = logging.getLogger(__name__)

#: Columns of the metrics table that identify an evaluation point rather than measure it.
KEY_COLUMNS = ("run_id", "setting_id", "epoch")
#: Top-level spec keys whose values are dicts of parameters (flattened to ``section.key``).
SPEC_SECTIONS = ("optimizer", "schedule", "problem", "train")
#: Top-level spec keys that are single values and part of the setting.
SPEC_SCALARS = ("device", "precision")
#: Run-table columns that are not hyperparameters.
#: ``trial`` numbers a search's drawn point (the same for all its seeds), ``study`` an AlgoPerf study;
#: both are missing (``<NA>``) for runs that are neither.
RUN_COLUMNS = ("run_id", "setting_id", "seed", "state", "problem", "optimizer", "points", "error", "trial", "study")
#: Columns added to the runs table after collection (which sweep listed a run; its setting's label).
ANNOTATION_COLUMNS = ("sweep_id", "label")


@dataclass
class SweepData:
    """Everything read from disk for one sweep."""

    info: dict[str, Any]
    runs: pd.DataFrame
    metrics: pd.DataFrame
    #: Latest modification time and count of the files read (see :class:`Fingerprint`).
    fingerprint: dict[str, int]
    #: The curvature measurements of the runs that have some.
    measurements: Measurements = field(default_factory=Measurements)


class Fingerprint:
    """Latest modification time (ns) and count of the input files seen; equal inputs, equal fingerprint."""

    def __init__(self) -> None:
        self.latest_mtime_ns = 0
        self.files = 0

    def add(self, stat: os.stat_result) -> None:
        self.latest_mtime_ns = max(self.latest_mtime_ns, stat.st_mtime_ns)
        self.files += 1

    def as_dict(self) -> dict[str, int]:
        return {"latest_mtime_ns": self.latest_mtime_ns, "files": self.files}


def input_fingerprint(sweep_dir: Path, runs_dir: Path) -> dict[str, int]:
    """The fingerprint :func:`collect_sweep` would record, from ``stat`` calls only."""
    sweep_dir, runs_dir = Path(sweep_dir), Path(runs_dir)
    fingerprint = Fingerprint()
    paths = [sweep_dir / SWEEP_FILE, sweep_dir / RUNS_FILE, sweep_dir / HALVING_FILE]
    try:
        run_ids = [e["run_id"] for e in read_run_entries(sweep_dir)]
    except FileNotFoundError:
        run_ids = []
    for run_id in run_ids:
        paths += [runs_dir / run_id / STATUS, runs_dir / run_id / METRICS, runs_dir / run_id / MEASUREMENTS]
    for path in paths:
        try:
            fingerprint.add(os.stat(path))
        except FileNotFoundError:
            continue
    return fingerprint.as_dict()


def merge_fingerprints(fingerprints: Sequence[Mapping[str, int]]) -> dict[str, int]:
    """The fingerprint of several inputs read together."""
    return {"latest_mtime_ns": max(f["latest_mtime_ns"] for f in fingerprints),
            "files": sum(f["files"] for f in fingerprints)}


def collect_sweep(sweep_dir: Path, runs_dir: Path) -> SweepData:
    """Read ``sweep.json``, ``runs.jsonl`` and every run folder of the sweep."""
    sweep_dir, runs_dir = Path(sweep_dir), Path(runs_dir)
    fingerprint = Fingerprint()
    for name in (SWEEP_FILE, RUNS_FILE, HALVING_FILE):
        try:
            fingerprint.add(os.stat(sweep_dir / name))
        except FileNotFoundError:
            pass
    info = read_sweep_info(sweep_dir)
    decisions = [e for e in read_jsonl(sweep_dir / HALVING_FILE) if e.get("event") == "decided"]
    if decisions:
        info["halving"] = decisions
    entries = read_run_entries(sweep_dir)
    run_ids = [e["run_id"] for e in entries]
    states, errors = read_states(runs_dir, run_ids, fingerprint)
    setting_ids = [e["setting_id"] for e in entries]
    metrics = read_metrics(runs_dir, run_ids, setting_ids, fingerprint)
    measurements = read_measurements(runs_dir, run_ids, setting_ids, fingerprint)
    runs = runs_table(entries, states, errors)
    runs["points"] = count_points(runs, metrics)
    log.info("collected %d runs (%d evaluation points) of sweep %s", len(runs), len(metrics), sweep_dir.name)
    return SweepData(info, runs, metrics, fingerprint.as_dict(), measurements)


def combine(parts: Sequence[SweepData]) -> SweepData:
    """Several sweeps (or imported baselines) as one: runs in order, a run listed twice kept once.

    Run folders are shared between sweeps (a run is keyed by its content), so the
    same run in two sweeps is the same result and is counted once. The runs table
    gets a ``sweep_id`` column saying which sweep listed each run first.
    """
    if not parts:
        raise ValueError("combine needs at least one sweep.")
    if len(parts) == 1:
        return parts[0]
    runs_parts, metric_parts, measurement_parts, seen = [], [], [], set()
    for part in parts:
        keep = ~part.runs["run_id"].isin(seen).to_numpy()
        runs = part.runs.loc[keep]
        seen.update(runs["run_id"])
        measurement_parts.append(part.measurements.of_runs(list(runs["run_id"])))
        if "sweep_id" not in runs.columns:
            runs = runs.assign(sweep_id=part.info.get("sweep_id", ""))
        runs_parts.append(runs)
        metrics = part.metrics
        if len(metrics):
            rows = metrics["run_id"].isin(set(runs["run_id"])).to_numpy()
            metric_parts.append(metrics.loc[rows].astype({"run_id": object, "setting_id": object}))
    runs = pd.concat(runs_parts, ignore_index=True)
    spec_columns = sorted((c for c in runs.columns if c not in RUN_COLUMNS and c != "sweep_id"),
                          key=lambda c: (_section_rank(c), c))
    runs = runs[[*RUN_COLUMNS, "sweep_id", *spec_columns]]
    metrics = _recategorised(pd.concat(metric_parts, ignore_index=True), runs) if metric_parts else parts[0].metrics
    fingerprint = merge_fingerprints([p.fingerprint for p in parts])
    info = {
        "sweep_id": "+".join(str(p.info.get("sweep_id", "")) for p in parts),
        "name": " + ".join(str(p.info.get("name") or p.info.get("sweep_id", "")) for p in parts),
        "overrides": [o for p in parts for o in p.info.get("overrides") or []],
        "created": min((p.info["created"] for p in parts if "created" in p.info), default=None),
        "sweeps": [p.info for p in parts],
    }
    return SweepData(info, runs, metrics, fingerprint, combine_measurements(measurement_parts))


def _recategorised(metrics: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """Concatenated metrics with ``run_id``/``setting_id`` categorical again, over the combined runs."""
    settings = pd.unique(runs["setting_id"].astype(object))
    front = pd.DataFrame({
        "run_id": pd.Categorical(metrics["run_id"], categories=pd.Index(runs["run_id"].astype(object))),
        "setting_id": pd.Categorical(metrics["setting_id"], categories=pd.Index(settings)),
        "epoch": metrics["epoch"].to_numpy(),
    })
    values = metrics.drop(columns=list(KEY_COLUMNS))
    ordered = sorted(values.columns, key=metric_rank)
    return pd.concat([front, values[ordered].astype(np.float64)], axis=1)


def read_run_entries(sweep_dir: Path) -> list[dict[str, Any]]:
    """The sweep's runs (``run_id``, ``setting_id``, ``spec``) in file order, without duplicates."""
    path = Path(sweep_dir) / RUNS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; pass a sweep folder written by 'optbench launch'.")
    return read_sweep_runs(sweep_dir)


def read_states(
    runs_dir: Path, run_ids: Sequence[str], fingerprint: Fingerprint | None = None
) -> tuple[list[str], list[str]]:
    """Each run's state (``pending`` without a status file) and the last line of its error, if any."""
    states, errors = [], []
    for run_id in run_ids:
        path = Path(runs_dir) / run_id / STATUS
        if fingerprint is not None:
            try:
                fingerprint.add(os.stat(path))
            except FileNotFoundError:
                pass
        status = read_status(path, run_id)
        if status["state"] == "unknown":
            log.warning("%s; counting the run as 'unknown'", status["error"])
        states.append(str(status.get("state", "unknown")))
        error_text = status.get("error") or ""
        lines = [line for line in str(error_text).splitlines() if line.strip()]
        errors.append(lines[-1].strip() if lines else "")
    return states, errors


# ----------------------------------------------------------------------------- runs table


def flatten_spec(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The spec's dotted keys (:func:`jobs.spec.flatten`) as table cells: lists become JSON text."""
    return {key: json.dumps(list(value)) if isinstance(value, list | tuple) else value
            for key, value in flatten(spec).items()}


def runs_table(entries: Sequence[Mapping[str, Any]], states: Sequence[str], errors: Sequence[str]) -> pd.DataFrame:
    """One row per run: identity, state, problem, optimizer and the flattened hyperparameters."""
    records = []
    for entry, state, error in zip(entries, states, errors, strict=True):
        flat = flatten_spec(entry["spec"])
        record = {
            "run_id": entry["run_id"],
            "setting_id": entry["setting_id"],
            "seed": flat.pop("seed", None),
            "state": state,
            "problem": flat.pop("problem.name", None),
            "optimizer": flat.pop("optimizer.name", None),
            "points": 0,
            "error": error,
            "trial": entry.get("trial"),
            "study": entry.get("study"),
        }
        record.update(flat)
        records.append(record)
    columns = list(RUN_COLUMNS)
    table = pd.DataFrame.from_records(records) if records else pd.DataFrame(columns=columns)
    table = table.astype({"trial": "Int64", "study": "Int64"})
    spec_columns = sorted(
        (c for c in table.columns if c not in RUN_COLUMNS),
        key=lambda c: (_section_rank(c), c),
    )
    return table[columns + spec_columns]


def _section_rank(column: str) -> int:
    section = column.split(".", 1)[0]
    order = (*SPEC_SECTIONS, *SPEC_SCALARS)
    return order.index(section) if section in order else len(order)


def count_points(runs: pd.DataFrame, metrics: pd.DataFrame) -> np.ndarray:
    """Each run's number of evaluation points in ``metrics`` (the runs table's ``points``)."""
    points = metrics["run_id"].value_counts(sort=False) if len(metrics) else pd.Series(dtype="int64")
    return runs["run_id"].map(points).fillna(0).astype("int64").to_numpy()


def hyperparameter_columns(runs: pd.DataFrame) -> list[str]:
    """The runs table's columns that come from the spec (everything that defines a setting but the names)."""
    return [c for c in runs.columns if c not in RUN_COLUMNS and c not in ANNOTATION_COLUMNS]


# ----------------------------------------------------------------------------- metrics table


def read_metrics(
    runs_dir: Path, run_ids: Sequence[str], setting_ids: Sequence[str], fingerprint: Fingerprint | None = None
) -> pd.DataFrame:
    """The tidy metrics table: ``run_id``, ``setting_id``, ``epoch``, then one float column per metric.

    Rows are ordered by run (in ``run_ids`` order) and, within a run, by epoch. A run
    that logged an evaluation point twice (resumed from a checkpoint) keeps the last one.
    """
    data, ends, counts = _read_all(Path(runs_dir), run_ids, fingerprint or Fingerprint())
    table = _parse_joined(data, int(counts.sum()))
    if table is None:
        starts = np.r_[0, ends[:-1]]
        chunks = [bytes(data[a:b]) for a, b in zip(starts, ends, strict=True)]
        table, counts = _parse_each(chunks, run_ids)
    run_codes = np.repeat(np.arange(len(run_ids), dtype=np.int32), counts)
    return tidy_metrics(table, run_codes, run_ids, setting_ids)


def _read_all(
    runs_dir: Path, run_ids: Sequence[str], fingerprint: Fingerprint
) -> tuple[memoryview, np.ndarray, np.ndarray]:
    """All metrics files, each cut after its last newline, back to back in one buffer.

    Returns the buffer, the end offset of each run's bytes and each run's line count.
    Reading into one preallocated buffer avoids a copy per file and a join.
    """
    buffer = bytearray(0)
    position = 0
    ends = np.zeros(len(run_ids), dtype=np.int64)
    counts = np.zeros(len(run_ids), dtype=np.int64)
    for i, run_id in enumerate(run_ids):
        try:
            handle = open(runs_dir / run_id / METRICS, "rb", buffering=0)
        except FileNotFoundError:
            ends[i] = position
            continue
        with handle:
            stat = os.fstat(handle.fileno())
            fingerprint.add(stat)
            size = stat.st_size
            if position + size > len(buffer):
                buffer = _grown(buffer, position, position + size + size * (len(run_ids) - i))
            with memoryview(buffer) as view:
                read = handle.readinto(view[position : position + size]) or 0
        end = buffer.rfind(b"\n", position, position + read)
        if end + 1 < position + read:
            log.debug("run %s: ignoring a torn last metrics line", run_id)
        if end >= position:
            counts[i] = buffer.count(b"\n", position, end + 1)
            position = end + 1
        ends[i] = position
    return memoryview(buffer)[:position], ends, counts


def _grown(buffer: bytearray, used: int, wanted: int) -> bytearray:
    """A larger buffer holding ``buffer[:used]``; new bytes come from calloc, so untouched pages cost nothing."""
    grown = bytearray(max(wanted, 2 * len(buffer)))
    grown[:used] = memoryview(buffer)[:used]
    return grown


def _parse_joined(data: memoryview, lines: int) -> pa.Table | None:
    """Parse all runs' lines at once; ``None`` when the input needs the careful per-file parse."""
    if lines == 0:
        return pa.table({})
    try:
        table = pa_json.read_json(
            pa.BufferReader(pa.py_buffer(data)),
            read_options=pa_json.ReadOptions(block_size=1 << 24, use_threads=True),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
        log.info("fast metrics parse failed (%s); parsing run by run", str(error).splitlines()[0])
        return None
    if table.num_rows != lines:
        log.info("metrics files hold blank lines; parsing run by run")
        return None
    return _numeric(table)


def _parse_each(chunks: list[bytes], run_ids: Sequence[str]) -> tuple[pa.Table, np.ndarray]:
    """Parse file by file, line by line where a file does not parse whole; bad lines are skipped."""
    tables, counts = [], np.zeros(len(chunks), dtype=np.int64)
    for i, (chunk, run_id) in enumerate(zip(chunks, run_ids, strict=True)):
        if not chunk.strip():
            continue
        try:
            table = _numeric(pa_json.read_json(pa.BufferReader(chunk)))
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            records = []
            for number, line in enumerate(chunk.splitlines(), start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except ValueError:
                    log.warning("run %s: skipping unreadable metrics line %d", run_id, number)
                    continue
                if isinstance(record, dict):
                    records.append({k: v for k, v in record.items() if _is_number(v)})
            table = _numeric(pa.Table.from_pylist(records)) if records else pa.table({})
        counts[i] = table.num_rows
        if table.num_rows:
            tables.append(table)
    if not tables:
        return pa.table({}), counts
    return pa.concat_tables(tables, promote_options="default"), counts


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _numeric(table: pa.Table) -> pa.Table:
    """Keep the integer and floating-point columns, as float64."""
    columns, names = [], []
    for name, column in zip(table.column_names, table.columns, strict=True):
        kind = column.type
        if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_null(kind):
            columns.append(column.cast(pa.float64()))
            names.append(name)
        else:
            log.debug("ignoring non-numeric metrics field %r (%s)", name, kind)
    # A table without numeric columns has no rows; its lines then have no epoch and are ignored.
    return pa.table(dict(zip(names, columns, strict=True)))


def tidy_metrics(
    table: pa.Table, run_codes: np.ndarray, run_ids: Sequence[str], setting_ids: Sequence[str]
) -> pd.DataFrame:
    """The metrics table from parsed rows (``run_codes[i]``: index into ``run_ids`` of row ``i``)."""
    n = len(run_codes)
    data: dict[str, Any] = {}
    for name in table.column_names:
        data[name] = table.column(name).to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
    if "epoch" not in data:
        data["epoch"] = np.full(n, np.nan)
    keep = np.isfinite(data["epoch"])
    if not keep.all():
        log.warning("ignoring %d metrics lines without an epoch", int((~keep).sum()))
        data = {k: v[keep] for k, v in data.items()}
        run_codes = run_codes[keep]
    epoch = data.pop("epoch")
    order = _order_within_runs(run_codes, epoch)
    if order is not None:
        run_codes, epoch = run_codes[order], epoch[order]
        data = {k: v[order] for k, v in data.items()}
    setting_categories = pd.unique(pd.Series(list(setting_ids), dtype=object)) if len(setting_ids) else []
    setting_lookup = pd.Index(setting_categories)
    run_setting_codes = setting_lookup.get_indexer(list(setting_ids)).astype(np.int32)
    frame: dict[str, Any] = {
        "run_id": pd.Categorical.from_codes(run_codes, categories=pd.Index(list(run_ids), dtype=object)),
        "setting_id": pd.Categorical.from_codes(run_setting_codes[run_codes], categories=setting_lookup),
        "epoch": epoch.astype(np.int64) if np.all(epoch == np.round(epoch)) else epoch,
    }
    for name in sorted(data, key=metric_rank):
        frame[name] = data[name]
    return pd.DataFrame(frame)


def _order_within_runs(run_codes: np.ndarray, epoch: np.ndarray) -> np.ndarray | None:
    """Row order that sorts each run's points by epoch and drops repeated epochs (keeping the last).

    ``None`` when the rows already are in that order (the common case, checked in one pass).
    """
    if len(run_codes) < 2:
        return None
    same_run = run_codes[1:] == run_codes[:-1]
    if not np.any(same_run & (epoch[1:] <= epoch[:-1])):
        return None
    position = np.arange(len(run_codes))
    order = np.lexsort((position, epoch, run_codes))
    codes_sorted, epoch_sorted = run_codes[order], epoch[order]
    last = np.ones(len(order), dtype=bool)
    last[:-1] = (codes_sorted[1:] != codes_sorted[:-1]) | (epoch_sorted[1:] != epoch_sorted[:-1])
    dropped = int((~last).sum())
    if dropped:
        log.info("dropping %d repeated evaluation points (resumed runs); keeping the last of each", dropped)
    return order[last]


def metric_rank(column: str) -> tuple[int, str]:
    """Sort key of metric columns: ``METRIC_KEYS`` first, the others alphabetically."""
    return (METRIC_KEYS.index(column) if column in METRIC_KEYS else len(METRIC_KEYS), column)


def metric_columns(metrics: pd.DataFrame) -> list[str]:
    """The metrics table's value columns (everything but run, setting and epoch)."""
    return [c for c in metrics.columns if c not in KEY_COLUMNS]
