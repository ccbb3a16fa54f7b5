"""What a person watching a sweep sees: per-run progress, ETA, failures with their log, the W&B links.

One model for every monitor (``optbench status``, ``optbench logs``, the
dashboard): :func:`sweep_progress` merges the run folders with the
scheduler's view (:func:`orchestrator.reconcile.reconcile`: states, and why
queued runs wait, see :mod:`orchestrator.waiting`) and the heartbeats the
jobs write into ``status.json`` (see :class:`jobs.sinks.StatusSink`).
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from analysis.collect import runs_table
from analysis.labels import setting_labels
from jobs.run_folder import FINAL_STATES
from jobs.sinks import HEARTBEAT_SECONDS
from orchestrator.ledger import JOBS_FILE, Assignment, Ledger
from orchestrator.reconcile import RunView, reconcile
from orchestrator.slurmctl import SlurmUnavailable
from orchestrator.store import ResultsStore
from orchestrator.waiting import Note, Waiting, explain, notes

#: Most urgent first: the order of counts and of run lists.
STATE_ORDER = ("running", "failed", "timeout", "cancelled", "submitted", "pending", "diverged", "stopped", "completed")
#: A running run whose last heartbeat is older than this many heartbeat intervals (and a minute) may be stuck.
STALL_INTERVALS = 10
STALL_MIN_SECONDS = 60.0


@dataclass
class RunProgress:
    """One run as monitors show it; numbers are None where the run has not said them yet."""

    run_id: str
    state: str
    label: str  # the setting, without the problem
    seed: int | None
    fraction: float  # share of its steps done; 1 for a run that has ended
    epoch: int | None = None
    epochs: int | None = None
    step: int | None = None
    steps: int | None = None
    steps_per_second: float | None = None
    eta_seconds: float | None = None
    loss: float | None = None  # latest minibatch loss (heartbeat)
    last: dict[str, float] = field(default_factory=dict)  # headline metrics of the latest evaluation
    node: str = ""
    job_id: str | None = None
    problem: str = ""
    started: float | None = None  # epoch seconds, from the run's status
    ended: float | None = None
    elapsed_seconds: float | None = None
    heartbeat_age: float | None = None
    stalled: bool = False
    error: str | None = None
    wandb: dict[str, Any] | None = None  # {mode, project, entity, url, dir} once the job opened its W&B run
    log: str | None = None  # the scheduler's log file of its latest job
    waiting: Waiting | None = None  # a queued Slurm run: why its job waits

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES


@dataclass
class SweepProgress:
    sweep_id: str
    name: str
    created: float | None
    launcher: str
    runs: list[RunProgress]
    counts: dict[str, int]
    fraction: float
    eta_seconds: float | None
    running_seconds: float | None  # wall time with at least one run running (:func:`running_time`)
    warning: str | None = None  # why the view may be incomplete (Slurm did not answer)
    notes: list[Note] = field(default_factory=list)  # queued runs someone must act on: held, never start

    @property
    def active(self) -> bool:
        """Runs are queued or running: the sweep may still change."""
        return any(r.state in ("pending", "submitted", "running") for r in self.runs)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON (no NaN): what the dashboard's API serves."""
        return _finite(asdict(self))


def sweep_progress(store: ResultsStore, sweep_dir: Path, now: float | None = None) -> SweepProgress:
    """Where every run of a sweep stands, with progress, ETA and links; one ``sacct`` call at most."""
    now = time.time() if now is None else now
    info = store.sweep_info(sweep_dir)
    entries = store.sweep_runs(sweep_dir)
    run_ids = [e["run_id"] for e in entries]
    warning = None
    try:
        views = reconcile(store, sweep_dir, run_ids)
    except SlurmUnavailable as error:
        views = reconcile(store, sweep_dir, run_ids, ask_scheduler=False)
        warning = ("Slurm does not answer now, so this shows the run folders' own states: queued runs show as "
                   "submitted, and jobs that died meanwhile are noticed once it answers again "
                   f"({str(error).rstrip('.')}).")
    labels = _labels(entries)
    heartbeat = float((info.get("logger") or {}).get("heartbeat_seconds") or HEARTBEAT_SECONDS)
    runs = [_run_progress(views[e["run_id"]], labels.get(e["setting_id"], ""), e["spec"].get("seed"), now, heartbeat)
            for e in entries]
    for run, entry in zip(runs, entries, strict=True):
        run.problem = str((entry["spec"].get("problem") or {}).get("name", ""))
    runs.sort(key=lambda r: STATE_ORDER.index(r.state) if r.state in STATE_ORDER else 0)
    counts = Counter(r.state for r in runs)
    fraction = sum(r.fraction for r in runs) / len(runs) if runs else 1.0
    running = running_time(runs, now)
    return SweepProgress(
        sweep_id=info.get("sweep_id", sweep_dir.name), name=info.get("name", sweep_dir.name),
        created=info.get("created"),
        launcher=str((info.get("launcher") or {}).get("name", "")), runs=runs,
        counts={s: counts[s] for s in STATE_ORDER if counts[s]} | {s: n for s, n in counts.items()
                                                                  if s not in STATE_ORDER},
        fraction=fraction, eta_seconds=_sweep_eta(runs, fraction, running), running_seconds=running,
        warning=warning, notes=notes(runs, info.get("sweep_id", sweep_dir.name)))


