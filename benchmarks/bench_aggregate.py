"""Benchmark ``analysis.aggregate_sweep`` on a synthetic sweep against a naive baseline.

    python benchmarks/bench_aggregate.py [--runs 10000 --points 101 --problems 4 --seeds 100]

Writes a synthetic results folder to a temporary directory (not timed): ``--problems``
problems × settings × ``--seeds`` seeds, ``--points`` evaluation points per run with
train_loss, valid_loss, valid_accuracy, test_loss, test_accuracy and lr (plus epoch,
step, time), ~1 % diverged runs (NaN at the end), ~0.5 % failed runs (torn last line),
~0.5 % still running and a few pending ones without a folder. Then, each in a fresh
child process so that peak memory is the call's own:

* ``ours``: ``aggregate_sweep`` (collect, statistics, tables, CSV/Parquet/Markdown, PNG);
* ``ours (collect + stats)``: the same data path without writing files or plotting;
* ``baseline``: ``json.loads`` per metrics line into a list of dicts → ``pandas.DataFrame``
  → ``groupby([setting_id, epoch])`` median/mean/std/count and ``quantile``.

Times are wall seconds of the call inside the child (interpreter start and imports
excluded); memory is the child's peak RSS, read with ``getrusage(RUSAGE_CHILDREN)``.
The page cache is warm (the files were just written): on a network file system the
read phase is slower for every contender.
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

ROOT = Path(__file__).resolve().parent.parent
GOAL_SECONDS = 10.0
GOAL_BYTES = 2e9
PROBLEMS = ("quadratic_deep", "digits_mlp", "fmnist_2c2d", "cifar10_3c3d")
OPTIMIZERS = ("sgd", "momentum", "adam", "rmsprop", "pal")
FIELDS = ("epoch", "lr", "step", "test_accuracy", "test_loss", "time", "train_loss", "valid_accuracy", "valid_loss")


# ----------------------------------------------------------------------------- synthetic data


def generate(root: Path, runs: int, points: int, problems: int, seeds: int, seed: int = 0) -> Path:
    """Write a results folder with one sweep of ``runs`` runs; returns the sweep folder."""
    rng = np.random.default_rng(seed)
    settings = max(runs // seeds, 1)
    sweep_dir = root / "sweeps" / "bench"
    runs_dir = root / "runs"
    sweep_dir.mkdir(parents=True)
    runs_dir.mkdir(parents=True)
    line = "{" + ", ".join(f'"{f}": %s' for f in FIELDS) + "}\n"
    line = line.replace('"epoch": %s', '"epoch": %d').replace('"step": %s', '"step": %d')
    epochs = np.arange(points)
    entries = []
    states = rng.choice(["completed", "diverged", "failed", "running", "pending"], size=runs,
                        p=[0.975, 0.01, 0.005, 0.005, 0.005])
    for r in range(runs):
        s = r % settings
        problem = PROBLEMS[s % problems]
        optimizer = OPTIMIZERS[(s // problems) % len(OPTIMIZERS)]
        lr = float(10.0 ** -(1 + (s // (problems * len(OPTIMIZERS))) / 5))  # a distinct lr per setting
        spec = {
            "problem": {"name": problem},
            "optimizer": {"name": optimizer, "lr": lr},
            "schedule": {"name": "constant"},
            "train": {"epochs": points - 1, "batch_size": 128, "eval_every": 1, "log_every": 10,
                      "clip_grad_norm": None},
            "seed": r // settings,
            "device": "cpu",
            "precision": "float32",
        }
        run_id = f"r{r:011d}"
        entries.append(json.dumps({"run_id": run_id, "setting_id": f"s{s:011d}", "spec": spec}) + "\n")
        state = str(states[r])
        if state == "pending":
            continue
        folder = runs_dir / run_id
        folder.mkdir()
        (folder / "status.json").write_text(json.dumps({"state": state, "run_id": run_id}))
        n = points if state == "completed" else int(rng.integers(1, points))
        rate = lr * (1 + s % 7) * rng.uniform(0.8, 1.2)
        decay = np.exp(-rate * epochs[:n] * 5)
        noise = rng.normal(0, 0.02, (n, 3))
        loss = 2.3 * decay[:, None] + 0.1 + np.abs(noise)
        accuracy = np.clip(1.0 - 0.9 * decay[:, None] + noise[:, :2] * 0.1, 0.0, 1.0)
        table = np.column_stack([
            epochs[:n], np.full(n, lr), epochs[:n] * 469, accuracy[:, 1], loss[:, 2],
            epochs[:n] * 1.7 + rng.uniform(0, 0.1, n), loss[:, 0], accuracy[:, 0], loss[:, 1],
        ])
        if state == "diverged":
            table[-1, [4, 6, 8]] = np.nan
        text = _format(line, table)
        if state == "failed":
            text += line[: len(line) // 2]  # a torn last line
        (folder / "metrics.jsonl").write_text(text)
    (sweep_dir / "runs.jsonl").write_text("".join(entries))
    (sweep_dir / "sweep.json").write_text(json.dumps({
        "sweep_id": "bench", "name": "bench", "overrides": [f"runs={runs}", f"points={points}"],
        "created": time.time(), "runs": runs,
    }))
    return sweep_dir


def _format(line: str, table: np.ndarray) -> str:
    """Rows as JSON lines with Python's float text (repr) and its NaN token; one % per run."""
    cells = [int(v) if j in (0, 2) else repr(float(v)) for row in table for j, v in enumerate(row)]
    return ((line * len(table)) % tuple(cells)).replace("nan", "NaN")


