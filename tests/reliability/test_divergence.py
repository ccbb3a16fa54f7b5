"""A NaN loss: a result (diverged), not a failure."""

from __future__ import annotations

import pandas as pd
from jobs_support import numbers

from jobs import checkpoint
from jobs.entry import run
from jobs.run_folder import CHECKPOINT
from orchestrator.store import ResultsStore
from orchestrator.sweep import expand

#: quadratic_deep at lr 1e10: the minibatch loss is NaN at step 3; lr 0.01 trains normally.
SWEEP = ("problem=quadratic_deep", "train.epochs=2", "optimizer.lr=0.01,1e10", "logger=disabled")


def snapshot(folder) -> dict[str, tuple[int, bytes]]:
    return {path.name: (path.stat().st_mtime_ns, path.read_bytes()) for path in folder.iterdir()}


def test_a_nan_loss_ends_the_run_diverged_and_resume_keeps_it_as_a_result(results, optbench):
    """The run whose loss turns NaN ends ``diverged`` with ``diverged_at`` and no checkpoint left; ``optbench
    resume`` starts nothing and touches nothing; status and the aggregate count it as diverged."""
    sweep = expand(list(SWEEP))
    store = ResultsStore(results)
    sweep_dir = store.record(sweep)
    fine, nan = sweep.runs
    for each in sweep.runs:
        run(each.spec, store.run_folder(each.run_id).root)

    folder = store.run_folder(nan.run_id)
    status, summary = folder.status(), folder.summary()
    assert status["state"] == "diverged" and status["error"] is None
    assert summary["state"] == "diverged" and summary["diverged_at"] == {"epoch": 0, "step": 3}
    assert [m["epoch"] for m in numbers(folder.root)] == [0], "the evaluation before the NaN step is kept"
    assert not [n for n in (CHECKPOINT, checkpoint.PREVIOUS, checkpoint.STAGED) if folder.path(n).exists()]
    before = snapshot(folder.root)

    code, out, _ = optbench("status", sweep.sweep_id, "--results", results)
    assert code == 0 and "2 runs — 1 diverged, 1 completed" in " ".join(out.split())

    code, out, _ = optbench("resume", sweep.sweep_id, "--results", results)
    assert code == 0 and "2 already done" in out and "Nothing to start" in " ".join(out.split())
    assert snapshot(folder.root) == before

    code, _, _ = optbench("aggregate", sweep.sweep_id, "--results", results, "--no-wandb")
    assert code == 0
    table = pd.read_csv(sweep_dir / "aggregate" / "summary.csv").set_index("optimizer.lr")
    assert table.loc[1e10, ["runs", "completed", "diverged", "failed"]].tolist() == [1, 0, 1, 0]
    assert table.loc[0.01, ["runs", "completed", "diverged", "failed"]].tolist() == [1, 1, 0, 0]
    runs = pd.read_csv(sweep_dir / "aggregate" / "runs.csv").set_index("run_id")
    assert runs.loc[nan.run_id, "state"] == "diverged" and runs.loc[fine.run_id, "state"] == "completed"
