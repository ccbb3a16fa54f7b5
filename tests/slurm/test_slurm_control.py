"""Fire-and-forget control: cancel, resume, and a submission that breaks off half-way."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess

from slurm_helpers import sacct, wait_for, wait_until_final

from orchestrator.ledger import Ledger
from orchestrator.reconcile import reconcile
from orchestrator.store import ResultsStore

TINY = ("problem=rosenbrock", "optimizer.lr=0.001", "problem.steps_per_epoch=20", "logger=disabled")
LONG_EPOCHS = 100_000  # minutes of work: these runs only end by being cancelled


def test_cancel_then_resume_restarts_only_what_was_cancelled(launch, results, optbench):
    status, _, _, sweep_dir = launch(*TINY, f"train.epochs=1,{LONG_EPOCHS}", "seed=range(2)")
    assert status == 0
    store = ResultsStore(results)
    runs = {r["run_id"]: r["spec"]["train"]["epochs"] for r in store.sweep_runs(sweep_dir)}
    short = {r for r, epochs in runs.items() if epochs == 1}
    long = set(runs) - short
    wait_for(results, sweep_dir, lambda views: all(
        v.state == "completed" if v.run_id in short else v.state == "running" for v in views))

    code, out, _ = optbench("cancel", sweep_dir.name, "--results", results)
    assert code == 0 and "Cancelled 2 runs" in out
    views = wait_until_final(results, sweep_dir)
    assert {v.run_id: v.state for v in views} == {r: "completed" if r in short else "cancelled" for r in runs}
    first_jobs = {v.run_id: v.job_id for v in views}
    assert set(sacct(*(first_jobs[r] for r in long)).values()) == {"CANCELLED"}

    code, out, _ = optbench("resume", sweep_dir.name, "--results", results)
    assert code == 0 and "2 already done" in out and "2 to start" in out and "Submitted 2 runs" in out
    assignments, _ = Ledger(sweep_dir).read()
    assert {r for r in runs if assignments[r].job_id != first_jobs[r]} == long
    assert all(store.run_folder(r).state in ("submitted", "running") for r in long)  # told of their new jobs

    code, out, _ = optbench("resume", sweep_dir.name, "--results", results)
    assert code == 0 and "2 queued or running, 0 to start" in out  # nothing starts twice

    some = sorted(long)[0]
    code, out, _ = optbench("cancel", sweep_dir.name, some, "--results", results)
    assert code == 0 and f"Cancelled 1 runs: {some}" in out
    optbench("cancel", sweep_dir.name, "--results", results)
    views = wait_until_final(results, sweep_dir)
    assert {v.run_id: v.state for v in views} == {r: "completed" if r in short else "cancelled" for r in runs}


def test_a_rejected_array_loses_nothing_and_resume_submits_the_rest(launch, results, optbench, tmp_path,
                                                                   monkeypatch):
    # Slurm itself refuses the third submission (a shim in front of the real sbatch), as a full queue would;
    # the launch's check, sbatch --test-only, submits nothing and goes through.
    shim_dir = tmp_path / "shim"
    shim_dir.mkdir()
    shim = shim_dir / "sbatch"
    shim.write_text(f"""#!/bin/bash
[ "$1" = --test-only ] && exec {shutil.which("sbatch")} "$@"
n=$(( $(cat {shim_dir}/calls 2>/dev/null || echo 0) + 1 )); echo $n > {shim_dir}/calls
if [ $n = 3 ]; then
  echo "sbatch: error: Batch job submission failed: Job violates accounting/QOS policy" >&2; exit 1
fi
exec {shutil.which("sbatch")} "$@"
""")
    shim.chmod(shim.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{shim_dir}{os.pathsep}{os.environ['PATH']}")

    status, _, err, sweep_dir = launch(*TINY, "train.epochs=1", "seed=range(5)", "launcher.max_array_size=1")
    assert status == 2
    assert "array 3 of 5" in err and "violates accounting/QOS policy" in err and "optbench resume" in err
    assert len(err.strip().splitlines()) <= 3  # one sentence (rich may wrap it)
    store = ResultsStore(results)
    assignments, unresolved = Ledger(sweep_dir).read()
    assert len(assignments) == 2 and not unresolved
    events = [json.loads(line)["event"] for line in (sweep_dir / "jobs.jsonl").read_text().splitlines()]
    assert events == ["intent", "submitted", "intent", "submitted", "intent", "rejected"]
    views = reconcile(store, sweep_dir, [r["run_id"] for r in store.sweep_runs(sweep_dir)])
    assert sorted(v.state for v in views.values()) == ["pending"] * 3 + ["submitted"] * 2

    monkeypatch.setenv("PATH", os.environ["PATH"].split(os.pathsep, 1)[1])
    code, out, _ = optbench("resume", sweep_dir.name, "--results", results)
    assert code == 0 and "Submitted 3 runs" in out
    views = wait_until_final(results, sweep_dir)
    assert {v.state for v in views} == {"completed"}
    assert all(v.status["attempts"] == 1 for v in views)  # no run ran twice
    names = subprocess.run(["sacct", "-n", "-P", "-X", "--format=JobName", "-j",
                            ",".join({v.job_id.split("_")[0] for v in views})],
                           capture_output=True, text=True, check=True).stdout.split()
    assert len(names) == 5 and all(name.startswith(f"optbench-{sweep_dir.name}-") for name in names)


def test_a_submission_cut_off_after_sbatch_is_found_by_its_job_name(launch, results, optbench):
    status, _, _, sweep_dir = launch(*TINY, "train.epochs=1", "seed=range(2)")
    assert status == 0
    ledger_path = sweep_dir / "jobs.jsonl"
    lines = ledger_path.read_text().splitlines()
    assert json.loads(lines[-1])["event"] == "submitted"
    ledger_path.write_text("\n".join(lines[:-1]) + "\n")  # as if the launcher died right after sbatch

    views = wait_until_final(results, sweep_dir)
    assert {v.state for v in views} == {"completed"}
    assignments, unresolved = Ledger(sweep_dir).read()
    assert not unresolved and len(assignments) == 2  # adopted by name, not submitted again
    code, out, _ = optbench("resume", sweep_dir.name, "--results", results)
    assert code == 0 and "Nothing to start" in out
