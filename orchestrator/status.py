"""``optbench status``: counts per state and the runs that need a look, once or live."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

from rich import box
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from orchestrator.store import ResultsStore
from orchestrator.tracking import RunView, reconcile

STATE_ORDER = ("running", "failed", "timeout", "cancelled", "submitted", "pending", "diverged", "completed")
STATE_STYLE = {"running": "cyan", "completed": "green", "diverged": "yellow", "failed": "red", "timeout": "red",
               "cancelled": "magenta", "submitted": "blue", "pending": "white"}
HEADLINE_METRICS = ("valid_accuracy", "valid_loss", "train_loss")
ERROR_LINES = 3


def snapshot(store: ResultsStore, sweep_dir: Path) -> list[RunView]:
    run_ids = [r["run_id"] for r in store.sweep_runs(sweep_dir)]
    views = reconcile(store, sweep_dir, run_ids)
    return [views[run_id] for run_id in run_ids]


def render(sweep_dir: Path, views: list[RunView], limit: int | None) -> Group:
    """The counts, then up to ``limit`` runs, most urgent first (None: all)."""
    counts = Counter(v.state for v in views)
    summary = Text(f"{sweep_dir.name}: {len(views)} runs — ")
    for index, state in enumerate(s for s in STATE_ORDER if counts[s]):
        summary.append(", " if index else "")
        summary.append(f"{counts[state]} {state}", style=STATE_STYLE[state])
    ordered = sorted(views, key=lambda v: STATE_ORDER.index(v.state) if v.state in STATE_ORDER else 0)
    shown = ordered if limit is None else ordered[:limit]
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for column in ("run", "state", "epoch", "last metric", "node", "job", "elapsed"):
        table.add_column(column, no_wrap=True)
    for view in shown:
        table.add_row(view.run_id, Text(view.state, style=STATE_STYLE.get(view.state, "")), _progress(view),
                      _last_metric(view), view.node or view.status.get("node", ""), view.job_id or "",
                      view.elapsed or _elapsed(view))
    parts: list = [summary, table]
    if len(shown) < len(views):
        parts.append(Text(f"… {len(views) - len(shown)} more runs (--all shows every run)", style="dim"))
    for view in shown:
        error = view.status.get("error")
        if view.state in ("failed", "timeout") and error:
            tail = "\n".join(str(error).splitlines()[-ERROR_LINES:])
            parts.append(Text(f"{view.run_id} {view.state}:\n{tail}", style="red"))
    return Group(*parts)


def _progress(view: RunView) -> str:
    progress = view.status.get("progress") or {}
    if "epoch" in progress and progress.get("epochs"):
        return f"{progress['epoch']}/{progress['epochs']}"
    return ""


def _last_metric(view: RunView) -> str:
    last = view.status.get("last") or {}
    for key in HEADLINE_METRICS:
        if isinstance(last.get(key), int | float):
            return f"{key} {last[key]:.4g}"
    return ""


def _elapsed(view: RunView) -> str:
    started = view.status.get("started")
    if not started:
        return ""
    seconds = int((view.status.get("ended") or time.time()) - started)
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def show(store: ResultsStore, sweep_dir: Path, console: Console, limit: int | None, watch: float | None) -> int:
    """Print the status once, or refresh it every ``watch`` seconds until every run is final or Ctrl-C."""
    if not watch:
        console.print(render(sweep_dir, snapshot(store, sweep_dir), limit))
        return 0
    with Live(console=console, auto_refresh=False) as live:
        while True:
            views = snapshot(store, sweep_dir)
            live.update(render(sweep_dir, views, limit), refresh=True)
            if all(v.state not in ("pending", "submitted", "running") for v in views):
                return 0
            time.sleep(watch)
