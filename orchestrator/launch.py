"""``optbench launch`` and ``optbench resume``: expand, validate, record, start what is not done.

The local launcher runs the sweep here and waits, with a progress bar; the
Slurm launcher submits arrays and returns at once.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from jobs.run_folder import DONE_STATES
from orchestrator import logger as wandb_logger
from orchestrator import slurmctl
from orchestrator.launchers import settings_for
from orchestrator.launchers import slurm as slurm_launcher
from orchestrator.launchers.local import LocalSettings, Outcome, execute
from orchestrator.launchers.slurm import SlurmSettings
from orchestrator.store import Plan, ResultsStore
from orchestrator.sweep import Run, Sweep, expand
from orchestrator.tracking import reconcile

STATE_STYLE = {"completed": "green", "diverged": "yellow", "failed": "red", "cancelled": "red", "timeout": "red"}


def launch(overrides: list[str], store: ResultsStore, dry_run: bool, console: Console) -> int:
    """Returns the exit status: 0 when every run ended completed or diverged (or, on Slurm, went in)."""
    sweep = expand(overrides)
    settings = _checked_settings(sweep)  # a bad request is reported before anything is written
    logger = wandb_logger.resolve(sweep.logger, group=sweep.sweep_id)
    if not dry_run:
        store.check_writable()
    plan = store.plan(sweep)
    if dry_run:
        console.print(_plan_table(sweep, plan))
        console.print(f"Dry run: would start {len(plan.to_run)} of {len(sweep.runs)} runs "
                      f"({len(plan.done)} already done) in {store.root}; nothing was started.")
        return 0

    sweep_dir = store.record(sweep)
    return start(sweep, plan.to_run, store, sweep_dir, settings, logger, console, done=len(plan.done))


def resume(sweep_dir: Path, store: ResultsStore, console: Console) -> int:
    """Start the recorded sweep's runs that are neither done nor queued or running."""
    sweep = store.load_sweep(sweep_dir)
    settings = _checked_settings(sweep)
    logger = wandb_logger.resolve(sweep.logger, group=sweep.sweep_id)
    store.check_writable()
    plan = store.plan(sweep)
    return start(sweep, plan.to_run, store, sweep_dir, settings, logger, console, done=len(plan.done))


def _checked_settings(sweep: Sweep) -> LocalSettings | SlurmSettings:
    """The sweep's launcher settings, checked against the cluster when it is Slurm."""
    settings = settings_for(sweep.launcher)
    if isinstance(settings, SlurmSettings):
        settings.check_cluster(slurmctl.cluster_info())
    return settings


def start(sweep: Sweep, candidates: list[Run], store: ResultsStore, sweep_dir: Path,
          settings: LocalSettings | SlurmSettings, logger: dict, console: Console, done: int) -> int:
    views = reconcile(store, sweep_dir, [r.run_id for r in candidates])
    in_flight = [r for r in candidates if views[r.run_id].in_flight]
    to_run = [r for r in candidates if not views[r.run_id].in_flight and views[r.run_id].state not in DONE_STATES]
    done += len(candidates) - len(in_flight) - len(to_run)
    console.print(f"Sweep [bold]{sweep.sweep_id}[/]: {len(sweep.runs)} runs, {done} already done, "
                  f"{len(in_flight)} queued or running, {len(to_run)} to start "
                  f"(results in {store.root}, W&B {logger['mode']}).")
    if not to_run:
        console.print("Nothing to start: every run of this sweep is done, queued or running.")
        return 0
    if isinstance(settings, SlurmSettings):
        return _submit(sweep, to_run, store, sweep_dir, settings, logger, console)
    outcomes = _execute_with_progress(sweep, to_run, store, sweep_dir, settings, logger, console)
    counts = Counter(o.state for o in outcomes)
    console.print("Finished: " + ", ".join(f"{n} {state}" for state, n in sorted(counts.items())) + ".")
    for outcome in outcomes:
        if outcome.state not in DONE_STATES:
            console.print(f"  [red]{outcome.run.run_id} {outcome.state}[/]: log {outcome.log}")
    return 0 if set(counts) <= DONE_STATES else 1


def _submit(sweep: Sweep, runs: list[Run], store: ResultsStore, sweep_dir: Path, settings: SlurmSettings,
            logger: dict, console: Console) -> int:
    with console.status(f"Submitting {len(runs)} runs to Slurm …"):
        submission = slurm_launcher.submit(runs, store, sweep_dir, settings, {"logger": logger})
    arrays = len(submission.arrays)
    console.print(f"Submitted {submission.runs} runs as {submission.tasks} array tasks in {arrays} "
                  f"array{'s' if arrays != 1 else ''} (jobs {', '.join(submission.arrays)}). "
                  f"Watch with: optbench status {sweep.sweep_id} --watch")
    return 0


def _execute_with_progress(sweep: Sweep, runs: list[Run], store: ResultsStore, sweep_dir: Path,
                           settings: LocalSettings, logger: dict, console: Console) -> list[Outcome]:
    columns = (TextColumn("[bold]runs"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("{task.fields[running]} running"))
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("runs", total=len(runs), running=0)
        running = {"n": 0}

        def started(run) -> None:
            running["n"] += 1
            progress.update(task, running=running["n"])

        def finished(outcome: Outcome) -> None:
            running["n"] -= 1
            style = STATE_STYLE.get(outcome.state, "white")
            progress.console.print(f"[{style}]{outcome.state:>9}[/] {outcome.run.run_id}  "
                                   f"{sweep.describe(outcome.run)}  ({outcome.seconds:.1f}s)")
            progress.update(task, advance=1, running=running["n"])

        return execute(runs, store, sweep_dir, settings, logger, on_start=started, on_finish=finished)


def _plan_table(sweep: Sweep, plan: Plan) -> Table:
    table = Table(title=f"{sweep.sweep_id}: {len(sweep.runs)} runs")
    for column in ("run_id", "run", "status"):
        table.add_column(column)
    done = {r.run_id for r in plan.done}
    for run in sweep.runs:
        state = plan.states[run.run_id]
        label = f"done ({state})" if run.run_id in done else ("new" if state == "pending" else f"rerun ({state})")
        table.add_row(run.run_id, sweep.describe(run), label)
    return table
