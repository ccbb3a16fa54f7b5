"""Benchmark what watching a sweep costs: status, the dashboard's API, and the jobs' heartbeats.

    python benchmarks/bench_monitor.py [--runs 1000 --points 51]

On a synthetic sweep (the one ``bench_aggregate`` writes: ~97 % completed, some
diverged, failed with a torn line, running and pending runs), in this process:

* ``baseline``: what a hand-written status script does: ``json.load`` every
  run's status.json and parse the last line of its metrics.jsonl;
* ``status``: :func:`orchestrator.monitor.sweep_progress` and the rendered table;
* ``dashboard``: the API's sweep answer and its curves, first (cold) and
  again with nothing changed (the cache), through Starlette's test client.

And the cost of heartbeats inside a job: seconds per optimizer step of a
small model with the sinks a job has (run folder + status) against a sink that
drops everything, with heartbeats at the default 10 s and at every step.
Ratios are against the baseline measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import goals  # noqa: E402
from bench_aggregate import generate  # noqa: E402
from bench_problems import NoSink  # noqa: E402
from rich.console import Console  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402

from jobs.run_folder import RunFolder  # noqa: E402
from jobs.sinks import FanOut, RunFolderSink, StatusSink  # noqa: E402
from jobs.train import Trainer  # noqa: E402
from orchestrator.dashboard import create_app  # noqa: E402
from orchestrator.monitor import sweep_progress  # noqa: E402
from orchestrator.status import render  # noqa: E402
from orchestrator.store import ResultsStore  # noqa: E402
from orchestrator.sweep import expand  # noqa: E402

REPEATS = 3


def best_of(call, repeats: int = REPEATS) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return min(times)


def baseline(runs_dir: Path) -> int:
    """Every status.json and the last metrics line of every run, the way a quick script reads them."""
    seen = 0
    for folder in runs_dir.iterdir():
        json.loads((folder / "status.json").read_text())
        lines = (folder / "metrics.jsonl").read_text().splitlines()
        try:
            json.loads(lines[-1])
        except ValueError:
            json.loads(lines[-2])  # a torn last line
        seen += 1
    return seen


def monitoring(runs: int, points: int) -> list[tuple[str, float]]:
    with tempfile.TemporaryDirectory() as tmp:
        sweep_dir = generate(Path(tmp), runs, points, problems=2, seeds=10)
        store = ResultsStore(tmp)
        console = Console(file=open("/dev/null", "w"), width=200)
        base = best_of(lambda: baseline(store.runs_dir))
        status = best_of(lambda: console.print(render(sweep_progress(store, sweep_dir), limit=40)))
        client = TestClient(create_app(store, refresh_seconds=5))
        cold = best_of(lambda: (client.get("/api/sweeps/bench"), client.get("/api/sweeps/bench/curves")), 1)
        warm = best_of(lambda: (client.get("/api/sweeps/bench"), client.get("/api/sweeps/bench/curves")))
    return [("baseline (status.json + last metrics line per run)", base), ("optbench status", status),
            ("dashboard API, first answer", cold), ("dashboard API, files unchanged", warm)]


def seconds_per_step(sink_for, steps_target: int = 3000) -> float:
    spec = expand(["problem=digits_mlp", "problem.hidden=16", "train.batch_size=8", "train.epochs=20"]).runs[0].spec
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(spec, sink_for(RunFolder(Path(tmp) / "run")))
        started = time.perf_counter()
        while trainer.step < steps_target:
            trainer.train_epoch()
            trainer.epoch += 1
        return (time.perf_counter() - started) / trainer.step


def heartbeats() -> list[tuple[str, float]]:
    def job_sinks(interval: float):
        def make(folder: RunFolder):
            folder.root.mkdir(parents=True)
            folder.set_state("running")
            return FanOut(RunFolderSink(folder.root), StatusSink(folder, 20, heartbeat_seconds=interval))
        return make

    contenders = (("no sink (baseline)", lambda folder: NoSink()),
                  ("job sinks, heartbeat every 10 s", job_sinks(10.0)),
                  ("job sinks, heartbeat every step", job_sinks(1e-9)))
    best = {label: float("inf") for label, _ in contenders}
    for _ in range(REPEATS):  # interleaved, so a busy moment of the machine does not favour one contender
        for label, sink_for in contenders:
            best[label] = min(best[label], seconds_per_step(sink_for))
    return list(best.items())


def table(title: str, rows: list[tuple[str, float]], unit: str, scale: float) -> None:
    base = rows[0][1]
    print(f"\n{title}")
    print(f"{'':55} {unit:>12} {'× baseline':>12}")
    for label, value in rows:
        print(f"{label:55} {value * scale:12.3f} {value / base:12.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--points", type=int, default=51)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    watching, beats = monitoring(args.runs, args.points), heartbeats()
    table(f"Watching a sweep of {args.runs} runs × {args.points} evaluation points", watching, "ms", 1e3)
    table("Heartbeats inside a job (digits_mlp, batch 8)", beats, "µs/step", 1e6)
    # No goal is stated for these: info rows, against the baseline measured in this run.
    for label, seconds in watching[1:]:
        goals.info(__file__, f"{label}, {args.runs:,} runs", seconds * 1e3, "ms",
                   note=f"{seconds / watching[0][1]:.2f}× the hand-written status script")
    for label, seconds in beats[1:]:
        goals.info(__file__, f"{label}, per step", seconds / beats[0][1], "×",
                   note=f"{seconds * 1e6:.0f} µs/step against {beats[0][1] * 1e6:.0f} without a sink")


if __name__ == "__main__":
    main()
