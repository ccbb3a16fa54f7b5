"""Benchmark the local launcher's warm workers against one process per run (``launcher.warm=false``).

1. ``optbench launch sweep=smoke`` (18 short runs, ``make run``'s sweep, W&B
   offline), timed from the command's start to its end, warm and cold in the
   same benchmark run, each into a fresh results folder. Goal: warm ≤ 10 s on
   two cores (``taskset -c 0,1`` gives a bigger machine two).
2. Per-run overhead, from the same launches: a run's wall time (the ledger's
   record of its submission to its status' ``ended``) less its training time
   (the last ``time`` of its metrics), median over the runs.
3. W&B offline's cost per run inside a warm process (this one, as a worker
   is): the wall time of a digits run with ``logger=offline`` less the same
   run with W&B disabled, medians of interleaved repeats, with
   :attr:`jobs.sinks.WandbSink.SETTINGS` as it is (after) and empty (before,
   W&B's defaults); and ``wandb.init`` + ``finish`` alone, both ways.

Usage: ``python benchmarks/bench_local.py [--repeats N] [--skip-cold]``; exits
1 when a goal fails.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import goals

ROOT = Path(__file__).resolve().parents[1]
SWEEP = ["sweep=smoke", "logger=offline"]
RUNS = 18
GOAL_SECONDS = 10.0


def environment(work: Path) -> dict[str, str]:
    """W&B offline under ``work``, nothing inherited that could send anything anywhere."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "OPTBENCH_"))}
    env.update(WANDB_DIR=str(work / "wandb"), WANDB_SILENT="true", NETRC=str(work / "no-netrc"))
    return env


def launch(work: Path, name: str, *extra: str) -> tuple[float, Path]:
    """``optbench launch`` of the smoke sweep: seconds from start to exit, and its results folder."""
    results = work / name
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "orchestrator.cli", "launch", *SWEEP, *extra, "--results",
                           str(results)], capture_output=True, text=True, env=environment(work), cwd=ROOT)
    seconds = time.perf_counter() - started
    said = " ".join(done.stdout.split())
    if done.returncode != 0 or f"Finished: {RUNS} completed." not in said:
        raise SystemExit(f"optbench launch ({name}) did not complete {RUNS} runs:\n{done.stdout}\n{done.stderr}")
    return seconds, results


def overheads(results: Path) -> tuple[list[float], float]:
    """Per run: seconds from its submission (the ledger) to its end (status.json), less its training time;
    and the runs' training seconds in all."""
    from jobs.run_folder import read_jsonl
    from orchestrator.ledger import JOBS_FILE
    from orchestrator.store import ResultsStore

    store = ResultsStore(results)
    (sweep_dir,) = store.sweeps_dir.iterdir()
    submitted = {}
    for record in read_jsonl(sweep_dir / JOBS_FILE):
        if record["event"] == "intent":
            for run_id in (r for pack in record["packs"] for r in pack):
                submitted[run_id] = record["time"]
    found, trained = [], 0.0
    for run_id, at in submitted.items():
        folder = store.run_folder(run_id)
        train = folder.metrics()[-1]["time"]
        found.append(folder.status()["ended"] - at - train)
        trained += train
    return found, trained


def describe(name: str, seconds: float, over: list[float], trained: float, cores: int) -> str:
    return (f"smoke sweep ({RUNS} runs, {cores} cores), {name}: {seconds:.1f} s, of which training "
            f"{trained / cores:.1f} s a core ({trained:.1f} s in all); per-run overhead median "
            f"{statistics.median(over):.2f} s, mean {statistics.mean(over):.2f} s")


