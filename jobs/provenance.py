"""What a run ran with: code, packages, host, scheduler, container."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

SOURCE_ROOT = Path(__file__).resolve().parents[1]
SCHEDULER_VARIABLES = ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "SLURM_JOB_NODELIST",
                       "SLURMD_NODENAME", "SLURM_NNODES", "SLURM_NTASKS", "SLURM_PROCID", "SLURM_RESTART_COUNT",
                       "CUDA_VISIBLE_DEVICES", "SUBMITIT_JOB_ID")


@cache  # a pack of runs shares one process: ask git once
def code_version(root: Path = SOURCE_ROOT) -> dict[str, Any]:
    """Commit and dirty flag of the source tree, or nulls when it is not a git checkout."""
    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"commit": commit, "dirty": None if status is None else bool(status)}


@cache
def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def collect(threads: int | None = None) -> dict[str, Any]:
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "code": code_version(),
        "python": platform.python_version(),
        "executable": sys.executable,
        "packages": {name: _version(name) for name in ("optbench", "torch", "numpy", "wandb", "submitit")},
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "platform": platform.platform(),
        "gpu": gpu,
        "torch_threads": threads if threads is not None else torch.get_num_threads(),
        "scheduler": {k: os.environ[k] for k in SCHEDULER_VARIABLES if k in os.environ},
        "container": os.environ.get("APPTAINER_CONTAINER") or os.environ.get("SINGULARITY_CONTAINER"),
    }
