"""``optbench launch`` and ``optbench resume``: a sweep from overrides, or a recorded one, through the one start path.

Starting runs is :func:`orchestrator.execution.start_sweep`'s; a sweep that
asks for a protocol continues with its next stage (:mod:`orchestrator.tune`),
one that searches by successive halving goes rung by rung
(:mod:`orchestrator.halving`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console

from orchestrator import halving, tune
from orchestrator.config import ConfigTree
from orchestrator.errors import UserError
from orchestrator.execution import start_sweep
from orchestrator.store import ResultsStore
from orchestrator.sweep import expand


def launch(overrides: list[str], store: ResultsStore, dry_run: bool, console: Console,
           protocol: dict[str, Any] | None = None, tree: ConfigTree | None = None) -> int:
    """Returns the exit status: 0 when every run ended completed or diverged (or, on Slurm, went in).

    ``protocol`` (e.g. ``{"name": "deepobs"}``) overrides the sweep file's: the protocol's
    next stage follows this sweep (see :mod:`orchestrator.tune`). ``tree``: the config
    tree with the user's config folders (default: optbench's and ``OPTBENCH_CONFIG_PATH``'s).
    """
    sweep = expand(overrides, tree)
    if protocol is not None:
        sweep.protocol = {**sweep.protocol, **protocol}
    stage = tune.Protocol.from_config(sweep.protocol) if sweep.protocol else None  # checked before anything runs
    if sweep.search.get("strategy") == "halving":
        if stage is not None:
            raise UserError(f"The {stage.name} protocol does not run successive halving; use search=random, "
                            "search=quasirandom or a grid with it.")
        if dry_run:
            console.print(halving.schedule_table(sweep))
            return start_sweep(sweep, store, console, dry_run=True).status
        return halving.drive(sweep, store, console, record=True)
    if stage is not None and stage.name == "algoperf":
        chosen = sweep.protocol
        sweep = tune.algoperf_studies(sweep, stage, lambda extra: expand([*overrides, *extra], tree))
        sweep.protocol = chosen
    started = start_sweep(sweep, store, console, dry_run=dry_run)
    if dry_run or stage is None or stage.name != "deepobs" or stage.stage != 1:
        return started.status
    next_stage = tune.after_first_stage(sweep, stage, started.sweep_dir, store, started.execution.launcher == "slurm",
                                        console)
    return max(started.status, next_stage)


def resume(sweep_dir: Path, store: ResultsStore, console: Console) -> int:
    """Start the recorded sweep's runs that are neither done nor queued or running (halving: its next rungs)."""
    sweep = store.load_sweep(sweep_dir)
    if sweep.search.get("strategy") == "halving":
        return halving.drive(sweep, store, console)
    return start_sweep(sweep, store, console, record=False).status
