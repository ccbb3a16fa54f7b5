"""``optbench launch``: expand, validate, record, execute what is new."""

from __future__ import annotations

from collections import Counter

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from orchestrator import logger as wandb_logger
from orchestrator.local import LocalSettings, Outcome, execute
from orchestrator.store import Plan, ResultsStore
from orchestrator.sweep import Sweep, expand

STATE_STYLE = {"completed": "green", "diverged": "yellow", "failed": "red", "cancelled": "red", "timeout": "red"}


def launch(overrides: list[str], store: ResultsStore, dry_run: bool, console: Console) -> int:
    """Returns the exit status: 0 when every run ended completed or diverged."""
    sweep = expand(overrides)
    settings = LocalSettings.from_config(sweep.launcher)
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
    console.print(f"Sweep [bold]{sweep.sweep_id}[/]: {len(sweep.runs)} runs, {len(plan.done)} already done, "
                  f"{len(plan.to_run)} to run (results in {store.root}, W&B {logger['mode']}).")
    if not plan.to_run:
        console.print("Nothing to run: every run of this sweep has completed before.")
        return 0

    outcomes = _execute_with_progress(sweep, plan, store, sweep_dir, settings, logger, console)
    counts = Counter(o.state for o in outcomes)
    console.print("Finished: " + ", ".join(f"{n} {state}" for state, n in sorted(counts.items())) + ".")
    for outcome in outcomes:
        if outcome.state not in ("completed", "diverged"):
            console.print(f"  [red]{outcome.run.run_id} {outcome.state}[/]: log {outcome.log}")
    return 0 if set(counts) <= {"completed", "diverged"} else 1


def _execute_with_progress(sweep: Sweep, plan: Plan, store: ResultsStore, sweep_dir, settings: LocalSettings, logger,
                           console: Console) -> list[Outcome]:
    columns = (TextColumn("[bold]runs"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("{task.fields[running]} running"))
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("runs", total=len(plan.to_run), running=0)
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

        return execute(plan.to_run, store, sweep_dir, settings, logger, on_start=started, on_finish=finished)


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
