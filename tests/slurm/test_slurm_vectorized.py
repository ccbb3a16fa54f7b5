"""``launcher.vectorize`` on Slurm: a group of runs is one array task, and each run ends as it would alone."""

from __future__ import annotations

import submitit
from slurm_helpers import sacct, wait_for, wait_until_final

from jobs.entry import run as run_here
from jobs.run_folder import METRICS, PROVENANCE, read_json, read_jsonl
from orchestrator.ledger import Ledger
from orchestrator.store import ResultsStore

GRID = ("problem=digits_mlp", "optimizer.lr=0.01,0.1", "seed=0,1", "train.epochs=2", "logger=disabled")


def _metrics(results, run_id):
    """The run's evaluation records without ``time`` (the clock is the one thing that differs)."""
    return [{k: v for k, v in r.items() if k != "time"} for r in read_jsonl(results / "runs" / run_id / METRICS)]


def test_a_vectorised_group_is_one_array_task_with_each_run_s_own_results(launch, optbench, results, tmp_path):
    status, out, err, sweep_dir = launch(*GRID, "launcher.vectorize=4")
    assert status == 0, err
    assert "Submitted 4 runs as 1 array tasks" in " ".join(out.split())
    views = wait_until_final(results, sweep_dir)
    assert [v.state for v in views] == ["completed"] * 4
    assignments, _ = Ledger(sweep_dir).read()
    (job_id,) = {a.job_id for a in assignments.values()}
    assert sacct(job_id)[job_id] == "COMPLETED"

    alone = tmp_path / "alone"  # the same runs, one by one, locally (one thread each, as the Slurm task had)
    status, _, err = optbench("launch", *GRID, "launcher.threads_per_run=1", "--results", alone)
    assert status == 0, err
    for run in ResultsStore(results).sweep_runs(sweep_dir):
        assert _metrics(results, run["run_id"]) == _metrics(alone, run["run_id"])  # bitwise (digits_mlp, CPU)
        assert read_json(results / "runs" / run["run_id"] / PROVENANCE)["vectorized"]["members"] == 4


def test_a_preempted_group_is_requeued_as_one_and_each_run_resumes_bitwise(launch, results, tmp_path):
    status, _, err, sweep_dir = launch("problem=digits_mlp", "train.batch_size=8", "train.epochs=12",
                                       "optimizer=momentum", "optimizer.lr=0.01,0.05", "seed=0,1", "logger=disabled",
                                       "launcher.vectorize=4")
    assert status == 0, err
    views = wait_for(results, sweep_dir, lambda vs: min(v.status.get("progress", {}).get("epoch", 0) for v in vs) >= 3)
    (job_id,) = {v.job_id for v in views}
    submitit.SlurmJob(folder=sweep_dir / "slurm", job_id=job_id)._interrupt(timeout=False)  # preemption

    views = wait_until_final(results, sweep_dir, timeout=300)
    assert [v.state for v in views] == ["completed"] * 4
    assert all(v.status["attempts"] == 2 and v.status["resumed_from_epoch"] >= 1 for v in views)
    for run in ResultsStore(results).sweep_runs(sweep_dir):
        run_here(run["spec"], tmp_path / "alone" / "runs" / run["run_id"], {"threads": 1})
        assert _metrics(results, run["run_id"]) == _metrics(tmp_path / "alone", run["run_id"])
