"""A short GPU check for a lent GPU machine: optimizer families, determinism, vectorised throughput, peak memory.

    python scripts/gpu_check.py [--device cuda] [--quick]

Needs only the project and torch (with CUDA for ``--device cuda``); no Slurm, no Apptainer. Checks, on the device,
with the data on the device (problems are built there):

1. optimizer families: one representative each of SGD/momentum, Adam, a line search (PAL), curvature methods
   (K-FAC; Newton-CG on quadratic_deep), a short run: completed, final losses finite, seconds;
2. determinism: ``torch.use_deterministic_algorithms(True)`` (``CUBLAS_WORKSPACE_CONFIG=:4096:8`` is set before
   CUDA starts), the same spec twice: every metric and step record identical, ``time`` aside;
3. vectorised against unvectorised: a grid of digits_mlp runs (SGD, lrs x seeds) trained one after the other with
   :func:`jobs.train.train` in this process, then as one group with :func:`jobs.vectorized.run_group` into
   temporary run folders: runs per hour each way, their ratio (information, no goal), and the largest difference of
   the final valid loss between the two ways (reported; on CUDA equality is not expected);
4. peak GPU memory (``torch.cuda.max_memory_allocated``) of every check; "n/a" on CPU.

One table at the end. Exit status 0 when every check passed, 1 when one failed, 2 when ``--device cuda`` is asked
and torch sees no CUDA device. ``--device cpu --quick`` runs it on a CPU machine (how it is checked without a GPU).
Not part of ``make test``: ``make gpu-check`` runs it.
"""

from __future__ import annotations

import os

# cuBLAS is deterministic only with a fixed workspace, which must be set before CUDA starts.
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import torch  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from jobs.run_folder import RunFolder  # noqa: E402
from jobs.spec import run_id  # noqa: E402
from jobs.train import train  # noqa: E402
from jobs.vectorized import can_vectorize, run_group  # noqa: E402
from orchestrator.sweep import expand  # noqa: E402

#: (label, overrides): one representative of each optimizer family, on a small problem.
FAMILIES = [
    ("SGD + momentum", ["problem=digits_mlp", "optimizer=momentum"]),
    ("Adam", ["problem=digits_mlp", "optimizer=adam"]),
    ("line search (PAL)", ["problem=digits_mlp", "optimizer=pal"]),
    ("curvature (K-FAC)", ["problem=digits_mlp", "optimizer=kfac"]),
    ("curvature (Newton-CG)", ["problem=quadratic_deep", "optimizer=newton_cg"]),
]


class MemorySink:
    """A run's records in memory (the trainer's MetricSink)."""

    def __init__(self) -> None:
        self.evals: list[dict[str, Any]] = []
        self.steps: list[dict[str, Any]] = []
        self.measurements: list[dict[str, Any]] = []

    def log_eval(self, record: dict[str, Any]) -> None:
        self.evals.append(dict(record))

    def log_step(self, record: dict[str, Any]) -> None:
        self.steps.append(dict(record))

    def log_measurement(self, record: dict[str, Any]) -> None:
        self.measurements.append(dict(record))

    def log_progress(self, record: dict[str, Any]) -> None:
        pass

    def flush(self) -> None:
        pass

    def close(self, summary: Any = None, exit_code: int = 0) -> None:
        pass

    def numbers(self) -> str:
        """Every record less its ``time``, as exact text (floats round-trip; NaN equals NaN)."""
        strip = [[{k: v for k, v in r.items() if k != "time"} for r in records]
                 for records in (self.evals, self.steps, self.measurements)]
        return json.dumps(strip, sort_keys=True, default=repr)


@dataclass
class Row:
    check: str
    detail: str
    result: str
    seconds: float | None
    memory: str
    passed: bool


