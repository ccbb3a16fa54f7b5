"""Benchmark the container path: image build time and size, and the per-run cost of ``apptainer exec``.

1. Build the CPU image with ``optbench image build cpu`` (into bench-results/)
   and report seconds and size; ``--image PATH`` reuses an image instead.
2. The same trivial run (Rosenbrock, one step) started REPEATS times as a
   fresh process through its command-line entry point, ``python -m
   jobs.entry RUN_DIR``: on this virtual environment's Python (the baseline)
   and through ``apptainer exec IMAGE python3`` with the launcher's binds
   and environment. Reported: median seconds per run for both, their ratio,
   and the difference (the container's overhead per process), beside the
   cost of starting the container alone (``apptainer exec IMAGE true``).
   A packed Slurm task (``launcher.runs_per_job``) pays it once per task.
"""

from __future__ import annotations

import argparse
import io
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import goals
import yaml
from rich.console import Console

from jobs.spec import run_id
from orchestrator import container, image
from orchestrator.config import ConfigTree
from orchestrator.sweep import expand

REPEATS = 7
TRIVIAL = ["problem=rosenbrock", "problem.steps_per_epoch=1", "train.epochs=1", "logger=disabled"]
OUT = Path("bench-results")


def build_image() -> tuple[Path, float]:
    OUT.mkdir(exist_ok=True)
    built = image.build("cpu", OUT / "optbench-cpu.sif", None, Console(file=io.StringIO()))
    return built.path, built.seconds


def time_runs(command: list[str], results: Path, spec: dict) -> list[float]:
    """Seconds for each of REPEATS fresh runs of ``spec``, each in a new folder."""
    seconds = []
    for attempt in range(REPEATS):
        folder = results / f"attempt-{attempt}" / "runs" / run_id(spec)
        folder.mkdir(parents=True)
        (folder / "spec.yaml").write_text(yaml.safe_dump(spec))
        seconds.append(timed([*command, "-m", "jobs.entry", str(folder), "--threads", "1"]))
    return seconds


def timed(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image", type=Path, help="reuse this image instead of building one")
    args = parser.parse_args()

    if args.image:
        path, build_seconds = args.image.resolve(), None
    else:
        path, build_seconds = build_image()
    size_mib = path.stat().st_size / 2**20
    print(f"image {path}: {size_mib:.1f} MiB"
          + (f", built in {build_seconds:.0f} s" if build_seconds is not None else " (reused, not built here)"))

    spec = expand(TRIVIAL).runs[0].spec
    with tempfile.TemporaryDirectory(prefix="optbench-bench-container-") as scratch:
        results = Path(scratch)
        settings = container.ContainerSettings.from_config(
            {**ConfigTree().option_config("container", "apptainer"), "image": str(path)})
        inside = container.prepare(settings, [results], gpus=False)
        time_runs([sys.executable], results / "warm-host", spec)  # page cache and bytecode, both sides
        time_runs([*inside.exec_args(), inside.python], results / "warm-image", spec)
        host = statistics.median(time_runs([sys.executable], results / "host", spec))
        in_image = statistics.median(time_runs([*inside.exec_args(), inside.python], results / "image", spec))
        start = statistics.median(timed([*inside.exec_args(), "true"]) for _ in range(REPEATS))
    print(f"trivial run as a fresh process, median of {REPEATS}: host Python {host:.2f} s, "
          f"apptainer exec {in_image:.2f} s: ratio {in_image / host:.2f}x, overhead {in_image - host:+.2f} s "
          f"per process, of which starting the container {start:.2f} s")
    # No goal is stated for the container path: info rows.
    goals.info(__file__, "CPU image size", size_mib, "MiB",
               note=f"built in {build_seconds:.0f} s" if build_seconds is not None else "reused, not built here")
    goals.info(__file__, "trivial run through apptainer exec, × host Python", in_image / host, "×",
               note=f"overhead {in_image - host:+.2f} s per process, container start {start:.2f} s")


if __name__ == "__main__":
    main()
