"""Benchmark: PreconditionedSGD vs AdaptiveSGD vs SGD vs Adam, 5 seeds, through the tool itself.

    python benchmarks/bench_preconditioning.py [--results DIR] [--epochs 20]

Seed 000 compares probabilistic preconditioning with its AdaptiveSGD
variant and tuned SGD and Adam (its Fig. 4.1) and their wall-clock time
per epoch relative to SGD (Fig. 4.2), reporting AdaptiveSGD at least as
good as PreconditionedSGD and the full method slowest. This runs the same
comparison with optbench's own commands on ``digits_cnn`` (no files
needed), locally:

1. ``optbench launch sweep=preconditioning_baselines``: SGD and Adam over
   a 9-point learning-rate grid, the DeepOBS protocol's best rerun with
   seeds 42–46;
2. ``optbench launch sweep=preconditioning_study``: the two
   preconditioned methods with the source's settings, seeds 42–46;
3. ``optbench aggregate`` of both, whose ``best`` and ``speed`` tables
   are printed: median and quartiles of the final test accuracy and
   training loss, and seconds per epoch relative to SGD measured in the
   same run (the baseline).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import goals
import pandas as pd

OPTBENCH = [sys.executable, "-m", "orchestrator.cli"]
SWEEPS = ("preconditioning_baselines", "preconditioning_study")


def optbench(*arguments: str) -> None:
    subprocess.run([*OPTBENCH, *arguments], check=True, stdout=subprocess.DEVNULL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, help="results folder (default: a temporary one)")
    parser.add_argument("--epochs", type=int, default=20, help="train.epochs of every run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        results = args.results or Path(scratch)
        common = [f"train.epochs={args.epochs}", "logger=disabled", "--results", str(results)]
        for sweep in SWEEPS:
            optbench("launch", f"sweep={sweep}", *common)
        output = results / "comparison"
        optbench("aggregate", f"{SWEEPS[0]}-best", SWEEPS[1], "--no-wandb", "--output", str(output),
                 "--results", str(results))
        best = pd.read_csv(output / "best.csv")
        speed = pd.read_csv(output / "speed.csv")
    print(f"digits_cnn, {args.epochs} epochs, seeds 42-46; SGD and Adam tuned on a 9-point log grid (DeepOBS "
          "protocol), the preconditioned methods at the source's settings. Baseline: SGD, measured in this run.\n")
    columns = [c for c in best.columns if c.startswith(("optimizer", "final_test", "final_train_loss"))]
    print(best[columns].to_string(index=False))
    print()
    print(speed.to_string(index=False))
    # No goal is stated (the source's findings are to compare with, not thresholds): info rows.
    relative = speed.set_index("optimizer")["relative_to_sgd"]
    for row in best.itertuples(index=False):
        goals.info(__file__, f"{row.optimizer}: final test {row.metric}, median of {row.n} seeds",
                   float(row.final_test_median),
                   note=f"quartiles {row.final_test_q25:.3g}–{row.final_test_q75:.3g}; "
                        f"s/epoch {relative.get(row.optimizer, float('nan')):.2f}× SGD")


if __name__ == "__main__":
    main()