def wandb_costs(work: Path, repeats: int) -> dict[str, float]:
    """Median seconds per run: W&B offline's extra wall time (before/after) and init + finish alone (before/after)."""
    for name in [k for k in os.environ if k.startswith(("WANDB_", "OPTBENCH_"))]:
        del os.environ[name]
    os.environ.update(environment(work))
    import torch
    import wandb

    from jobs.entry import run
    from jobs.sinks import WandbSink
    from orchestrator.sweep import expand

    torch.set_num_threads(1)
    spec = next(r.spec for r in expand(["sweep=smoke"]).runs if r.spec["problem"]["name"] == "digits_mlp")
    after = dict(WandbSink.SETTINGS)
    runs = work / "wandb-runs"
    walls: dict[str, list[float]] = {"disabled": [], "before": [], "after": []}
    trains: list[float] = []
    inits: dict[str, list[float]] = {"before": [], "after": []}
    for i in range(repeats + 1):  # the first round warms the process up and is not counted
        for case in walls:
            WandbSink.SETTINGS = {} if case == "before" else after
            folder = runs / f"{case}-{i}"
            started = time.perf_counter()
            run(spec, folder, {"logger": {"mode": "disabled" if case == "disabled" else "offline", "group": "bench"},
                               "threads": 1})
            if i:
                walls[case].append(time.perf_counter() - started)
                trains.append(json.loads((folder / "metrics.jsonl").read_text().splitlines()[-1])["time"])
        for case, settings in (("before", {}), ("after", after)):
            started = time.perf_counter()
            wandb.init(project="bench", dir=str(runs), mode="offline", settings=wandb.Settings(**settings)).finish()
            if i:
                inits[case].append(time.perf_counter() - started)
    WandbSink.SETTINGS = after
    median = statistics.median
    return {"before": median(walls["before"]) - median(walls["disabled"]),
            "after": median(walls["after"]) - median(walls["disabled"]),
            "init_before": median(inits["before"]), "init_after": median(inits["after"]), "train": median(trains)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="W&B cost: interleaved repeats (default 5)")
    parser.add_argument("--skip-cold", action="store_true", help="leave out the one-process-per-run launch")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    work = Path(tempfile.mkdtemp(prefix="optbench-bench-local-"))
    cores = len(os.sched_getaffinity(0))
    print(f"load average before: {os.getloadavg()[0]:.1f} (others' processes slow every figure below)")
    try:
        warm_s, warm_results = launch(work, "warm")
        warm_over, warm_trained = overheads(warm_results)
        print(describe("warm workers", warm_s, warm_over, warm_trained, cores))
        note = f"training {warm_trained / cores:.1f} s a core"
        if not args.skip_cold:
            cold_s, cold_results = launch(work, "cold", "launcher.warm=false")
            cold_over, cold_trained = overheads(cold_results)
            print(describe("one process per run", cold_s, cold_over, cold_trained, cores))
            print(f"warm / cold: {warm_s / cold_s:.2f} × the wall time, "
                  f"{statistics.median(warm_over) / statistics.median(cold_over):.3f} × the per-run overhead")
            note += f"; one process per run: {cold_s:.1f} s ({cold_s / warm_s:.1f}× as long)"
            goals.info(__file__, "per-run overhead, one process per run (median)", statistics.median(cold_over), "s")
        ok = goals.at_most(__file__, f"smoke sweep ({RUNS} runs, {cores} cores), warm workers: time", warm_s,
                           GOAL_SECONDS, "s", note=note)
        goals.info(__file__, "per-run overhead, warm workers (median)", statistics.median(warm_over), "s",
                   note="wall from submission to end, less training time")

        costs = wandb_costs(work, args.repeats)
        print(f"W&B offline per digits run in a warm process (training {costs['train']:.2f} s): "
              f"{costs['before'] * 1000:.0f} ms with W&B's defaults, {costs['after'] * 1000:.0f} ms as configured; "
              f"wandb.init + finish alone {costs['init_before'] * 1000:.0f} → {costs['init_after'] * 1000:.0f} ms")
        goals.info(__file__, "W&B offline cost per run, warm (as configured)", costs["after"] * 1000, "ms",
                   note=f"W&B's defaults: {costs['before'] * 1000:.0f} ms; training {costs['train']:.2f} s")
        goals.info(__file__, "wandb.init + finish (as configured)", costs["init_after"] * 1000, "ms",
                   note=f"W&B's defaults: {costs['init_before'] * 1000:.0f} ms")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if not ok:
        print(f"FAIL: the warm smoke sweep took {warm_s:.1f} s, more than {GOAL_SECONDS:g} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
