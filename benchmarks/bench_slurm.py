"""Benchmark the Slurm launcher against the local cluster (``make cluster-up``).

1. Launch a 10,000-run sweep (submitted on hold, so nothing runs): seconds
   until ``optbench launch`` returns, and the number of ``sbatch`` calls,
   counted by a pass-through shim in front of the real one. Baseline: one
   plain ``sbatch`` per run, the hand-written loop, timed on a sample.
   Goals: <= 5 s and exactly ceil(N / MaxArraySize) sbatch calls.
2. ``optbench status`` of that sweep: seconds and the number of ``sacct``
   calls per poll. Baseline: one ``sacct -j`` per run, timed on a sample.
   Goals: one sacct call, <= 1 s.
3. Job-slot time per short run, from Slurm's accounting (ElapsedRaw of each
   task): one run per array task (the baseline) against packed runs
   (``runs_per_job``), 4 tasks at a time. Goal: <= 0.2 s per packed run.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import goals

RUNS = 10_000
GRID = ["problem=rosenbrock", "optimizer.lr=logspace(1e-5,1e-1,100)", "seed=range(100)"]
BASELINE_SAMPLE = 20
SHORT_RUNS_BASELINE, SHORT_RUNS_PACKED, RUNS_PER_JOB = 20, 200, 50
TRIVIAL = ["problem=rosenbrock", "problem.steps_per_epoch=1", "train.epochs=1", "logger=disabled",
           "launcher=slurm", "launcher.cpus_per_task=1", "launcher.array_parallelism=4"]


def optbench(*args: str, env: dict | None = None) -> tuple[float, str]:
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "orchestrator.cli", *args], capture_output=True, text=True,
                            env=env, check=False)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"optbench {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return seconds, result.stdout


def counting_shims(folder: Path, *commands: str) -> dict[str, str]:
    """Shims that log each call, then run the real command; returns an environment using them."""
    folder.mkdir(parents=True, exist_ok=True)
    for command in commands:
        shim = folder / command
        shim.write_text(f'#!/bin/bash\necho "$*" >> {folder}/{command}.calls\nexec {shutil.which(command)} "$@"\n')
        shim.chmod(0o755)
    return {**os.environ, "PATH": f"{folder}{os.pathsep}{os.environ['PATH']}"}


def calls(folder: Path, command: str) -> int:
    """Calls that did something: ``sbatch --test-only`` (the launch's check of the request) submits nothing."""
    log = folder / f"{command}.calls"
    return len([c for c in log.read_text().splitlines() if "--test-only" not in c.split()]) if log.exists() else 0


def reset(folder: Path, command: str) -> None:
    (folder / f"{command}.calls").unlink(missing_ok=True)


def plain_sbatch_seconds(work: Path) -> float:
    script = work / "one.sh"
    script.write_text("#!/bin/bash\ntrue\n")
    ids = []
    started = time.perf_counter()
    for _ in range(BASELINE_SAMPLE):
        out = subprocess.run(["sbatch", "--hold", "-o", "/dev/null", str(script)], capture_output=True, text=True,
                             check=True).stdout
        ids.append(out.split()[-1])
    seconds = (time.perf_counter() - started) / BASELINE_SAMPLE
    subprocess.run(["scancel", *ids], check=True)
    return seconds


def sacct_per_job_seconds(job_ids: list[str]) -> float:
    started = time.perf_counter()
    for job_id in job_ids[:BASELINE_SAMPLE]:
        subprocess.run(["sacct", "-n", "-X", "-j", job_id], capture_output=True, check=True)
    return (time.perf_counter() - started) / BASELINE_SAMPLE


def slot_seconds_per_run(results: Path, sweep_args: list[str], runs: int) -> float:
    """Sum of the array tasks' elapsed seconds (Slurm's accounting) divided by the runs they ran."""
    _, out = optbench("launch", *sweep_args, "--results", str(results))
    sweep = next((results / "sweeps").iterdir())
    optbench("status", sweep.name, "--watch", "1", "--results", str(results))
    from orchestrator.ledger import Ledger

    assignments, _ = Ledger(sweep).read()
    parents = sorted({a.job_id.split("_")[0] for a in assignments.values()})
    for _ in range(60):  # accounting lags a little behind the jobs' ends
        text = subprocess.run(["sacct", "-n", "-P", "-X", "--format=JobID,State,ElapsedRaw", "-j", ",".join(parents)],
                              capture_output=True, text=True, check=True).stdout
        rows = [line.split("|") for line in text.splitlines() if line]
        if rows and all(state == "COMPLETED" for _, state, _ in rows):
            return sum(int(elapsed) for _, _, elapsed in rows) / runs
        time.sleep(1)
    raise SystemExit(f"the short runs did not all complete: {rows}")


def main() -> int:
    from orchestrator import slurmctl

    max_array = slurmctl.cluster_info().max_array_size
    work = Path(tempfile.mkdtemp(prefix="optbench-bench-slurm-"))
    shims = work / "shims"
    env = counting_shims(shims, "sbatch", "sacct")
    results = work / "big"
    rows = []

    # 1. launch 10,000 runs, held so that they do not run
    baseline_launch = plain_sbatch_seconds(work) * RUNS
    seconds, out = optbench("launch", *GRID, "launcher=slurm", "logger=disabled",
                            "+launcher.additional_parameters.hold=true", "--results", str(results), env=env)
    sbatch_calls, expected_calls = calls(shims, "sbatch"), math.ceil(RUNS / max_array)
    ok = goals.at_most(__file__, f"launch {RUNS:,} runs (held): time", seconds, 5, "s",
                       note=f"one plain sbatch per run: {baseline_launch:.0f} s")
    ok &= goals.record(__file__, f"launch {RUNS:,} runs: sbatch calls", sbatch_calls,
                       f"= {expected_calls} (⌈N / MaxArraySize {max_array}⌉)", sbatch_calls == expected_calls)
    rows.append(("launch 10,000 runs (s)", seconds, baseline_launch, ok,
                 f"{sbatch_calls} sbatch calls, expected {expected_calls}"))

    # 2. status of that sweep
    sweep = next((results / "sweeps").iterdir())
    reset(shims, "sacct")
    status_seconds, _ = optbench("status", sweep.name, "--results", str(results), env=env)
    sacct_calls = calls(shims, "sacct")
    from orchestrator.ledger import Ledger

    job_ids = [a.job_id for a in Ledger(sweep).read()[0].values()]
    baseline_status = sacct_per_job_seconds(job_ids) * RUNS
    ok = goals.at_most(__file__, f"status of {RUNS:,} runs: time", status_seconds, 1, "s",
                       note=f"one sacct -j per run: {baseline_status:.0f} s")
    ok &= goals.record(__file__, f"status of {RUNS:,} runs: sacct calls per poll", sacct_calls, "= 1",
                       sacct_calls == 1)
    rows.append(("status of 10,000 runs (s)", status_seconds, baseline_status, ok,
                 f"{sacct_calls} sacct calls per poll"))
    subprocess.run(["scancel", *{j.split("_")[0] for j in job_ids}], check=True)

    # 3. job-slot time per short run
    single = slot_seconds_per_run(work / "single", [*TRIVIAL, f"seed=range({SHORT_RUNS_BASELINE})"],
                                  SHORT_RUNS_BASELINE)
    packed = slot_seconds_per_run(work / "packed", [*TRIVIAL, f"seed=range({SHORT_RUNS_PACKED})",
                                                    f"launcher.runs_per_job={RUNS_PER_JOB}"], SHORT_RUNS_PACKED)
    ok = goals.at_most(__file__, f"job-slot time per short run, {RUNS_PER_JOB} runs per task", packed, 0.2, "s",
                       note=f"one run per task: {single:.2f} s")
    rows.append(("slot time per short run (s)", packed, single, ok, f"{RUNS_PER_JOB} runs per task vs 1"))

    print(f"{'benchmark':<30} {'ours':>9} {'baseline':>10} {'speed-up':>9}  goal")
    for name, ours, base, ok, note in rows:
        print(f"{name:<30} {ours:>9.3f} {base:>10.2f} {base / ours:>8.1f}x  {'PASS' if ok else 'FAIL'}  ({note})")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
