"""Benchmark the report for a 500-setting sweep: aggregate (tables, every figure) + HTML, against a by-hand baseline.

    python benchmarks/bench_report.py [--settings 500 --seeds 3 --points 101]

The synthetic sweep comes from ``bench_aggregate.generate`` (not timed). Each
contender runs in a fresh child process:

* ``ours``: ``optbench aggregate`` + ``optbench report``'s work: every table (CSV,
  Parquet, Markdown, LaTeX), bootstrap CIs, DeepOBS selection, AlgoPerf profiles,
  five figures as PNG and SVG, and the self-contained HTML report;
* ``baseline``: what one writes by hand: ``json.loads`` per line → pandas →
  ``groupby`` medians and quartiles of the final values, ``DataFrame.to_html``, and
  one pyplot figure with a median line per setting, saved as PNG.

The goal (issue 7) is ≤ 30 s for ``ours``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import goals  # noqa: E402
from bench_aggregate import generate, naive_records  # noqa: E402

GOAL_SECONDS = 30.0


def ours(results: Path) -> dict[str, float]:
    from analysis.aggregate import aggregate_sweep
    from analysis.report import write_report

    sweep_dir = results / "sweeps" / "bench"
    started = time.perf_counter()
    aggregate = aggregate_sweep(sweep_dir, results / "runs")
    aggregated = time.perf_counter()
    path = write_report([sweep_dir], results / "runs", sweep_dir / "aggregate", sweep_dir / "report.html")
    return {"seconds": time.perf_counter() - started, "aggregate_seconds": aggregated - started,
            "settings": float(len(aggregate.summary)), "bytes": float(path.stat().st_size)}


def baseline(results: Path) -> dict[str, float]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    sweep_dir = results / "sweeps" / "bench"
    started = time.perf_counter()
    frame = pd.DataFrame(naive_records(sweep_dir, results / "runs"))
    final = frame.sort_values("epoch").groupby("run_id").last()
    summary = final.groupby("setting_id")[["valid_accuracy", "test_accuracy"]].quantile([0.25, 0.5, 0.75]).unstack()
    curves = frame.groupby(["setting_id", "epoch"])["valid_loss"].median()
    figure, axis = plt.subplots(figsize=(10, 6))
    for _, curve in curves.groupby(level=0):
        axis.plot(curve.index.get_level_values(1), curve.to_numpy(), linewidth=0.5)
    figure.savefig(sweep_dir / "baseline.png", dpi=100)
    (sweep_dir / "baseline.html").write_text(f"<html><body>{summary.to_html()}<img src='baseline.png'></body></html>")
    return {"seconds": time.perf_counter() - started, "settings": float(len(summary)), "bytes": 0.0}


CONTENDERS = {"ours": ours, "baseline": baseline}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", type=int, default=500)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--points", type=int, default=101)
    parser.add_argument("--child", nargs=2, metavar=("NAME", "RESULTS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        sys.path.insert(0, str(ROOT))
        print(json.dumps(CONTENDERS[args.child[0]](Path(args.child[1]))))
        return 0
    if args.settings < 1 or args.seeds < 1 or args.points < 2:
        parser.error("--settings and --seeds must be positive and --points at least 2.")
    with tempfile.TemporaryDirectory(prefix="optbench-bench-report-") as tmp:
        results = Path(tmp)
        generate(results, args.settings * args.seeds, args.points, problems=4, seeds=args.seeds)
        measured = {}
        for name in CONTENDERS:
            done = subprocess.run([sys.executable, __file__, "--child", name, str(results)], capture_output=True,
                                  text=True, check=False)
            if done.returncode != 0:
                raise SystemExit(f"{name} failed:\n{done.stderr}")
            measured[name] = json.loads(done.stdout.strip().splitlines()[-1])
    o, b = measured["ours"], measured["baseline"]
    print(f"{int(o['settings'])} settings × {args.seeds} seeds × {args.points} points")
    print(f"      ours: {o['seconds']:6.2f} s (aggregate {o['aggregate_seconds']:.2f} s, report "
          f"{o['seconds'] - o['aggregate_seconds']:.2f} s; HTML {o['bytes'] / 1e6:.1f} MB)")
    print(f"  baseline: {b['seconds']:6.2f} s (one table, one figure)")
    print(f"ours / baseline: {o['seconds'] / b['seconds']:.2f}× the time")
    ok = goals.at_most(__file__, f"aggregate + report of {int(o['settings'])} settings × {args.seeds} seeds",
                       o["seconds"], GOAL_SECONDS, "s", note=f"by-hand baseline {b['seconds']:.1f} s")
    print(f"goal ≤ {GOAL_SECONDS:g} s for the report of {int(o['settings'])} settings: {o['seconds']:.2f} s → "
          f"{'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
