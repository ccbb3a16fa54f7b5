"""Benchmark: the cost of curvature-vector products relative to a gradient, measured in the same run.

    python benchmarks/bench_curvature.py [--rounds 30 --threads 1]

Two networks, CPU, float32, batch 64: the second-order thesis's CNN on
8×8 digits (``digits_cnn``, 312 weights, where fixed overheads dominate)
and the strided small CNN of ``bench_optim_step.py`` on synthetic
3×32×32 images (25,578 weights). Baseline: one gradient (forward and
backward pass), timed in the same rounds. Measured, as medians over
rounds that alternate the contenders:

* ``hvp (fresh)``: one Hessian-vector product from scratch by double
  backward: forward, backward with ``create_graph``, second backward;
* ``hvp (reused)``: a further product through a kept gradient graph, what
  each CG iteration after the first costs (:class:`jobs.curvature.Hessian`);
* ``hvp fwd-over-rev``: ``torch.func.jvp`` of ``torch.func.grad``, from scratch;
* ``ggn (reused)``, ``fisher (reused)``: one Gauss-Newton / Fisher product
  through the graphs kept by their operators.

The thesis (seed 002) measured about 2.5 gradients per Hessian product;
the ``hvp (fresh)`` row is the comparable one.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import goals
import torch
from torch import nn
from torch.nn import functional as F

from jobs.curvature import Fisher, GaussNewton, Hessian, SupervisedClosure, flat, hvp_forward_over_reverse
from jobs.problems.digits import DigitsCNN

BATCH = 64


def cross_entropy(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(outputs, targets, reduction="none")


def strided_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1, stride=2), nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1, stride=2), nn.ReLU(),
        nn.Flatten(), nn.Linear(32 * 8 * 8, 10),
    )


def networks() -> dict[str, tuple[nn.Module, torch.Tensor, torch.Tensor]]:
    torch.manual_seed(0)
    digits = DigitsCNN(BATCH, torch.device("cpu"), torch.float32, weight_decay=0.0)
    batch = next(digits.train_batches(torch.Generator().manual_seed(0)))
    images, labels = torch.randn(BATCH, 3, 32, 32), torch.randint(0, 10, (BATCH,))
    return {"digits_cnn": (digits.model, batch.inputs, batch.targets),
            "strided CNN": (strided_cnn(), images, labels)}


def functional_loss(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor):
    """The mean cross-entropy as a function of a dict of parameter tensors (for ``torch.func``)."""

    def loss_of(tensors: dict[str, torch.Tensor]) -> torch.Tensor:
        return F.cross_entropy(torch.func.functional_call(model, tensors, (inputs,)), targets)

    return loss_of


def contenders(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> dict[str, Callable[[], object]]:
    params = list(model.parameters())
    closure = SupervisedClosure(model, inputs, targets, cross_entropy)
    vector = torch.randn(sum(p.numel() for p in params))
    named = dict(model.named_parameters())
    tangent = {name: torch.randn_like(p) for name, p in named.items()}
    kept = {"hessian": Hessian(closure.loss_with_graph(), params),
            "ggn": GaussNewton(closure.model_output(), params),
            "fisher": Fisher(closure.model_output(), params, kind="true")}

    def gradient() -> object:
        return closure()

    def hvp_fresh() -> object:
        return Hessian(closure.loss_with_graph(), params).matvec(vector)

    loss_of = functional_loss(model, inputs, targets)

    def forward_over_reverse() -> object:
        return hvp_forward_over_reverse(loss_of, {k: v.detach() for k, v in named.items()}, tangent)

    return {
        "gradient": gradient,
        "hvp (fresh)": hvp_fresh,
        "hvp (reused)": lambda: kept["hessian"].matvec(vector),
        "hvp fwd-over-rev": forward_over_reverse,
        "ggn (reused)": lambda: kept["ggn"].matvec(vector),
        "fisher (reused)": lambda: kept["fisher"].matvec(vector),
    }


def time_rounds(calls: dict[str, Callable[[], object]], rounds: int, repeats: int) -> dict[str, float]:
    """Median over rounds of the mean seconds per call; rounds rotate the order of the contenders."""
    names, samples = list(calls), {name: [] for name in calls}
    for name in names:  # warm up
        calls[name]()
    for r in range(rounds):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            started = time.perf_counter()
            for _ in range(repeats):
                calls[name]()
            samples[name].append((time.perf_counter() - started) / repeats)
    return {name: statistics.median(values) for name, values in samples.items()}


def check_agreement(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> float:
    """Relative difference of the two Hessian-vector products (they must agree before timing means anything)."""
    params = list(model.parameters())
    named = {name: p.detach() for name, p in model.named_parameters()}
    tangent = {name: torch.randn_like(p) for name, p in named.items()}
    closure = SupervisedClosure(model, inputs, targets, cross_entropy)
    reverse = Hessian(closure.loss_with_graph(), params).matvec(flat(list(tangent.values())))

    forward = flat(list(hvp_forward_over_reverse(functional_loss(model, inputs, targets), named, tangent).values()))
    return float((forward - reverse).norm() / reverse.norm())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30, help="timed rounds per contender")
    parser.add_argument("--repeats", type=int, default=5, help="calls per round")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for label, (model, inputs, targets) in networks().items():
        weights = sum(p.numel() for p in model.parameters())
        disagreement = check_agreement(model, inputs, targets)
        seconds = time_rounds(contenders(model, inputs, targets), args.rounds, args.repeats)
        baseline = seconds["gradient"]
        print(f"\n{label}: {weights} weights, batch {BATCH}, {torch.get_num_threads()} thread(s), "
              f"{args.rounds} rounds x {args.repeats} calls; double backward vs forward-over-reverse "
              f"differ by {disagreement:.1e} (relative). Baseline, measured in this run: one gradient "
              f"{baseline * 1e3:.3f} ms.")
        print(f"{'product':<20}{'ms':>9}{'x gradient':>12}")
        for name, value in seconds.items():
            print(f"{name:<20}{value * 1e3:>9.3f}{value / baseline:>11.2f}x")
        # No goal is stated: the row comparable with the thesis's figure, as info.
        goals.info(__file__, f"hvp (fresh), {label}", seconds["hvp (fresh)"] / baseline, "× gradient",
                   note="the thesis measured about 2.5")


if __name__ == "__main__":
    main()
