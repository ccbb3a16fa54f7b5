"""Benchmark: Newton-CG against gradient descent on the thesis's small CNN (digits), per iteration and per gradient.

    python benchmarks/bench_newton.py [--iterations 80 --threads 1]

The second-order thesis (seed 002, §10) trains its small CNN full-batch
with a globalised Newton method after gradient-descent pre-training. Here
the same network (``digits_cnn``: 312 weights on scikit-learn's 8×8
digits) trains on the full 1197-example training split, float64, from the
same initial weights, with

* gradient descent (``torch.optim.SGD``), its learning rate the best of a
  grid by the loss after ``--iterations`` steps (the baseline, measured in
  this run), then run again for as many gradient-equivalents as the
  costlier Newton method used;
* ``newton_cg`` with its defaults (Hessian products, Armijo steps), after
  ``--pretrain`` gradient-descent steps at the baseline's learning rate;
* the ``hessian_free`` preset (Gauss-Newton products, Levenberg–Marquardt
  damping, CG warm starts and backtracking), same pre-training.

The cost unit is a *gradient-equivalent*: wall-clock seconds of the
optimizer's steps divided by the median time of one full-batch gradient,
measured in the same run. The table gives the training loss at fixed
iteration counts and at fixed budgets of gradient-equivalents (the last
loss reached within the budget).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import goals
import torch
import yaml

from jobs.optim.registry import OPTIMIZERS, build_optimizer
from jobs.problems.digits import SPLIT_SIZES, DigitsCNN
from jobs.train import MinibatchClosure, PassCounts

ROOT = Path(__file__).resolve().parent.parent
FULL_BATCH = SPLIT_SIZES["train"]
GD_RATES = (1.0, 3.0, 10.0, 30.0)


class Trajectory:
    """Training loss after each iteration and the cumulative seconds it took."""

    def __init__(self, label: str):
        self.label, self.losses, self.seconds = label, [], []

    def loss_at_iteration(self, iteration: int) -> float:
        return self.losses[min(iteration, len(self.losses)) - 1]

    def loss_within(self, budget_seconds: float) -> float:
        reached = [loss for loss, spent in zip(self.losses, self.seconds, strict=True) if spent <= budget_seconds]
        return reached[-1] if reached else float("nan")


def problem(seed: int) -> DigitsCNN:
    torch.manual_seed(seed)
    return DigitsCNN(FULL_BATCH, torch.device("cpu"), torch.float64, weight_decay=0.0)


def full_batch(digits: DigitsCNN):
    (batch,) = digits.train_batches(torch.Generator().manual_seed(0))
    return batch


def config(stem: str, **overrides) -> dict:
    loaded = yaml.safe_load((ROOT / "conf" / "optimizer" / f"{stem}.yaml").read_text())
    return OPTIMIZERS.validate({**loaded, **overrides})


def train(label: str, digits: DigitsCNN, optimizer: torch.optim.Optimizer, iterations: int,
          seconds: float = float("inf")) -> Trajectory:
    """``iterations`` steps, or fewer if the steps have taken ``seconds`` by then."""
    batch, counts, trajectory, spent = full_batch(digits), PassCounts(), Trajectory(label), 0.0
    while len(trajectory.losses) < iterations and spent < seconds:
        closure = MinibatchClosure(digits, batch, counts, clip_grad_norm=None)
        started = time.perf_counter()
        optimizer.step(closure)
        spent += time.perf_counter() - started
        with torch.no_grad():
            trajectory.losses.append(float(digits.batch_loss(batch)))
        trajectory.seconds.append(spent)
    return trajectory


def gradient_seconds(digits: DigitsCNN, repeats: int = 30) -> float:
    closure = MinibatchClosure(digits, full_batch(digits), PassCounts(), clip_grad_norm=None)
    closure()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        closure()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=80, help="iterations per method, pre-training included")
    parser.add_argument("--pretrain", type=int, default=20, help="gradient-descent steps before Newton")
    parser.add_argument("--seed", type=int, default=0, help="initial weights")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    unit = gradient_seconds(problem(args.seed))
    descents = {}
    for rate in GD_RATES:
        digits = problem(args.seed)
        descents[rate] = train(f"gd lr={rate:g}", digits, torch.optim.SGD(digits.model.parameters(), lr=rate),
                               args.iterations)
    best_rate = min(GD_RATES, key=lambda rate: descents[rate].losses[-1])
    newtons = []
    for stem in ("newton_cg", "hessian_free"):
        digits = problem(args.seed)
        settings = config(stem, pretrain_steps=args.pretrain, pretrain_lr=best_rate)
        optimizer = build_optimizer(settings, digits.model.parameters(), digits.model)
        newtons.append(train(stem, digits, optimizer, args.iterations))
    budget = max(run.seconds[-1] for run in newtons)
    digits = problem(args.seed)
    descent = train(f"gd lr={best_rate:g}", digits, torch.optim.SGD(digits.model.parameters(), lr=best_rate),
                    iterations=10**6, seconds=budget)
    runs = [descent, *newtons]

    checkpoints = [n for n in (args.pretrain, args.pretrain + 5, args.pretrain + 20, args.iterations)
                   if 0 < n <= args.iterations]
    budgets = [budget / unit * f for f in (0.05, 0.1, 0.25, 0.5, 1.0)]
    print(f"digits_cnn full batch ({FULL_BATCH} examples, float64, {torch.get_num_threads()} thread(s)), "
          f"seed {args.seed}. One gradient: {unit * 1e3:.2f} ms = 1 gradient-equivalent (g.e.), measured in this "
          f"run. Gradient descent's best rate of {', '.join(f'{r:g}' for r in GD_RATES)} after "
          f"{args.iterations} iterations: {best_rate:g}; it then runs as long as the costlier Newton method "
          f"({len(descent.losses)} iterations). Newton methods pre-train {args.pretrain} GD steps.")
    header = "".join(f"{f'it {n}':>11}" for n in checkpoints) + "".join(f"{f'{b:.0f} g.e.':>11}" for b in budgets)
    print(f"\ntraining loss   {header}{'g.e. used':>11}{'iterations':>11}")
    for run in runs:
        at_iterations = "".join(f"{run.loss_at_iteration(n):>11.4f}" for n in checkpoints)
        within = "".join(f"{run.loss_within(b * unit):>11.4f}" for b in budgets)
        print(f"{run.label:<16}{at_iterations}{within}{run.seconds[-1] / unit:>11.0f}{len(run.losses):>11}")
    print("\n(g.e. columns: the last loss reached within that many gradient-equivalents; nan: not one iteration.)")
    for run in runs:  # no goal is stated: each method's loss at the whole budget, as info
        goals.info(__file__, f"{run.label}: training loss within {budget / unit:.0f} g.e.", run.loss_within(budget),
                   note=f"{len(run.losses)} iterations")


if __name__ == "__main__":
    main()