class Device:
    def __init__(self, name: str):
        self.name = name
        self.cuda = name == "cuda"

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()

    def reset_peak(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()

    def peak(self) -> str:
        if not self.cuda:
            return "n/a"
        torch.cuda.synchronize()
        return f"{torch.cuda.max_memory_allocated() / 2**20:,.1f} MiB"


def specs(overrides: list[str]) -> list[dict[str, Any]]:
    return [run.spec for run in expand(overrides).runs]


def final_losses(summary: dict[str, Any]) -> dict[str, float]:
    return {k: v for k, v in (summary.get("final") or {}).items() if k.endswith("_loss")}


def timed(device: Device, work: Callable[[], Any]) -> tuple[Any, float, str]:
    """``work()``'s result, its wall seconds (device synchronised) and the peak memory while it ran."""
    device.reset_peak()
    started = time.perf_counter()
    result = work()
    device.sync()
    return result, time.perf_counter() - started, device.peak()


def check_families(device: Device, epochs: int) -> list[Row]:
    rows = []
    for label, overrides in FAMILIES:
        spec = specs([*overrides, f"device={device.name}", f"train.epochs={epochs}", "seed=0"])[0]
        detail = f"{spec['optimizer']['name']} on {spec['problem']['name']}, {epochs} epoch{'s' * (epochs > 1)}"
        try:
            summary, seconds, memory = timed(device, lambda spec=spec: train(spec, MemorySink()))
        except Exception as error:  # one family failing does not stop the others
            traceback.print_exc()
            rows.append(Row("family", detail, f"error: {type(error).__name__}: {error}"[:80], None, "n/a", False))
            continue
        losses = final_losses(summary)
        finite = bool(losses) and all(math.isfinite(v) for v in losses.values())
        shown = ", ".join(f"{k}={v:.4g}" for k, v in sorted(losses.items()) if k in ("train_loss", "valid_loss"))
        passed = summary["state"] == "completed" and finite
        rows.append(Row(f"family: {label}", detail, f"{summary['state']}; {shown or 'no losses'}", seconds, memory,
                        passed))
    return rows


def check_determinism(device: Device, epochs: int) -> Row:
    spec = specs(["problem=digits_mlp", "optimizer=adam", f"device={device.name}", f"train.epochs={epochs}",
                  "train.log_every=1", "seed=3"])[0]
    sinks = [MemorySink(), MemorySink()]

    def twice() -> list[dict[str, Any]]:
        before = torch.are_deterministic_algorithms_enabled()
        torch.use_deterministic_algorithms(True)
        try:
            return [train(spec, sink) for sink in sinks]
        finally:
            torch.use_deterministic_algorithms(before)

    try:
        summaries, seconds, memory = timed(device, twice)
    except Exception as error:
        traceback.print_exc()
        return Row("determinism", "adam on digits_mlp, same seed twice", f"error: {error}"[:80], None, "n/a", False)
    same = sinks[0].numbers() == sinks[1].numbers() and all(s["state"] == "completed" for s in summaries)
    records = len(sinks[0].evals) + len(sinks[0].steps)
    what = f"adam on digits_mlp, same seed twice, deterministic algorithms, {epochs} epoch{'s' * (epochs > 1)}"
    return Row("determinism", what,
               f"{records} records {'identical' if same else 'DIFFER'}", seconds, memory, same)


def check_vectorized(device: Device, epochs: int, lrs: int, seeds: int) -> list[Row]:
    lr_values = ",".join(f"{10 ** (-3 + 3 * i / max(lrs - 1, 1)):.6g}" for i in range(lrs))
    grid = specs(["problem=digits_mlp", "optimizer=sgd", f"optimizer.lr={lr_values}",
                  f"seed={','.join(str(s) for s in range(seeds))}", f"device={device.name}", f"train.epochs={epochs}"])
    detail = f"{len(grid)} digits_mlp runs (sgd, {lrs} lrs x {seeds} seeds), {epochs} epochs"
    reason = can_vectorize(grid)
    if reason is not None:
        return [Row("vectorised", detail, f"cannot vectorise: {reason}"[:80], None, "n/a", False)]
    try:
        alone, alone_seconds, alone_memory = timed(device, lambda: [train(spec, MemorySink()) for spec in grid])
        with tempfile.TemporaryDirectory(prefix="gpu-check-") as folder:
            items = [{"spec": spec, "run_dir": str(Path(folder) / run_id(spec))} for spec in grid]
            grouped, group_seconds, group_memory = timed(device, lambda: run_group(items))
            grouped = [RunFolder(item["run_dir"]).summary() or {} for item in items]
    except Exception as error:
        traceback.print_exc()
        return [Row("vectorised", detail, f"error: {type(error).__name__}: {error}"[:80], None, "n/a", False)]
    differences = []
    for one, other in zip(alone, grouped, strict=True):
        a, b = final_losses(one).get("valid_loss", math.nan), final_losses(other).get("valid_loss", math.nan)
        differences.append(abs(a - b))
    completed = all(s.get("state") == "completed" for s in [*alone, *grouped])
    finite = all(math.isfinite(d) for d in differences)
    worst = max(differences) if differences else math.nan
    alone_rate, group_rate = 3600 * len(grid) / alone_seconds, 3600 * len(grid) / group_seconds
    return [
        Row("unvectorised", f"{detail}, train() one after the other", f"{alone_rate:,.0f} runs/hour", alone_seconds,
            alone_memory, completed),
        Row("vectorised", f"{detail}, one group (run_group)", f"{group_rate:,.0f} runs/hour; "
            f"{group_rate / alone_rate:.1f}x unvectorised", group_seconds, group_memory, completed),
        Row("vectorised = unvectorised", "max |final valid_loss difference| over the runs",
            f"{worst:.3g}" + ("" if finite else " (a run has no finite valid loss)"), None, "n/a",
            completed and finite),
    ]


def table(rows: list[Row], device: str) -> Table:
    out = Table(title=f"optbench GPU check ({device})")
    for name, justify in (("check", "left"), ("what", "left"), ("result", "left"), ("seconds", "right"),
                          ("peak memory", "right"), ("status", "left")):
        out.add_column(name, justify=justify)  # type: ignore[arg-type]
    for row in rows:
        out.add_row(row.check, row.detail, row.result, "" if row.seconds is None else f"{row.seconds:.2f}",
                    row.memory, "[green]PASS[/green]" if row.passed else "[red]FAIL[/red]")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda", help="where the runs train (default cuda)")
    parser.add_argument("--quick", action="store_true", help="smaller sizes (1 epoch, an 8-run grid): a CPU check")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        print("gpu_check: --device cuda was asked, but torch sees no CUDA device (torch.cuda.is_available() is "
              f"false; torch {torch.__version__}, built for CUDA {torch.version.cuda}).", file=sys.stderr)
        return 2
    device = Device(args.device)
    epochs = 1 if args.quick else 2
    lrs, seeds = (4, 2) if args.quick else (4, 4)
    where = args.device if not device.cuda else f"cuda: {torch.cuda.get_device_name()}"
    print(f"optbench GPU check on {where}, torch {torch.__version__}{' (quick)' if args.quick else ''}", flush=True)
    rows = check_families(device, epochs)
    rows.append(check_determinism(device, epochs))
    rows.extend(check_vectorized(device, 2, lrs, seeds))
    Console(width=200).print(table(rows, where))
    failed = [row.check for row in rows if not row.passed]
    print(f"{len(rows) - len(failed)} of {len(rows)} checks passed" + (f"; failed: {', '.join(failed)}" if failed
                                                                         else "."))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
