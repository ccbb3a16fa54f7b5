"""The job entry point: one run spec, one run folder, one outcome.

``run()`` is what the control plane submits (pickled by submitit). From a
shell, ``python -m jobs.entry RUN_DIR`` reruns the spec stored in a run
folder, e.g. by hand inside a container. A failure marks the run
``failed`` with the end of its traceback and re-raises, so the process
exits non-zero and the scheduler never reports a failed run as completed.
"""

from __future__ import annotations

import argparse
import os
import time
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from jobs.run_folder import METRICS, PROVENANCE, SPEC, STEPS, SUMMARY, RunFolder, write_json
from jobs.sinks import WANDB_MODES, open_sinks
from jobs.spec import run_id as compute_run_id
from jobs.spec import validate_spec

DEFAULT_RUNTIME: dict[str, Any] = {"logger": {"mode": "disabled"}, "threads": None}


def run(spec: Mapping[str, Any], run_dir: str | Path, runtime: Mapping[str, Any] | None = None) -> dict[str, Any]:
    runtime = {**DEFAULT_RUNTIME, **(runtime or {})}
    folder = RunFolder(run_dir)
    folder.root.mkdir(parents=True, exist_ok=True)
    _keep_previous_attempt(folder)
    folder.set_state("running", job_id=_job_id(), error=None)
    sinks = None
    try:
        import torch

        from jobs import provenance
        from jobs.train import train

        if runtime["threads"]:
            torch.set_num_threads(int(runtime["threads"]))
        write_json(folder.path(PROVENANCE), provenance.collect(runtime["threads"]))
        sinks = open_sinks(folder.root, folder.run_id, spec, runtime["logger"])
        summary = train(spec, sinks)
        summary["run_id"] = folder.run_id
        sinks.close(summary, exit_code=0)
        write_json(folder.path(SUMMARY), summary)
        folder.set_state(summary["state"])
        return summary
    except BaseException as error:
        if sinks is not None:
            sinks.close({"state": "failed"}, exit_code=1)
        tail = "".join(traceback.format_exception(error)).splitlines()[-20:]
        folder.set_state("failed", error="\n".join(tail))
        raise


def _job_id() -> str | None:
    """The scheduler's id for this job, when a scheduler started it."""
    try:
        import submitit

        return str(submitit.JobEnvironment().job_id)
    except Exception:  # not started by submitit: a rerun by hand
        return os.environ.get("SLURM_JOB_ID")


def _keep_previous_attempt(folder: RunFolder) -> None:
    """A new attempt starts clean; what an earlier attempt wrote is kept beside it, never lost."""
    leftovers = [folder.path(name) for name in (METRICS, STEPS, SUMMARY) if folder.path(name).exists()]
    if not leftovers:
        return
    keep = folder.path(f"attempt-{int(time.time() * 1000)}")
    keep.mkdir()
    for path in leftovers:
        path.rename(keep / path.name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.entry", description="Run the spec stored in a run folder.")
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--wandb", choices=WANDB_MODES, default="disabled", help="W&B mode (default: disabled)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args(argv)
    spec_path = args.run_dir / SPEC
    if not spec_path.is_file():
        parser.error(f"{spec_path} does not exist; pass a run folder written by 'optbench launch'.")
    spec = validate_spec(yaml.safe_load(spec_path.read_text()))
    if compute_run_id(spec) != args.run_dir.name:
        parser.error(f"{spec_path} does not match its folder name; the run folder was edited or renamed.")
    summary = run(spec, args.run_dir, {"logger": {"mode": args.wandb}, "threads": args.threads})
    print(f"{args.run_dir.name}: {summary['state']} after {summary['steps']} steps")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
