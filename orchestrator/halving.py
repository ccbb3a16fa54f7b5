"""Successive halving and Hyperband, rung by rung: in the launching command locally, by controller jobs on Slurm.

Everything is decided from what is on disk, so any process can take the
next step: the launching command, ``optbench resume``, or a controller job
(:mod:`orchestrator.controller`) that Slurm starts once a rung's jobs have
ended, so nothing stays running on the login node. :func:`step` reads the
run folders and the sweep's ``halving.jsonl``, decides every rung whose
runs have all ended, and says which runs to start next, each with its
budget (``{"epochs": b, "rung": i}``); :func:`drive` starts them and goes on.

The log is appended, never rewritten: a ``started`` line when a rung's runs
went in, a ``decided`` line with each candidate's value and the promoted
ones. A decision is final, so a late result cannot reorder a rung that has
already promoted. A run that ends its rung failed, timed out or cancelled
scores worst, as a diverged one does; it is not retried by halving.

A candidate's score at a rung is the median over its seeds of the
validation metric the runs measured at the rung's epoch: accuracy
(maximised) where the problem has one, else loss (minimised); a run
without a finite value there (diverged, failed) counts as worst. A rung
promotes the best ``max(1, ⌊n/η⌋)`` candidates with a finite score (ties:
sweep order). Promoted runs continue from the checkpoint they stopped at
(:mod:`jobs.train`); the others stay ``stopped`` at their rung, with their
metrics up to it: a result of its own, never counted as failed or diverged.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from jobs.run_folder import DONE_STATES, HALVING_FILE, METRICS, append_jsonl, read_jsonl
from orchestrator import controller, rungs
from orchestrator.execution import start_sweep
from orchestrator.reconcile import RunView, reconcile
from orchestrator.store import ResultsStore
from orchestrator.sweep import Sweep


@dataclass
class Step:
    """What :func:`step` found: runs to start (run id → budget), Slurm jobs still going, decisions taken."""

    to_start: dict[str, dict[str, int]] = field(default_factory=dict)
    waiting: list[str] = field(default_factory=list)
    decided: list[dict[str, Any]] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return not self.to_start and not self.waiting


def read_log(sweep_dir: Path) -> tuple[dict[tuple[str, int], dict[str, Any]], set[tuple[str, int]]]:
    """The decided rungs (first decision wins) and the started ones, by (bracket key, rung)."""
    decided: dict[tuple[str, int], dict[str, Any]] = {}
    started: set[tuple[str, int]] = set()
    for entry in read_jsonl(sweep_dir / HALVING_FILE):
        where = (entry.get("bracket"), entry.get("rung"))
        if entry.get("event") == "decided":
            decided.setdefault(where, entry)
        elif entry.get("event") == "started":
            started.add(where)
    return decided, started


def step(sweep: Sweep, sweep_dir: Path, store: ResultsStore, ask_scheduler: bool = True) -> Step:
    """Decide every rung whose runs have ended (appended to the log); what to start next and what to wait for."""
    decided, started = read_log(sweep_dir)
    views = reconcile(store, sweep_dir, [r.run_id for r in sweep.runs], ask_scheduler)
    result = Step()
    for bracket in rungs.brackets(sweep.search, sweep.runs):
        alive = list(bracket.candidates)
        for rung, budget in enumerate(bracket.budgets):
            if (bracket.key, rung) in decided:
                alive = list(decided[bracket.key, rung]["promoted"])
                continue
            run_ids = [r for c in alive for r in bracket.runs[c]]
            flying = [views[r] for r in run_ids if views[r].in_flight]
            if flying:
                result.waiting += [v.job_id.split("_")[0] for v in flying if v.job_id]
                break
            behind = [r for r in run_ids if not _reached(views[r], budget)]
            if behind and (bracket.key, rung) not in started:
                result.to_start.update({r: {"epochs": budget, "rung": rung} for r in behind})
                break
            decision = _decide(bracket, rung, budget, alive, store, views, sweep.search["eta"])
            result.decided.append(decision)
            alive = decision["promoted"]
            if not alive:
                break
    append_jsonl(sweep_dir / HALVING_FILE, result.decided)
    result.waiting = sorted(set(result.waiting))
    return result


def _reached(view: RunView, budget: int) -> bool:
    return view.state in DONE_STATES or (view.state == "stopped"
                                         and int(view.status.get("budget_epochs") or 0) >= budget)


def _decide(bracket: rungs.Bracket, rung: int, budget: int, alive: list[str], store: ResultsStore,
            views: Mapping[str, RunView], eta: int) -> dict[str, Any]:
    """The rung's decision: each candidate's ``value`` (median over seeds; None: worst) and the promoted ones."""
    measured = {c: [_measure(store, views[r], budget) for r in bracket.runs[c]] for c in alive}
    metric = next((m for runs in measured.values() for m, _ in runs if m), "valid_loss")
    sign = -1.0 if metric == "valid_accuracy" else 1.0  # lower is better after the sign
    scores = {c: float(np.median([sign * v if m == metric else math.inf for m, v in runs]))
              for c, runs in measured.items()}
    last = rung == len(bracket.budgets) - 1
    ranked = sorted((c for c in alive if math.isfinite(scores[c])), key=lambda c: (scores[c], alive.index(c)))
    promoted = [] if last else ranked[:rungs.promoted(len(alive), eta)]
    return {"event": "decided", "bracket": bracket.key, "title": bracket.describe(), "rung": rung, "budget": budget,
            "metric": metric, "values": {c: (sign * s if math.isfinite(s) else None) for c, s in scores.items()},
            "promoted": promoted, **({"best": ranked[0] if ranked else None} if last else {})}


def _measure(store: ResultsStore, view: RunView, budget: int) -> tuple[str | None, float]:
    """The run's validation metric at ``budget`` epochs (accuracy where it has one, else loss) and its value.

    ``(None, inf)`` for a run without a finite one there: diverged, failed, timed out or cancelled.
    """
    if view.state not in ("completed", "stopped"):
        return None, math.inf
    for record in read_jsonl(store.run_folder(view.run_id).path(METRICS)):
        if record.get("epoch") == budget:
            metric = "valid_accuracy" if isinstance(record.get("valid_accuracy"), int | float) else "valid_loss"
            value = record.get(metric)
            finite = isinstance(value, int | float) and math.isfinite(value)
            return (metric, float(value)) if finite else (None, math.inf)
    return None, math.inf


def _mark_started(sweep_dir: Path, budgets: Mapping[str, Mapping[str, int]], sweep: Sweep) -> None:
    """Log a ``started`` line for each (bracket, rung) that ``budgets`` started."""
    where = set()
    for bracket in rungs.brackets(sweep.search, sweep.runs):
        for runs in bracket.runs.values():
            for run_id in runs:
                if run_id in budgets:
                    where.add((bracket.key, budgets[run_id]["rung"]))
    append_jsonl(sweep_dir / HALVING_FILE, [{"event": "started", "bracket": b, "rung": r} for b, r in sorted(where)])


def drive(sweep: Sweep, store: ResultsStore, console: Console, *, record: bool = False) -> int:
    """Take rungs until halving is over (local) or waits for jobs (Slurm: a controller job takes the next step).

    ``record``: the sweep is new, its first start records it.
    """
    sweep_dir = store.sweep_dir(sweep.sweep_id)
    status = 0
    while True:
        progress = step(sweep, sweep_dir, store)
        _report(sweep, progress.decided, console)
        if progress.to_start:
            started = start_sweep(sweep, store, console, record=record, budgets=progress.to_start)
            record = False
            _mark_started(sweep_dir, progress.to_start, sweep)
            status = max(status, started.status)
            if started.execution.launcher == "local":
                continue
            progress = step(sweep, sweep_dir, store)  # what went in, as the ledger and Slurm now see it
        if progress.waiting:
            job_id = controller.submit(sweep, sweep_dir, progress.waiting, "halving", continue_halving,
                                       str(store.root.resolve()), sweep.sweep_id)
            append_jsonl(sweep_dir / HALVING_FILE, [{"event": "controller", "job_id": job_id,
                                                     "after": progress.waiting}])
            console.print(f"Successive halving: job {job_id} takes the next rung once jobs "
                          f"{', '.join(progress.waiting)} have ended.")
            return status
        console.print(f"Successive halving of {sweep.sweep_id} is over; see optbench status {sweep.sweep_id}.")
        return status


def continue_halving(results: str, sweep_id: str) -> int:
    """The controller job's body (and ``optbench resume``'s for a halving sweep): the next rungs."""
    store = ResultsStore(results)
    return drive(store.load_sweep(store.find_sweep(sweep_id)), store, Console(highlight=False))


def _report(sweep: Sweep, decisions: list[dict[str, Any]], console: Console) -> None:
    for decision in decisions:
        kept = len(decision["promoted"])
        if "best" in decision:
            best = decision["best"]
            what = f"best {sweep.labels.get(best, best)}" if best else "no candidate with a finite score"
        else:
            what = f"{kept} of {len(decision['values'])} promoted"
        console.print(f"Rung {decision['rung']} ({decision['budget']} epochs) of {decision['title']}: {what}.")


def schedule_table(sweep: Sweep) -> Table:
    """The rungs a dry run would take: per bracket, candidates and epochs per rung."""
    table = Table(title="Successive halving", show_edge=False)
    for header in ("candidates of", "rung", "epochs", "candidates"):
        table.add_column(header, justify="left" if header == "candidates of" else "right")
    eta = sweep.search["eta"]
    for bracket in rungs.brackets(sweep.search, sweep.runs):
        alive = len(bracket.candidates)
        for rung, budget in enumerate(bracket.budgets):
            table.add_row(bracket.describe() if rung == 0 else "", str(rung), str(budget), str(alive))
            alive = rungs.promoted(alive, eta)
    return table
