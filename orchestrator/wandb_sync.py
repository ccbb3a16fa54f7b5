"""``optbench sync``: upload a sweep's offline W&B runs with wandb's own sync, and say what it uploaded.

Where compute nodes have no internet, jobs log to W&B offline. Each attempt
at a run writes ``runs/<run_id>/wandb/offline-run-<time>-<run_id>/`` with the
record log ``run-<run_id>.wandb`` (a resumed run has one such folder per
attempt, and ``wandb sync`` uploads them in order as one W&B run, see
:class:`jobs.sinks.WandbSink`); the aggregator's summary run writes under
``sweeps/<sweep_id>/aggregate/wandb/``. ``wandb sync`` leaves
``run-<id>.wandb.synced`` beside each log it has uploaded in full, and logs
with that marker are not uploaded again.

Runs still ``submitted`` or ``running`` (by their status.json) are left
alone: ``wandb sync`` uploads a log as far as it is written and marks it
synced, so the rest of a growing log would never be uploaded. A log that
ends in a torn record (its job was killed while W&B wrote) cannot grow any
more once its run has ended; ``wandb sync`` uploads all of it but the torn
record and reports a failure without marking it, so this module marks it,
and says so, rather than failing on it at every sync.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from orchestrator.errors import UserError
from orchestrator.store import ResultsStore
from orchestrator.wandb_mode import has_api_key

#: Run states whose W&B logs may still grow.
IN_FLIGHT = frozenset({"submitted", "running"})
#: State shown for the aggregator's summary runs, which have no run folder.
SUMMARY_STATE = "summary"
#: Runs uploaded by one ``wandb sync`` call (its command line stays far below the system's limit).
BATCH = 200
#: What ``wandb sync`` says of a log that ends in a torn record.
TORN = "ends with an incomplete record"
#: How ``wandb sync`` names where a run went: "View run <id> at <url>/<entity>/<project>/runs/<id>".
VIEW_RUN = re.compile(r"View run \S+ at \S+?/([^/\s]+/[^/\s]+)/runs/\S+")


@dataclass
class OfflineRun:
    """One W&B run's offline record logs, oldest first, and what became of them."""

    run_id: str
    state: str
    logs: list[Path]
    result: str = ""
    errors: list[str] = field(default_factory=list)

    @property
    def unsynced(self) -> list[Path]:
        return [log for log in self.logs if not synced_marker(log).exists()]


def synced_marker(log: Path) -> Path:
    """The file ``wandb sync`` writes beside a record log it has uploaded."""
    return log.with_name(log.name + ".synced")


def sync(store: ResultsStore, sweep: str | None, console: Console, dry_run: bool = False) -> int:
    """Upload the offline W&B runs of ``sweep`` (a name or id), or of every sweep; 1 if some failed to upload."""
    sweep_dirs = [store.find_sweep(sweep)] if sweep else _all_sweeps(store)
    what = sweep_dirs[0].name if sweep else _count(len(sweep_dirs), "sweep")
    runs = list(_dedupe(offline_runs(store, sweep_dirs)))
    if not runs:
        console.print(f"Nothing to sync: no offline W&B runs in {what} ({store.root}).")
        return 0
    for run in runs:
        run.result = ("already synced" if not run.unsynced else
                      "skipped: still running" if run.state in IN_FLIGHT else
                      "would sync" if dry_run else "")
    to_upload = [run for run in runs if not run.result]
    places: set[str] = set()
    if to_upload:
        if not has_api_key():
            raise UserError("Uploading offline W&B runs needs an API key; set WANDB_API_KEY or run 'wandb login' "
                            "(optbench sync --dry-run lists them without one).")
        with console.status(f"Uploading {_count(len(to_upload), 'run')} with wandb sync…"):
            for start in range(0, len(to_upload), BATCH):
                places |= _upload(to_upload[start:start + BATCH], store.root)
    _report(runs, store.root, console)
    count = Counter("done" if run.result.startswith(("synced", "would sync")) else run.result for run in runs)
    destination = ", ".join(sorted(places)) or _destination(store, sweep_dirs)
    console.print(f"{'Would sync' if dry_run else 'Synced'} {_count(count['done'], 'run')} of {what} to {destination}; "
                  f"{count['already synced']} already synced, {count['skipped: still running']} still running"
                  + (f", {count['failed']} failed" if count["failed"] else "") + ".")
    if count["skipped: still running"]:
        console.print("Runs still running are synced once they have ended ('optbench status' brings their state "
                      "up to date).")
    return 1 if count["failed"] else 0


