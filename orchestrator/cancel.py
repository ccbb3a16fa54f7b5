"""``optbench cancel``: stop a sweep's queued and running runs, all or some."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from orchestrator import slurmctl
from orchestrator.errors import UserError
from orchestrator.reconcile import RunView, reconcile
from orchestrator.store import ResultsStore


def cancel(store: ResultsStore, sweep_dir: Path, run_ids: Sequence[str] = ()) -> list[RunView]:
    """Cancel the in-flight runs among ``run_ids`` (default: all of the sweep); returns those cancelled.

    Runs packed into one array task share its fate: cancelling one of them
    cancels the task, and every unfinished run of that pack is cancelled.
    """
    known = [r["run_id"] for r in store.sweep_runs(sweep_dir)]
    unknown = sorted(set(run_ids) - set(known))
    if unknown:
        raise UserError(f"Run {unknown[0]} is not part of sweep {sweep_dir.name}; pass run ids that "
                        "optbench status lists, or none to cancel the whole sweep.")
    views = reconcile(store, sweep_dir, known)
    chosen = set(run_ids) or set(known)
    jobs = {views[r].job_id for r in chosen if views[r].in_flight and views[r].job_id}
    slurmctl.cancel(jobs)
    cancelled = [v for v in views.values() if v.in_flight and v.job_id in jobs]
    for view in cancelled:
        view.status = store.run_folder(view.run_id).set_state("cancelled", job_id=view.job_id,
                                                                  error="cancelled with optbench cancel")
        view.state = "cancelled"
    return cancelled