# ----------------------------------------------------------------------------- contenders


def ours(sweep_dir: Path, runs_dir: Path) -> dict[str, float]:
    from analysis.aggregate import aggregate_sweep

    started = time.perf_counter()
    result = aggregate_sweep(sweep_dir, runs_dir)
    return {"seconds": time.perf_counter() - started, "rows": float(len(result.curves))}


def ours_core(sweep_dir: Path, runs_dir: Path) -> dict[str, float]:
    from analysis.collect import collect_sweep
    from analysis.stats import curve_stats

    started = time.perf_counter()
    data = collect_sweep(sweep_dir, runs_dir)
    curves = curve_stats(data.metrics, (0.25, 0.75))
    return {"seconds": time.perf_counter() - started, "rows": float(len(curves))}


def baseline(sweep_dir: Path, runs_dir: Path) -> dict[str, float]:
    import pandas as pd

    started = time.perf_counter()
    frame = pd.DataFrame(naive_records(sweep_dir, runs_dir))
    metrics = [c for c in frame.columns if c not in ("run_id", "setting_id", "epoch")]
    grouped = frame.groupby(["setting_id", "epoch"])[metrics]
    stats = grouped.agg(["median", "mean", "std", "count"])
    quantiles = grouped.quantile([0.25, 0.75]).unstack()
    curves = stats.join(quantiles, rsuffix="_q")
    return {"seconds": time.perf_counter() - started, "rows": float(len(curves))}


def naive_records(sweep_dir: Path, runs_dir: Path) -> list[dict]:
    """Every metrics line as a dict with its run and setting, read the obvious way (the baselines' reader)."""
    records = []
    for entry in (sweep_dir / "runs.jsonl").read_text().splitlines():
        run = json.loads(entry)
        path = runs_dir / run["run_id"] / "metrics.jsonl"
        if not path.exists():
            continue
        text = path.read_text()
        for raw in text[: text.rfind("\n") + 1].splitlines():
            record = json.loads(raw)
            record["run_id"], record["setting_id"] = run["run_id"], run["setting_id"]
            records.append(record)
    return records


CONTENDERS = {"ours": ours, "ours-core": ours_core, "baseline": baseline}


def child(name: str, results: Path) -> None:
    """Run one contender and print its measurement as JSON (the parent's child process)."""
    sys.path.insert(0, str(ROOT))
    measurement = CONTENDERS[name](results / "sweeps" / "bench", results / "runs")
    measurement["self_maxrss_kib"] = float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    print(json.dumps(measurement))


def measure(name: str, results: Path) -> dict[str, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    done = subprocess.run([sys.executable, __file__, "--child", name, str(results)],
                          capture_output=True, text=True, check=False)
    process_seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{name} failed:\n{done.stderr}")
    measurement = json.loads(done.stdout.strip().splitlines()[-1])
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # RUSAGE_CHILDREN is the largest child so far; the child's own figure tells it apart when smaller.
    measurement["maxrss_bytes"] = (after if after > before else measurement["self_maxrss_kib"]) * 1024
    measurement["process_seconds"] = process_seconds
    return measurement


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--points", type=int, default=101)
    parser.add_argument("--problems", type=int, default=4)
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--no-baseline", action="store_true", help="skip the (slow) naive baseline")
    parser.add_argument("--child", nargs=2, metavar=("NAME", "RESULTS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child[0], Path(args.child[1]))
        return 0
    if args.runs < 1 or args.points < 1 or not 1 <= args.problems <= len(PROBLEMS) or args.seeds < 1:
        parser.error(f"--runs, --points and --seeds must be positive and --problems in 1..{len(PROBLEMS)}.")

    with tempfile.TemporaryDirectory(prefix="optbench-bench-") as tmp:
        results = Path(tmp)
        started = time.perf_counter()
        generate(results, args.runs, args.points, args.problems, args.seeds)
        size = sum(p.stat().st_size for p in (results / "runs").glob("*/metrics.jsonl"))
        print(f"generated {args.runs} runs × {args.points} points ({size / 1e6:.0f} MB of metrics) "
              f"in {time.perf_counter() - started:.1f} s (not timed)")
        names = ["ours", "ours-core"] + ([] if args.no_baseline else ["baseline"])
        measured = {}
        for name in names:
            m = measure(name, results)
            measured[name] = m
            print(f"{name:>10}: {m['seconds']:7.2f} s   peak {m['maxrss_bytes'] / 2**20:7.0f} MiB   "
                  f"({m['process_seconds']:.2f} s with interpreter start and imports; {int(m['rows'])} curve rows)")
    if "baseline" in measured:
        base = measured["baseline"]
        for name in ("ours", "ours-core"):
            print(f"baseline / {name}: {base['seconds'] / measured[name]['seconds']:.1f}× time, "
                  f"{base['maxrss_bytes'] / measured[name]['maxrss_bytes']:.1f}× memory")
    m = measured["ours"]
    size = f"aggregate_sweep of {args.runs:,} runs × {args.points} points"
    ok = goals.at_most(__file__, f"{size}: time", m["seconds"], GOAL_SECONDS, "s")
    ok &= goals.at_most(__file__, f"{size}: peak memory", m["maxrss_bytes"] / 1e9, GOAL_BYTES / 1e9, "GB")
    print(f"goal ≤ {GOAL_SECONDS:g} s and ≤ {GOAL_BYTES / 1e9:g} GB for aggregate_sweep: "
          f"{m['seconds']:.2f} s, {m['maxrss_bytes'] / 1e9:.2f} GB → {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
