"""A sweep with a run in each state a monitor must show: completed, running, failed and pending.

Four runs are launched for real (local launcher, digits_mlp, 3 epochs). Then
three of them are put into the other states through the same APIs the job
uses: a failure as :mod:`jobs.entry` records it (state and traceback tail, a
line in the job's log), a run in progress as a job between evaluations
leaves it (metrics cut to the first two evaluations, a heartbeat from
:class:`jobs.sinks.StatusSink`), and a pending run (its folder never written).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from jobs.run_folder import METRICS, RunFolder, cut_lines
from jobs.sinks import StatusSink
from orchestrator.cli import main
from orchestrator.monitor import latest_job
from orchestrator.reconcile import job_logs
from orchestrator.store import ResultsStore

FAILURE = "RuntimeError: CUDA error: an illegal memory access was encountered"
EPOCHS = 3


@dataclass
class MixedSweep:
    store: ResultsStore
    sweep_dir: Path
    completed: str
    running: str
    failed: str
    pending: str

    def folder(self, run_id: str) -> RunFolder:
        return self.store.run_folder(run_id)


def make_mixed_sweep(results: Path) -> MixedSweep:
    status = main(["launch", "problem=digits_mlp", "problem.hidden=8", f"train.epochs={EPOCHS}",
                   "optimizer.lr=0.3,0.1", "seed=1,2", "logger=disabled", "--results", str(results)])
    assert status == 0
    store = ResultsStore(results)
    (sweep_dir,) = store.sweeps_dir.iterdir()
    completed, running, failed, pending = (r["run_id"] for r in store.sweep_runs(sweep_dir))

    failing = store.run_folder(failed)
    failing.set_state("failed", error=f"Traceback (most recent call last):\n  File \"train.py\", line 1\n{FAILURE}")
    _, stderr = job_logs(latest_job(store, failed))
    with open(stderr, "a", encoding="utf-8") as log:
        log.write(f"{FAILURE}\n")

    started = store.run_folder(running)
    cut_lines(started.path(METRICS), 2)
    started.set_state("running")
    heartbeat = StatusSink(started, EPOCHS, heartbeat_seconds=0.0)
    heartbeat.progress.update(epoch=1, step=10)
    heartbeat.log_progress({"step": 14, "epoch": 1, "steps": 30, "loss": 0.5})
    heartbeat.log_progress({"step": 15, "epoch": 1, "steps": 30, "loss": 0.25})

    shutil.rmtree(store.run_folder(pending).root)
    return MixedSweep(store, sweep_dir, completed, running, failed, pending)
