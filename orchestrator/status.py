"""``optbench status``: a sweep's progress, ETA, runs and failures, once or live (``--watch``); every sweep's.

The time shown is the sweep's running time (wall time with at least one run
running: :func:`orchestrator.monitor.running_time`), not the time since it
was created. A sweep with more runs than the table shows gets one line per
problem first.

A queued run's node cell says why Slurm keeps it waiting (squeue's NODELIST(REASON)
column, in plain words: :mod:`orchestrator.waiting`); runs that will never start
are red, and a line under the table says what to change.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from orchestrator.monitor import STATE_ORDER, RunProgress, SweepProgress, sweep_progress, tail
from orchestrator.store import ResultsStore
from orchestrator.waiting import HELD, NEVER, THROTTLED

STATE_STYLE = {"running": "cyan", "completed": "green", "diverged": "yellow", "failed": "red", "timeout": "red",
               "cancelled": "magenta", "submitted": "blue", "pending": "white", "stopped": "bright_black"}
HEADLINE_METRICS = ("valid_accuracy", "valid_loss", "train_loss")
ERROR_LINES = 3
LOG_LINES = 5
BAR_WIDTH = 12
#: How a queued run's reason is shown, by its kind (:mod:`orchestrator.waiting`).
WAITING_STYLE = {NEVER: "bold red", HELD: "yellow", THROTTLED: "yellow"}
COLUMNS = ("run", "problem", "setting", "seed", "state", "progress", "last metric", "steps/s", "ETA",
           "node (reason)", "job", "W&B")
#: Columns that would otherwise take the width the others need (long settings, W&B links).
MAX_WIDTH = {"setting": 64, "W&B": 48}
SHRINKS = frozenset({"setting", "last metric", "W&B"})
WIDE_ONLY = frozenset({"setting", "seed", "steps/s", "W&B"})
WIDE = 150


def render(sweep: SweepProgress, limit: int | None, width: int = 200) -> Group:
    """The sweep's headline and progress bar, then up to ``limit`` runs, most urgent first (None: all), then failures.

    Below ``WIDE`` columns of ``width`` the setting, seed, rate and W&B columns are left out.
    """
    parts: list = [_headline(sweep)]
    shown = sweep.runs if limit is None else sweep.runs[:limit]
    if len(shown) < len(sweep.runs):
        parts.extend(_problem_line(problem, runs) for problem, runs in _by_problem(sweep.runs).items())
    columns = COLUMNS if width >= WIDE else tuple(c for c in COLUMNS if c not in WIDE_ONLY)
    rows = [_cells(run) for run in shown]
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for column in columns:  # what identifies a run is never cut; the setting and W&B columns give way first
        widest = None if column in SHRINKS else max(
            (_width(run, row[column]) for run, row in zip(shown, rows, strict=True)), default=0)
        table.add_column(column, no_wrap=True, overflow="ellipsis", min_width=widest, max_width=MAX_WIDTH.get(column))
    for row in rows:
        table.add_row(*(row[c] for c in columns))
    parts.append(table)
    if len(shown) < len(sweep.runs):
        parts.append(Text(f"… {len(sweep.runs) - len(shown)} more runs (--all shows every run)", style="dim"))
    parts.extend(_failure(run) for run in shown if run.state in ("failed", "timeout"))
    stalled = [r.run_id for r in shown if r.stalled]
    if stalled:
        parts.append(Text(f"No heartbeat for a while from {', '.join(stalled)}: the job may hang or have died; "
                          "see optbench logs RUN_ID.", style="yellow"))
    parts.extend(Text(note.text, style=WAITING_STYLE[note.kind]) for note in sweep.notes)
    return Group(*parts)


def _cells(run: RunProgress) -> dict[str, Any]:
    return {
        "run": run.run_id, "problem": run.problem, "setting": run.label,
        "seed": "" if run.seed is None else str(run.seed),
        "state": Text(run.state + (" (stalled?)" if run.stalled else ""), style=STATE_STYLE.get(run.state, "")),
        "progress": _progress(run), "last metric": _last_metric(run),
        "steps/s": f"{run.steps_per_second:.3g}" if run.steps_per_second and run.state == "running" else "",
        "ETA": _duration(run.eta_seconds) if run.state == "running" else "", "node (reason)": _node(run),
        "job": run.job_id or "", "W&B": _wandb(run),
    }


def _width(run: RunProgress, cell: Any) -> int:
    """A cell's width in characters; a progress cell is a bar and the epochs while its run goes on."""
    if isinstance(cell, Table):
        return BAR_WIDTH + 1 + len(_epochs(run))
    return len(cell.plain if isinstance(cell, Text) else cell)


def _node(run: RunProgress) -> Text | str:
    """Where it runs, or for a queued run why it waits (in parentheses, as squeue shows reasons)."""
    if run.waiting is None:
        return run.node
    return Text(f"({run.waiting.words})", style=WAITING_STYLE.get(run.waiting.kind, "dim"))


