"""Watching a Slurm sweep: heartbeats while a job runs, status with progress and ETA, the job's log by run id."""

from __future__ import annotations

import time

from slurm_helpers import wait_for, wait_until_final

# 150,000 steps at ~8,000 per second: seen running between heartbeats, about 20 s in all.
LONG = ("problem=rosenbrock", "optimizer.lr=0.0005", "problem.steps_per_epoch=30000", "train.epochs=5",
        "logger=disabled", "logger.heartbeat_seconds=0.2")


def test_a_running_slurm_job_beats_and_status_and_logs_show_it(launch, results, optbench):
    status, _, _, sweep_dir = launch(*LONG)
    assert status == 0
    (view,) = wait_for(results, sweep_dir, lambda views: views[0].state == "running" and "steps_per_second" in
                       (views[0].status.get("progress") or {}), timeout=120)
    progress = view.status["progress"]
    assert progress["steps"] == 150_000 and 0 < progress["step"] < 150_000 and progress["eta_seconds"] > 0
    first_beat = progress["heartbeat"]

    code, out, _ = optbench("status", sweep_dir.name, "--results", results)
    line = next(line for line in out.splitlines() if line.strip().startswith(view.run_id))
    assert code == 0 and "running" in line and view.job_id in line and "/5" in line
    assert "ETA" in out and "1 running" in out

    (later,) = wait_for(results, sweep_dir, lambda views: views[0].state != "running" or
                        views[0].status["progress"]["heartbeat"] > first_beat, timeout=60)
    assert later.state != "running" or later.status["progress"]["step"] > progress["step"]

    started = time.monotonic()
    code, out, _ = optbench("logs", view.run_id, "--follow", "--results", results)
    assert code == 0 and out.rstrip().endswith("Run ended: completed.")
    assert f"{view.job_id}_0_log.out" in out and f"{view.job_id}_0_log.err" in out
    assert "Job completed successfully" in out  # submitit's last line, written on the compute node
    assert time.monotonic() - started < 120
    (done,) = wait_until_final(results, sweep_dir)
    assert done.state == "completed" and done.status["progress"]["step"] <= 150_000