def offline_runs(store: ResultsStore, sweep_dirs: Iterable[Path]) -> Iterator[OfflineRun]:
    """The W&B runs with offline logs: each sweep's training runs, then its summary runs."""
    for sweep_dir in sweep_dirs:
        for entry in store.sweep_runs(sweep_dir):
            folder = store.run_folder(entry["run_id"])
            for run_id, logs in _logs_by_run(folder.root / "wandb").items():
                yield OfflineRun(run_id, folder.state, logs)
        for run_id, logs in _logs_by_run(sweep_dir / "aggregate" / "wandb").items():
            yield OfflineRun(run_id, SUMMARY_STATE, logs)


def _logs_by_run(wandb_dir: Path) -> dict[str, list[Path]]:
    """W&B run id → its offline record logs under one ``wandb/`` folder, oldest first."""
    logs: dict[str, list[Path]] = {}
    for log in sorted(wandb_dir.glob("offline-run-*/run-*.wandb")):  # by start time, then wandb's -<n> suffix
        logs.setdefault(log.stem.removeprefix("run-"), []).append(log)
    return logs


def _all_sweeps(store: ResultsStore) -> list[Path]:
    store.check_exists()
    return sorted(store.sweep_dir(info["sweep_id"]) for info in store.sweeps())


def _dedupe(runs: Iterable[OfflineRun]) -> Iterator[OfflineRun]:
    """Runs shared by several sweeps once."""
    seen: set[str] = set()
    for run in runs:
        if run.run_id not in seen:
            seen.add(run.run_id)
            yield run


def _upload(runs: list[OfflineRun], cwd: Path) -> set[str]:
    """One ``wandb sync`` of these runs' unsynced logs; returns the ENTITY/PROJECT it names for them.

    wandb sync exits 0 even when uploads fail, so each run's result is read
    from the markers it left, and its ERROR lines say why a log was not
    uploaded. It runs in this environment (``python -m wandb``), not muted by
    WANDB_SILENT, in the results folder: its own debug logs go to
    ``<results>/wandb/logs/`` (or under WANDB_DIR when that is set).
    """
    folders = [str(log.parent.resolve()) for run in runs for log in run.unsynced]
    env = {k: v for k, v in os.environ.items() if k not in ("WANDB_SILENT", "WANDB_QUIET")}
    done = subprocess.run([sys.executable, "-m", "wandb", "sync", *folders], cwd=cwd, env=env,
                          capture_output=True, text=True, check=False)
    lines = [line.removeprefix("wandb: ").strip() for line in (done.stdout + done.stderr).splitlines()]
    errors = [line.removeprefix("ERROR").strip() for line in lines if line.startswith("ERROR")]
    if done.returncode and not errors:  # it stopped without saying why: its traceback ends with the error
        errors = [f"it stopped (exit status {done.returncode}): {next((x for x in reversed(lines) if x), '')}"]
    for run in runs:
        torn = []
        for log in run.unsynced:
            mentions = [line for line in errors if log.parent.name in line]
            if any(TORN in line for line in mentions):
                synced_marker(log).touch()
                torn.append(log)
            run.errors += [line for line in mentions if TORN not in line]
        if run.unsynced:
            run.result = "failed"
            run.errors = run.errors or errors or ["it gave no reason"]
        else:
            run.result = "synced" + (" (torn last record left out)" if torn else "")
    return {match.group(1) for line in lines if (match := VIEW_RUN.search(line))}


def _report(runs: list[OfflineRun], root: Path, console: Console) -> None:
    """The table of every run but those synced before; then wandb's reasons for the failures."""
    shown = [run for run in runs if run.result != "already synced"]
    if shown:
        table = Table("run", "state", "offline folder", "result")
        for column in (table.columns[0], table.columns[3]):
            column.no_wrap = True
        for run in shown:
            folders = "\n".join(str(_relative(log.parent, root)) for log in (run.unsynced or run.logs))
            style = "red" if run.result == "failed" else "yellow" if run.result.startswith("skipped") else "green"
            table.add_row(escape(run.run_id), run.state, escape(folders), f"[{style}]{run.result}[/]")
        console.print(table)
    for run in runs:
        for line in dict.fromkeys(run.errors):
            console.print(f"[red]{escape(run.run_id)}[/]: wandb sync: {escape(line)}", highlight=False)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _relative(path: Path, root: Path) -> Path:
    try:
        return path.resolve().relative_to(root.resolve())
    except ValueError:
        return path


def _destination(store: ResultsStore, sweep_dirs: Iterable[Path]) -> str:
    """ENTITY/PROJECT of the sweeps' logger settings (the W&B user's default entity where none is set)."""
    places = []
    for sweep_dir in sweep_dirs:
        logger = store.sweep_info(sweep_dir).get("logger") or {}
        project = logger.get("project") or "optbench"
        places.append(f"{logger['entity']}/{project}" if logger.get("entity") else f"W&B project {project}")
    return ", ".join(dict.fromkeys(places)) or "W&B"
