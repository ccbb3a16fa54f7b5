"""Benchmark tuning strategies on ``digits_mlp``: successive halving and random search against the full grid.

Baseline (measured in the same run): the full grid, 9 learning rates
(log-spaced in [1e-3, 1]) × 3 momenta (0, 0.5, 0.9) = 27 settings, every one
trained for 9 epochs (243 epochs). Against it:

1. Successive halving over the same 27 settings (η = 3, rungs at 1, 3 and 9
   epochs, promoted runs continuing from their checkpoints). Goals (issue 19):
   its best setting's final validation accuracy within 1 % of the grid's
   best, for at most 1/3 of the grid's epochs.
2. Random search, 27 points from the same box (log-uniform learning rate,
   uniform momentum in [0, 0.9]): its expected best validation accuracy
   after k trials (Dodge et al. 2019, exact over the trials) beside the
   grid's, the grid read as a pool of equally likely settings.

Epochs are counted from the runs' own metrics (the last evaluated epoch of
each run), wall seconds by the clock around each ``optbench launch``
(local launcher, every core).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import goals

from analysis.budgets import expected_best_of_k
from jobs.run_folder import HALVING_FILE, METRICS, read_jsonl
from orchestrator.store import ResultsStore

COMMON = ["problem=digits_mlp", "optimizer=momentum", "train.epochs=9", "seed=0", "logger=disabled"]
GRID = ["optimizer.lr=logspace(1e-3,1,9)", "optimizer.momentum=0,0.5,0.9"]
HALVING = [*GRID, "search=halving", "search.eta=3", "search.min_epochs=1"]
RANDOM = ["search=random", "search.trials=27", "search.seed=0", "optimizer.lr=tag(log,interval(1e-3,1))",
          "optimizer.momentum=interval(0,0.9)"]
KS = (1, 2, 4, 8, 16, 27)
GOAL_GAP, GOAL_EPOCHS = 0.01, 1 / 3


def launch(results: Path, overrides: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "orchestrator.cli", "launch", *COMMON, *overrides, "--results",
                    str(results)], check=True, capture_output=True, text=True)
    return time.perf_counter() - started


def final_accuracy(store: ResultsStore) -> tuple[dict[str, float], int]:
    """Per setting of the one sweep in ``store``: the last evaluation's validation accuracy; and all epochs trained."""
    (sweep_dir,) = store.sweeps_dir.iterdir()
    accuracy, epochs = {}, 0
    for run in store.load_sweep(sweep_dir).runs:
        records = list(read_jsonl(store.run_folder(run.run_id).path(METRICS)))
        epochs += records[-1]["epoch"]
        if records[-1]["epoch"] == run.spec["train"]["epochs"]:
            accuracy[run.setting_id] = records[-1]["valid_accuracy"]
    return accuracy, epochs


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="optbench-bench-tuning-") as folder:
        root = Path(folder)
        grid_seconds = launch(root / "grid", GRID)
        grid, grid_epochs = final_accuracy(ResultsStore(root / "grid"))
        halving_seconds = launch(root / "halving", HALVING)
        store = ResultsStore(root / "halving")
        finished, halving_epochs = final_accuracy(store)
        (sweep_dir,) = store.sweeps_dir.iterdir()
        (final,) = [e for e in read_jsonl(sweep_dir / HALVING_FILE) if e["event"] == "decided" and "best" in e]
        chosen = finished[final["best"]]
        # The same setting ran straight through in the grid: continued from its checkpoints, it ends bitwise equal.
        continued_exactly = chosen == grid[final["best"]]
        random_seconds = launch(root / "random", RANDOM)
        drawn, _ = final_accuracy(ResultsStore(root / "random"))

    best = max(grid.values())
    gap = (best - chosen) / best
    ratio = halving_epochs / grid_epochs
    print(f"digits_mlp, {len(grid)} settings (lr × momentum), 9 epochs; local launcher")
    print(f"  grid (baseline):      best valid accuracy {best:.4f}, {grid_epochs} epochs, {grid_seconds:.1f} s")
    print(f"  successive halving:   chosen valid accuracy {chosen:.4f} (gap {100 * gap:.2f} %), "
          f"{halving_epochs} epochs = {ratio:.3f} × grid, {halving_seconds:.1f} s = "
          f"{halving_seconds / grid_seconds:.2f} × grid")
    print(f"  the chosen run, continued from rungs 1 and 3, equals the grid's uninterrupted run bitwise: "
          f"{continued_exactly}")
    print(f"  goals: gap <= {100 * GOAL_GAP:.0f} % {'met' if gap <= GOAL_GAP else 'MISSED'}, "
          f"epochs <= {GOAL_EPOCHS:.3f} × grid {'met' if ratio <= GOAL_EPOCHS else 'MISSED'}")
    grid_curve = expected_best_of_k(list(grid.values()), list(grid.values()), KS, maximize=True)
    random_curve = expected_best_of_k(list(drawn.values()), list(drawn.values()), KS, maximize=True)
    print(f"  expected best valid accuracy after k trials (random search, {len(drawn)} draws, {random_seconds:.1f} s):")
    print("      k   random (± std)      grid (± std)")
    for i, k in enumerate(KS):
        print(f"    {k:3d}   {random_curve['expected_valid'][i]:.4f} ± {random_curve['valid_std'][i]:.4f}"
              f"   {grid_curve['expected_valid'][i]:.4f} ± {grid_curve['valid_std'][i]:.4f}")
    ok = goals.at_most(__file__, "successive halving: gap to the grid's best valid accuracy", 100 * gap,
                       100 * GOAL_GAP, "%", note=f"chosen {chosen:.4f}, grid's best {best:.4f}")
    ok &= goals.at_most(__file__, "successive halving: epochs × the grid's", ratio, GOAL_EPOCHS, "×",
                        note=f"{halving_epochs} of {grid_epochs} epochs")
    goals.info(__file__, "halving's chosen run, continued from its rungs, equals the grid's bitwise",
               continued_exactly)
    goals.info(__file__, f"random search: expected best valid accuracy after {KS[-1]} trials",
               random_curve["expected_valid"][-1], note=f"the grid's {grid_curve['expected_valid'][-1]:.4f}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