def _headline(sweep: SweepProgress) -> Group:
    summary = Text(f"{sweep.name} ({sweep.sweep_id}): {len(sweep.runs)} runs — ")
    for index, (state, count) in enumerate(sweep.counts.items()):
        summary.append(", " if index else "")
        summary.append(f"{count} {state}", style=STATE_STYLE.get(state, ""))
    bar = Table.grid(padding=(0, 1))
    bar.add_row(ProgressBar(total=1.0, completed=sweep.fraction, width=40), f"{100 * sweep.fraction:.0f} %",
                f"run time {_duration(sweep.running_seconds)}",
                f"ETA {_duration(sweep.eta_seconds)}" if sweep.active else "ended")
    parts: list = [summary, bar]
    if sweep.warning:
        parts.append(Text(sweep.warning, style="yellow"))
    group_url = _group_url(sweep)
    if group_url:
        parts.append(Text(f"W&B: {group_url}", style="link " + group_url))
    elif any(r.wandb and r.wandb.get("mode") == "offline" for r in sweep.runs):
        parts.append(Text(f"W&B: offline, in the run folders; optbench sync {sweep.sweep_id} uploads them.",
                          style="dim"))
    return Group(*parts)


def _by_problem(runs: list[RunProgress]) -> dict[str, list[RunProgress]]:
    grouped: dict[str, list[RunProgress]] = {}
    for run in runs:
        grouped.setdefault(run.problem, []).append(run)
    return dict(sorted(grouped.items()))


def _problem_line(problem: str, runs: list[RunProgress]) -> Text:
    """``digits_mlp  120 runs, 87 %: 100 completed, 15 running, 5 failed``, states most urgent first."""
    counts = Counter(run.state for run in runs)
    line = Text(f"{problem or '?'}  {len(runs)} runs, {100 * sum(r.fraction for r in runs) / len(runs):.0f} %: ")
    for index, state in enumerate(sorted(counts, key=_urgency)):
        line.append(", " if index else "")
        line.append(f"{counts[state]} {state}", style=STATE_STYLE.get(state, ""))
    return line


def _urgency(state: str) -> int:
    return STATE_ORDER.index(state) if state in STATE_ORDER else -1


def sweeps_table(store: ResultsStore) -> Table | Text:
    """Every sweep of the results folder, newest first: its runs by state, progress and running time."""
    sweeps = sorted(store.sweeps(), key=lambda info: info.get("created") or 0, reverse=True)
    if not sweeps:
        return Text(f"No sweep in {store.root} yet; optbench launch starts one.")
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, title=f"Sweeps in {store.root}")
    for column in ("sweep", "name", "created", "runs", "states", "progress", "run time"):
        table.add_column(column, no_wrap=column != "states",
                         justify="right" if column in ("runs", "progress", "run time") else "left")
    for info in sweeps:
        sweep = sweep_progress(store, store.sweep_dir(info["sweep_id"]))
        states = Text()
        for index, (state, count) in enumerate(sweep.counts.items()):
            states.append(", " if index else "")
            states.append(f"{count} {state}", style=STATE_STYLE.get(state, ""))
        created = time.strftime("%Y-%m-%d %H:%M", time.localtime(info["created"])) if info.get("created") else ""
        table.add_row(sweep.sweep_id, sweep.name, created, str(len(sweep.runs)), states,
                      f"{100 * sweep.fraction:.0f} %", _duration(sweep.running_seconds))
    return table


def _progress(run: RunProgress) -> Table | str:
    if run.final:
        return _epochs(run)
    cell = Table.grid(padding=(0, 1))
    cell.add_row(ProgressBar(total=1.0, completed=run.fraction, width=BAR_WIDTH), _epochs(run))
    return cell


def _epochs(run: RunProgress) -> str:
    return f"{run.epoch}/{run.epochs}" if run.epoch is not None and run.epochs else ""


def _last_metric(run: RunProgress) -> str:
    for key in HEADLINE_METRICS:
        if isinstance(run.last.get(key), int | float):
            return f"{key} {run.last[key]:.4g}"
    return ""


def _wandb(run: RunProgress) -> Text | str:
    if not run.wandb:
        return ""
    url = run.wandb.get("url")
    return Text(url, style="link " + url) if url else str(run.wandb.get("mode", ""))


def _group_url(sweep: SweepProgress) -> str:
    """The W&B page of the sweep's group, from any online run's URL (``…/<project>/runs/<id>``)."""
    for run in sweep.runs:
        url = (run.wandb or {}).get("url")
        if url and "/runs/" in url:
            return f"{url.rsplit('/runs/', 1)[0]}/groups/{sweep.sweep_id}"
    return ""


def _failure(run: RunProgress) -> Text:
    """The error's last lines, and the last lines of the job's stderr where they add something."""
    text = Text(f"{run.run_id} {run.state}: {run.problem} · {run.label}, seed {run.seed}\n", style="bold red")
    error_lines = [line for line in str(run.error or "").splitlines() if line.strip()][-ERROR_LINES:]
    text.append("\n".join(error_lines) + "\n" if error_lines else "", style="red")
    log = tail(Path(run.log), LOG_LINES) if run.log else []
    log_lines = [line for line in log if line.strip() and line not in error_lines]
    if log_lines:
        text.append(f"  {run.log}:\n", style="dim")
        text.append("\n".join(f"  {line}" for line in log_lines) + "\n", style="dim red")
    return text


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = int(seconds)
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def show(store: ResultsStore, sweep_dir: Path, console: Console, limit: int | None, watch: float | None) -> int:
    """Print the status once, or refresh it every ``watch`` seconds until every run has ended or Ctrl-C."""
    if not watch:
        console.print(render(sweep_progress(store, sweep_dir), limit, console.width))
        return 0
    with Live(console=console, auto_refresh=False) as live:
        while True:
            sweep = sweep_progress(store, sweep_dir)
            live.update(render(sweep, limit, console.width), refresh=True)
            if not sweep.active:
                return 0
            time.sleep(watch)