def _labels(entries: Sequence[dict[str, Any]]) -> dict[str, str]:
    """``setting_id`` → label; a label depends on the settings only, so one run of each is enough."""
    first: dict[str, dict[str, Any]] = {}
    for entry in entries:
        first.setdefault(entry["setting_id"], entry)
    settings = list(first.values())
    if not settings:
        return {}
    table = runs_table(settings, ["pending"] * len(settings), [""] * len(settings))
    return setting_labels(table).to_dict()


def _run_progress(view: RunView, label: str, seed: int | None, now: float, heartbeat: float) -> RunProgress:
    status = view.status
    progress = status.get("progress") or {}
    run = RunProgress(
        run_id=view.run_id, state=view.state, label=label, seed=seed, fraction=0.0,
        epoch=progress.get("epoch"), epochs=progress.get("epochs"), step=progress.get("step"),
        steps=progress.get("steps"), steps_per_second=progress.get("steps_per_second"), loss=progress.get("loss"),
        last=dict(status.get("last") or {}), node=view.node or status.get("node", ""), job_id=view.job_id,
        error=status.get("error"), wandb=status.get("wandb"), log=str(view.log) if view.log else None,
        waiting=explain(view.reason) if view.reason and view.state == "submitted" else None)
    run.started, run.ended = status.get("started"), status.get("ended")
    if run.started and (run.final or run.state == "running"):
        run.elapsed_seconds = (run.ended or now) - run.started
    if run.final:
        run.fraction = 1.0
        return run
    if run.steps and run.step is not None:
        run.fraction = min(run.step / run.steps, 1.0)
    elif run.epochs and run.epoch is not None:
        run.fraction = min(run.epoch / run.epochs, 1.0)
    if run.state != "running":
        return run
    beat = progress.get("heartbeat")
    if beat is not None:
        run.heartbeat_age = max(now - beat, 0.0)
        run.stalled = run.heartbeat_age > max(STALL_INTERVALS * heartbeat, STALL_MIN_SECONDS)
        eta = progress.get("eta_seconds")
        if eta is not None:
            run.eta_seconds = max(eta - run.heartbeat_age, 0.0)
    return run


def running_time(runs: Sequence[RunProgress], now: float) -> float | None:
    """Wall-clock seconds during which at least one run was running: the union of the runs' [start, end].

    Not the time since the sweep was created: queue waits, and the days between a launch and a resume,
    are not the sweep's running time. A running run counts up to ``now``; an ended run without an end
    time (its job died) counts until its start only. None before any run started.
    """
    spans = sorted((r.started, r.ended or (now if r.state == "running" else r.started))
                   for r in runs if r.started is not None)
    if not spans:
        return None
    total, (start, end) = 0.0, spans[0]
    for next_start, next_end in spans[1:]:
        if next_start > end:
            total, start = total + end - start, next_start
        end = max(end, next_end)
    return total + end - start


def _sweep_eta(runs: Sequence[RunProgress], fraction: float, elapsed: float | None) -> float | None:
    """Seconds until every run has ended, extrapolated from the sweep's pace so far.

    With nothing queued, the slowest running run decides; otherwise the
    share of work done in the elapsed time is extrapolated linearly.
    """
    if all(r.final for r in runs):
        return 0.0
    waiting = [r for r in runs if r.state in ("pending", "submitted")]
    running = [r.eta_seconds for r in runs if r.state == "running"]
    if not waiting and running and all(eta is not None for eta in running):
        return max(running)
    if not elapsed or fraction <= 0:
        return None
    return elapsed * (1 - fraction) / fraction


def latest_job(store: ResultsStore, run_id: str) -> Assignment | None:
    """The run's newest submission among the sweeps that submitted it (by their ledgers); None if never."""
    found: tuple[float, Assignment] | None = None
    if store.sweeps_dir.is_dir():
        for sweep_dir in store.sweeps_dir.iterdir():
            assignment = Ledger(sweep_dir).read()[0].get(run_id)
            if assignment is None:
                continue
            stamp = (sweep_dir / JOBS_FILE).stat().st_mtime
            if found is None or stamp > found[0]:
                found = (stamp, assignment)
    return None if found is None else found[1]


def tail(path: Path, lines: int) -> list[str]:
    """The last ``lines`` lines of a text file (an empty list when it is missing), read from its end."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, 2)
            size = handle.tell()
            block, data = 1 << 14, b""
            while size > 0 and data.count(b"\n") <= lines:
                step = min(block, size)
                size -= step
                handle.seek(size)
                data = handle.read(step) + data
    except (FileNotFoundError, NotADirectoryError):
        return []
    return data.decode("utf-8", errors="replace").splitlines()[-lines:] if lines > 0 else []


def _finite(value: Any) -> Any:
    """JSON has no NaN or infinity: they become None (a diverged loss shows as missing, its state says why)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
