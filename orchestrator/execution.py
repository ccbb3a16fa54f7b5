"""How a sweep's runs start: the one path that launch, resume and a protocol's next stage all take.

:func:`start_sweep` checks everything first (:func:`prepare_execution`: the
launcher's settings against the cluster, W&B, the data, the plugins, the
container), so a bad request is one sentence with nothing written. Then,
under the sweep's lock, it records the sweep, reads where every run stands
once (:func:`orchestrator.reconcile.plan`: run folders, ledger, one ``sacct``
call) and starts what is neither done nor queued or running: the local
launcher runs it here and waits, with a progress bar; the Slurm launcher
submits arrays and returns at once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from jobs import plugins
from jobs.problems.data.files import missing_sentence
from jobs.problems.registry import PROBLEMS
from jobs.run_folder import DONE_STATES
from jobs.vectorized import can_vectorize, group_runs
from orchestrator import slurmctl, wandb_mode
from orchestrator.container import Container, ContainerSettings, PluginCode, prepare
from orchestrator.errors import UserError
from orchestrator.launchers import settings_for
from orchestrator.launchers import slurm as slurm_launcher
from orchestrator.launchers.local import LocalSettings, Outcome, execute
from orchestrator.launchers.slurm import SlurmSettings
from orchestrator.lock import sweep_lock
from orchestrator.reconcile import Plan, plan
from orchestrator.status import STATE_STYLE
from orchestrator.store import ResultsStore
from orchestrator.sweep import Run, Sweep

#: How a started run may end without anything to fix: a result, or stopped at its budget by successive halving.
ENDED_WELL = DONE_STATES | {"stopped"}


@dataclass(frozen=True)
class Execution:
    """How a sweep's runs execute: the launcher's settings, the checked container, what every job gets."""

    settings: LocalSettings | SlurmSettings
    container: Container | None
    runtime: dict[str, Any]  # logger, data_dir, container, plugin_paths: see jobs.entry
    plugins: list[PluginCode] = field(default_factory=list)

    @property
    def python(self) -> str | None:
        return self.container.python_command() if self.container else None

    @property
    def launcher(self) -> str:
        return "slurm" if isinstance(self.settings, SlurmSettings) else "local"


@dataclass(frozen=True)
class Started:
    """What :func:`start_sweep` did: its exit status, the sweep's folder (None in a dry run), how runs execute."""

    status: int
    sweep_dir: Path | None
    execution: Execution


def start_sweep(sweep: Sweep, store: ResultsStore, console: Console, *, dry_run: bool = False,
                record: bool = True, recorded: Callable[[Path], None] | None = None,
                budgets: Mapping[str, Mapping[str, int]] | None = None) -> Started:
    """Check, lock, record, plan once and start the runs that are neither done nor queued or running.

    ``record=False`` starts a sweep as it was recorded (resume); ``recorded(sweep_dir)`` runs under the lock
    right after recording (a protocol links its stages there); ``budgets`` (run id → ``{"epochs", "rung"}``)
    starts only those runs, each to its budget (a rung of successive halving). The exit status is 0 when every
    run ended completed, diverged or stopped at its budget (or, on Slurm, went in).
    """
    execution = prepare_execution(sweep, store, dry_run)  # a bad request is reported before anything is written
    if dry_run:
        _print_dry_run(sweep, store, plan(sweep, store, ask_scheduler=False), execution, console)
        return Started(0, None, execution)
    sweep_dir = store.sweep_dir(sweep.sweep_id)
    with sweep_lock(sweep_dir, execution.launcher):
        if record:
            store.record(sweep)
            if recorded is not None:
                recorded(sweep_dir)
        planned = plan(sweep, store, budgets=budgets)
        return Started(_start(sweep, planned, store, sweep_dir, execution, console), sweep_dir, execution)


def prepare_execution(sweep: Sweep, store: ResultsStore, dry_run: bool = False) -> Execution:
    """The sweep's launcher settings (checked against the cluster on Slurm), logger, data and container, checked.

    The results folder is created only once everything else is known to be
    good (the container binds it), and never in a dry run.
    """
    settings = settings_for(sweep.launcher)
    if isinstance(settings, SlurmSettings):
        settings.check_cluster(slurmctl.cluster_info())
    logger = wandb_mode.resolve(sweep.logger, group=sweep.sweep_id, sweep_name=sweep.name)
    data_dir = Path(sweep.data_dir).expanduser().resolve() if sweep.data_dir else None
    if data_dir is not None and not data_dir.is_dir():
        raise UserError(f"data_dir={sweep.data_dir} is not a folder; set data_dir (or OPTBENCH_DATA) to the "
                        "folder that holds the datasets.")
    _check_datasets(sweep, data_dir)
    container_settings = ContainerSettings.from_config(sweep.container)
    used = sweep_plugins(sweep)
    container = None
    with nullcontext() if dry_run else store.tentatively_created():
        if container_settings is not None:
            gpus = any(run.spec["device"] == "cuda" for run in sweep.runs) or (
                isinstance(settings, SlurmSettings) and settings.gpus_per_node > 0)
            results = [store.root] if store.root.exists() else []  # a dry run creates nothing
            container = prepare(container_settings, [*results, *([data_dir] if data_dir else [])], gpus,
                                online=logger["mode"] == "online", plugins=used)
    sources = sorted({plugin.source for plugin in used if plugin.source})
    runtime = {"logger": logger, "data_dir": str(data_dir) if data_dir else None,
               "container": container.record() if container else None,
               "plugin_paths": list(container.plugin_paths) if container else sources}
    return Execution(settings, container, runtime, used)


