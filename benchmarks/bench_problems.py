"""Benchmark: the test problems' data pipeline against their models, and time per epoch of the small problems.

    python benchmarks/bench_problems.py [--threads 1 --epochs 3 --batches 10]

Datasets of the real sizes are written first, in the real formats, with
random content (MNIST: 60k + 10k IDX images, CIFAR-10: 50k + 10k pickled
images, Tolstoi: 3.2 M characters), so loading, splitting and the
in-memory pipeline do the work they do on the real files.

Part 1, per problem at its default batch size: samples per second of the
data pipeline (``train_batches`` over whole epochs: shuffling, indexing
the in-memory tensors, uint8 → float, augmentation; the median of
``--epochs``) against the model's forward + backward pass (``batch_loss``
and ``backward``, the median of ``--batches`` of those batches), and the
pipeline's share of a training step. Goal: the
pipeline never starves the model, i.e. it delivers at least 5x the
samples per second the model consumes (share <= 1/6); on a GPU the model
gets faster, and so does the pipeline, which runs on the same device.

Part 2: wall time of one training epoch (SGD, the trainer's own loop:
closures, pass counting, schedule) and of one evaluation (train subset,
valid, test) of digits_mlp, quadratic_deep and mnist_mlp at their default
batch sizes, the second epoch of each (the first warms up). CPU, one torch
thread by default: ratios on a shared machine are steadier.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import goals
import numpy as np
import torch

from jobs.problems.build import build_problem
from jobs.train import Trainer
from orchestrator.sweep import expand

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "problems"))
from problem_files import write_cifar10, write_mnist_like, write_tolstoi  # noqa: E402

PIPELINE = ("mnist_mlp", "mnist_2c2d", "cifar10_3c3d", "cifar10_resnet32", "tolstoi_char_rnn")
EPOCHS = ("digits_mlp", "quadratic_deep", "mnist_mlp")
GOAL = 5.0  # pipeline samples/s over model samples/s


class NoSink:
    """A sink that drops everything: the cost of training alone."""

    def log_eval(self, record: dict) -> None:
        pass

    def log_step(self, record: dict) -> None:
        pass

    def log_measurement(self, record: dict) -> None:
        pass

    def log_progress(self, record: dict) -> None:
        pass


def write_datasets(data_dir: Path) -> float:
    started = time.perf_counter()
    rng = np.random.default_rng(0)
    write_mnist_like(data_dir / "mnist", rng, gz=False, train=60_000, test=10_000)
    write_cifar10(data_dir, rng, train=50_000, test=10_000)
    write_tolstoi(data_dir, rng, characters=3_200_000)
    return time.perf_counter() - started


def specs(names: tuple[str, ...]) -> dict[str, dict]:
    return {run.spec["problem"]["name"]: run.spec for run in expand(["problem=" + ",".join(names)]).runs}


def pipeline_against_model(spec: dict, data_dir: Path, epochs: int, batches: int) -> dict[str, float]:
    started = time.perf_counter()
    torch.manual_seed(0)
    problem = build_problem(spec["problem"], spec["train"]["batch_size"], torch.device("cpu"), torch.float32,
                            data_dir=data_dir)
    loaded = time.perf_counter() - started
    problem.model.train()

    per_batch = []
    generator = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        started = time.perf_counter()
        epoch = list(problem.train_batches(generator))
        per_batch.append((time.perf_counter() - started) / len(epoch))  # shuffling included
    pipeline = statistics.median(per_batch)

    times = []
    for batch in epoch[: batches + 1]:  # the first one warms up
        started = time.perf_counter()
        problem.model.zero_grad(set_to_none=True)
        problem.batch_loss(batch).backward()
        times.append(time.perf_counter() - started)
    model = statistics.median(times[1:])
    size = spec["train"]["batch_size"]
    return {"load": loaded, "pipeline": size / pipeline, "model": size / model, "share": pipeline / (pipeline + model)}


def epoch_time(spec: dict, data_dir: Path) -> dict[str, float]:
    trainer = Trainer(spec, NoSink(), data_dir=data_dir)
    seconds = []
    for _ in range(2):
        started = time.perf_counter()
        trainer.train_epoch()
        seconds.append(time.perf_counter() - started)
    started = time.perf_counter()
    trainer.evaluate([])
    evaluation = time.perf_counter() - started
    return {"epoch": seconds[-1], "steps": trainer.problem.steps_per_epoch(), "eval": evaluation}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--epochs", type=int, default=3, help="timed pipeline epochs per problem (median)")
    parser.add_argument("--batches", type=int, default=10, help="timed forward+backward passes per problem")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as folder:
        data_dir = Path(folder)
        written = write_datasets(data_dir)
        print(f"Wrote MNIST, CIFAR-10 and Tolstoi at their real sizes in {written:.1f} s. "
              f"CPU, {torch.get_num_threads()} torch thread(s), float32.\n")

        print("Data pipeline against the model's forward+backward, default batch sizes:")
        print(f"{'problem':<20}{'batch':>6}{'load s':>8}{'pipeline/s':>12}{'model/s':>10}{'ratio':>9}"
              f"{'share':>8}   goal")
        for name, spec in specs(PIPELINE).items():
            m = pipeline_against_model(spec, data_dir, args.epochs, args.batches)
            ratio = m["pipeline"] / m["model"]
            passed = goals.at_least(__file__, f"{name}: data pipeline samples/s × the model's", ratio, GOAL, "×",
                                    note=f"batch {spec['train']['batch_size']}, pipeline share {m['share']:.1%}")
            verdict = "PASS" if passed else "FAIL"
            print(f"{name:<20}{spec['train']['batch_size']:>6}{m['load']:>8.2f}{m['pipeline']:>12,.0f}"
                  f"{m['model']:>10,.0f}{ratio:>8.0f}x{m['share']:>8.1%}   >= {GOAL:.0f}x  {verdict}")

        print("\nOne training epoch (SGD) and one evaluation of the small problems:")
        print(f"{'problem':<20}{'batch':>6}{'steps':>7}{'epoch s':>9}{'ms/step':>9}{'eval s':>8}")
        for name, spec in specs(EPOCHS).items():
            m = epoch_time(spec, data_dir)
            print(f"{name:<20}{spec['train']['batch_size']:>6}{m['steps']:>7}{m['epoch']:>9.2f}"
                  f"{m['epoch'] / m['steps'] * 1e3:>9.2f}{m['eval']:>8.2f}")
            goals.info(__file__, f"{name}: one training epoch (SGD)", m["epoch"], "s",
                       note=f"{m['steps']} steps; evaluation {m['eval']:.2f} s")  # no goal stated: info


if __name__ == "__main__":
    main()
