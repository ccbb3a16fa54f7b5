"""Benchmark: vectorised groups against one process per run, on a 64-run digits_mlp grid (16 lrs × 4 seeds).

    python benchmarks/bench_vectorized.py [--epochs 3 --members 64 --sample 8]

The grid: digits_mlp at its defaults (128 hidden units, batch 64, 18 steps an epoch), SGD with 16
learning rates from 1e-3 to 1 (log-spaced) × seeds 0-3, ``--epochs`` epochs. Everything on CPU,
one torch thread per process, float32; CPU time is user + system time.

Part 1, the whole path, process start included: runs per CPU-hour of

* one process per run, ``python -m jobs.entry RUN_DIR`` as a run folder is rerun by hand (and as
  one local job runs): ``--sample`` runs of the grid, one after the other, the CPU time of the
  child processes per run;
* one process per group of ``--members`` runs (:func:`jobs.vectorized.group_runs`), each
  :func:`jobs.vectorized.run_group` on its run folders: the whole grid.

Goal: the groups' runs per CPU-hour at least 10× one process per run's. The sampled runs' metrics
must come out bitwise equal both ways (a row of its own).

Part 2, training alone, in this process (both trainers built and run, nothing written): CPU
seconds per run of :func:`jobs.train.train` (``--sample`` runs) and of one
:class:`jobs.vectorized_train.GroupTrainer` per group; figures and their ratio, no goal.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import goals
import numpy as np
import torch
import yaml
from bench_problems import NoSink

from jobs.run_folder import RunFolder
from jobs.spec import run_id
from jobs.train import train
from jobs.vectorized import group_runs
from jobs.vectorized_train import GroupTrainer
from orchestrator.sweep import expand

GOAL = 10.0  # runs per CPU-hour, vectorised over one process per run
#: One group's process: its items from a JSON file, one torch thread.
GROUP = ("import json, sys; from jobs.vectorized import run_group; "
         "run_group(json.load(open(sys.argv[1])), {'threads': 1})")


def grid(epochs: int) -> list[dict]:
    lrs = ",".join(f"{lr:.6g}" for lr in np.logspace(-3, 0, 16))
    overrides = ["problem=digits_mlp", "optimizer=sgd", f"optimizer.lr={lrs}", "seed=0,1,2,3", f"train.epochs={epochs}"]
    return [run.spec for run in expand(overrides).runs]


def numbers(run_dir: Path) -> list[dict]:
    """A run's metrics without ``time``."""
    return [{k: v for k, v in record.items() if k != "time"} for record in RunFolder(run_dir).metrics()]


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def one_process_per_run(specs: list[dict], root: Path) -> float:
    """CPU seconds per run of ``python -m jobs.entry RUN_DIR``, run after run."""
    started = children_cpu()
    for spec in specs:
        folder = root / run_id(spec)
        folder.mkdir(parents=True)
        (folder / "spec.yaml").write_text(yaml.safe_dump(spec, sort_keys=True))
        subprocess.run([sys.executable, "-m", "jobs.entry", str(folder), "--threads", "1"], check=True,
                       capture_output=True)
    return (children_cpu() - started) / len(specs)


def one_process_per_group(specs: list[dict], root: Path, members: int) -> tuple[float, int]:
    """CPU seconds per run of one process per group of ``members`` runs; and how many groups."""
    groups = group_runs(specs, members, spec=lambda spec: spec)
    started = children_cpu()
    for number, group in enumerate(groups):
        items = root / f"group{number}.json"
        items.write_text(json.dumps([{"spec": spec, "run_dir": str(root / run_id(spec))} for spec in group]))
        subprocess.run([sys.executable, "-c", GROUP, str(items)], check=True, capture_output=True)
    return (children_cpu() - started) / len(specs), len(groups)


def in_process(specs: list[dict], sample: int, members: int) -> tuple[float, float]:
    """CPU seconds per run of training alone: the trainer run by run, and in groups."""
    started = time.process_time()
    for spec in specs[:sample]:
        train(spec, NoSink())
    alone = (time.process_time() - started) / sample
    started = time.process_time()
    for group in group_runs(specs, members, spec=lambda spec: spec):
        GroupTrainer(group, [NoSink() for _ in group]).run()
    return alone, (time.process_time() - started) / len(specs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3, help="training epochs of every run")
    parser.add_argument("--members", type=int, default=64, help="runs per group (launcher.vectorize)")
    parser.add_argument("--sample", type=int, default=8, help="runs timed one process each, and alone in-process")
    args = parser.parse_args()
    torch.set_num_threads(1)
    specs = grid(args.epochs)
    sample = specs[:: len(specs) // args.sample][: args.sample]  # lrs and seeds across the grid
    print(f"{len(specs)} digits_mlp runs (16 lrs x 4 seeds), SGD, {args.epochs} epochs; CPU, one thread, float32.\n")

    with tempfile.TemporaryDirectory() as folder:
        alone_root, group_root = Path(folder) / "alone", Path(folder) / "group"
        group_root.mkdir()
        per_run = one_process_per_run(sample, alone_root)
        per_member, count = one_process_per_group(specs, group_root, args.members)
        equal = all(numbers(alone_root / run_id(spec)) == numbers(group_root / run_id(spec)) for spec in sample)
    ratio = per_run / per_member
    print("Whole path, process start included:")
    rows = [("one process per run", per_run, f"{len(sample)} runs timed"),
            (f"one process per {args.members} runs", per_member, f"{count} group{'s' * (count > 1)}")]
    for label, seconds, note in rows:
        print(f"  {label:<28}{seconds:8.3f} CPU s/run {3600 / seconds:10,.0f} runs/CPU-hour  ({note})")
    passed = goals.at_least(__file__, f"runs per CPU-hour: groups of {args.members} over one process per run",
                            ratio, GOAL, "×", note=f"{3600 / per_member:,.0f} against {3600 / per_run:,.0f}, "
                                                  f"{args.epochs} epochs")
    print(f"  ratio {ratio:.1f}x (goal >= {GOAL:.0f}x): {'PASS' if passed else 'FAIL'}")
    same = goals.record(__file__, "sampled runs' metrics, grouped and alone", "bitwise equal" if equal else "differ",
                        "bitwise equal", equal)

    alone, grouped = in_process(specs, len(sample), args.members)
    print("\nTraining alone, in this process:")
    print(f"  {'Trainer, run by run':<28}{alone:8.3f} CPU s/run")
    print(f"  {f'GroupTrainer, {args.members} a group':<28}{grouped:8.3f} CPU s/run  ratio {alone / grouped:.1f}x")
    goals.info(__file__, f"training only: GroupTrainer ({args.members} per group) over Trainer", alone / grouped, "×",
               note=f"{grouped * 1e3:.1f} against {alone * 1e3:.1f} CPU ms per run")
    return 0 if passed and same else 1


if __name__ == "__main__":
    sys.exit(main())