def sweep_plugins(sweep: Sweep) -> list[PluginCode]:
    """The plugins the sweep's runs use, as this machine has them; their code must be the code the specs name.

    A recorded sweep (resume, a protocol's next stage) whose plugin was edited since is refused here: its
    runs would run other code than their ids say.
    """
    used = {}
    for run in sweep.runs:
        for kind, config in plugins.sections(run.spec):
            if config["target"] not in used:
                plugin = plugins.load(kind, config["target"])
                plugins.check_code(plugin, config["code_hash"])
                source = plugins.source_root(plugin.cls)
                used[config["target"]] = PluginCode(kind, config["name"], plugin.target, plugin.code_hash,
                                                    str(source) if source else None)
    return list(used.values())


def _check_datasets(sweep: Sweep, data_dir: Path | None) -> None:
    """Every problem of the sweep finds its dataset files, before any job could fail for want of them."""
    problems = {run.spec["problem"]["name"]: run.spec["problem"] for run in sweep.runs}
    for name, config in sorted(problems.items()):
        files = PROBLEMS.resolve(config).dataset_files
        if files is None:
            continue
        missing = files.missing(data_dir)
        if missing:
            raise UserError(missing_sentence(name, files, data_dir, missing))


def _start(sweep: Sweep, planned: Plan, store: ResultsStore, sweep_dir: Path, execution: Execution,
           console: Console) -> int:
    where = f", in {execution.container.image.name}" if execution.container else ""
    total = len(planned.done) + len(planned.in_flight) + len(planned.to_run)
    console.print(f"Sweep [bold]{sweep.sweep_id}[/]: {total} runs, {len(planned.done)} already done, "
                  f"{len(planned.in_flight)} queued or running, {len(planned.to_run)} to start "
                  f"(results in {store.root}, W&B {execution.runtime['logger']['mode']}{where}).")
    if not planned.to_run:
        console.print("Nothing to start: every run of this sweep is done, queued or running.")
        return 0
    if isinstance(execution.settings, SlurmSettings):
        return _submit(sweep, planned.to_run, store, sweep_dir, execution, console)
    outcomes = _execute_with_progress(sweep, planned.to_run, store, sweep_dir, execution, console)
    counts = Counter(o.state for o in outcomes)
    console.print("Finished: " + ", ".join(f"{n} {state}" for state, n in sorted(counts.items())) + ".")
    for outcome in outcomes:
        if outcome.state not in ENDED_WELL:
            note = f"; {outcome.note}" if outcome.note else ""
            console.print(f"  [red]{outcome.run.run_id} {outcome.state}[/]: log {outcome.log}{note}")
    return 0 if set(counts) <= ENDED_WELL else 1


def _submit(sweep: Sweep, runs: list[Run], store: ResultsStore, sweep_dir: Path, execution: Execution,
            console: Console) -> int:
    with console.status(f"Submitting {len(runs)} runs to Slurm …"):
        submission = slurm_launcher.submit(runs, store, sweep_dir, execution.settings, execution.runtime,
                                           python=execution.python)
    arrays = len(submission.arrays)
    console.print(f"Submitted {submission.runs} runs as {submission.tasks} array tasks in {arrays} "
                  f"array{'s' if arrays != 1 else ''} (jobs {', '.join(submission.arrays)}). "
                  f"Watch with: optbench status {sweep.sweep_id} --watch")
    return 0


def _execute_with_progress(sweep: Sweep, runs: list[Run], store: ResultsStore, sweep_dir: Path,
                           execution: Execution, console: Console) -> list[Outcome]:
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

        return execute(runs, store, sweep_dir, execution.settings, execution.runtime, python=execution.python,
                       on_start=started, on_finish=finished)


def _print_dry_run(sweep: Sweep, store: ResultsStore, planned: Plan, execution: Execution,
                   console: Console) -> None:
    table = Table(title=f"{sweep.sweep_id}: {len(sweep.runs)} runs")
    for column in ("run_id", "run", "status"):
        table.add_column(column)
    done, in_flight = {r.run_id for r in planned.done}, {r.run_id for r in planned.in_flight}
    for run in sweep.runs:
        state = planned.views[run.run_id].state
        label = (f"done ({state})" if run.run_id in done else "queued or running" if run.run_id in in_flight
                 else "new" if state == "pending" else f"rerun ({state})")
        table.add_row(run.run_id, sweep.describe(run), label)
    console.print(table)
    for plugin in execution.plugins:
        where = f"source folder {plugin.source}" if plugin.source else "an installed package"
        console.print(f"Plugin {plugin.kind} {plugin.name}: {plugin.target} from {where} "
                      f"(code_hash {plugin.code_hash}).", highlight=False, soft_wrap=True)
    if execution.container:
        console.print(f"Every job would run in {execution.container.image} "
                      f"(optbench {execution.container.inside.get('optbench')} inside).")
    if execution.settings.vectorize > 1:
        _print_groups(planned.to_run, execution.settings.vectorize, console)
    console.print(f"Dry run: would start {len(planned.to_run)} of {len(sweep.runs)} runs "
                  f"({len(planned.done)} already done) in {store.root}; nothing was started.")


def _print_groups(runs: list[Run], limit: int, console: Console) -> None:
    """How ``launcher.vectorize`` would group the runs to start, and why the others would run alone (once each)."""
    groups = group_runs(runs, limit)
    together = [g for g in groups if len(g) > 1]
    console.print(f"launcher.vectorize={limit}: {sum(len(g) for g in together)} runs would train in {len(together)} "
                  f"group{'s' if len(together) != 1 else ''}, {len(groups) - len(together)} alone.")
    for reason in dict.fromkeys(can_vectorize([g[0].spec]) for g in groups if len(g) == 1):
        if reason is not None:
            console.print(f"  Alone: {reason}.", highlight=False, soft_wrap=True)
