"""What a run ran with: code, packages, host, scheduler, container."""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import sys
from collections.abc import Mapping
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

from jobs import plugins

SOURCE_ROOT = Path(__file__).resolve().parents[1]
#: The only environment variables a run records: any other may hold a secret (an API key, a token).
SCHEDULER_VARIABLES = ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "SLURM_JOB_NODELIST",
                       "SLURMD_NODENAME", "SLURM_NNODES", "SLURM_NTASKS", "SLURM_PROCID", "SLURM_RESTART_COUNT",
                       "CUDA_VISIBLE_DEVICES", "SUBMITIT_JOB_ID")
#: Set in optbench images: the JSON file that says which commit the image was built from.
BUILD_INFO_VARIABLE = "OPTBENCH_BUILD_INFO"


@cache  # a pack of runs shares one process: ask git once
def code_version(root: Path = SOURCE_ROOT) -> dict[str, Any]:
    """Commit and dirty flag of a source folder (``source``: where that was read), nulls when unknown.

    A git checkout answers for itself, dirty when a tracked file below
    ``root`` has changed. optbench's own code answers from git only when it
    is a source tree (an installed copy may sit in someone else's
    repository); installed inside an optbench image, it answers with the
    commit the image was built from.
    """
    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    source_tree = root != SOURCE_ROOT or (root / "pyproject.toml").is_file()
    commit = git("rev-parse", "HEAD") if source_tree else None
    if commit:
        return {"commit": commit, "dirty": bool(git("status", "--porcelain", "--untracked-files=no", "--", ".")),
                "source": "git"}
    build_info = os.environ.get(BUILD_INFO_VARIABLE)
    if build_info and Path(build_info).is_file():
        built = json.loads(Path(build_info).read_text())
        return {"commit": built.get("commit"), "dirty": built.get("dirty"), "source": "image"}
    return {"commit": None, "dirty": None, "source": None}


@cache
def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def current_container() -> str | None:
    """The image this process runs in, as the container runtime tells it; None on the host."""
    return os.environ.get("APPTAINER_CONTAINER") or os.environ.get("SINGULARITY_CONTAINER")


def collect(runtime: Mapping[str, Any], spec: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Provenance of a run of ``spec`` started with ``runtime`` (see :mod:`jobs.entry`).

    ``plugins``: where the code of each plugin in the spec came from, as this
    process imports it (see :func:`jobs.plugins.describe`).

    ``runtime["container"]`` is what the launcher checked about the image
    (path, sha256, runtime), if any. In development mode the source tree is
    bound into the image, which has no git: the launcher read its commit on
    the host and passes it there.
    """
    import torch

    threads, container = runtime.get("threads"), runtime.get("container")
    code = code_version()
    if container and container.get("code") and code["source"] != "git":
        code = {**container["code"], "source": "launcher"}
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "code": code,
        "python": platform.python_version(),
        "executable": sys.executable,
        "packages": {name: _version(name) for name in ("optbench", "torch", "numpy", "wandb", "submitit",
                                                       "schedulefree", "pytorch-optimizer", "mnist1d")},
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "platform": platform.platform(),
        "gpu": gpu,
        "torch_threads": threads if threads is not None else torch.get_num_threads(),
        "scheduler": {k: os.environ[k] for k in SCHEDULER_VARIABLES if k in os.environ},
        "container": _container_record(container),
        "data_dir": runtime.get("data_dir"),
        "plugins": [describe_plugin(plugins.load(kind, config["target"])) for kind, config in
                    plugins.sections(spec or {})],
    }


def describe_plugin(plugin: plugins.Plugin) -> dict[str, Any]:
    """What a run's provenance records of a plugin: where its code came from, as this process sees it."""
    distribution = plugins.distribution_of(plugin.cls)
    folder, _ = plugins.code_files(plugin.cls)
    record: dict[str, Any] = {
        "kind": plugin.kind, "target": plugin.target, "code_hash": plugin.code_hash, "folder": str(folder),
        "distribution": distribution.metadata["Name"] if distribution else None,
        "version": distribution.version if distribution else None,
        "editable": plugins.editable(distribution) if distribution else None,
    }
    root = plugins.source_root(plugin.cls)
    if root is not None:
        version = code_version(root)
        record.update(source=str(root), git={"commit": version["commit"], "dirty": version["dirty"]})
    return record


def _container_record(container: Mapping[str, Any] | None) -> dict[str, Any] | None:
    inside = current_container()
    if container is None:
        return None if inside is None else {"image": inside}
    keep = ("runtime", "runtime_version", "image", "sha256", "dev", "nv", "python", "command", "plugin_paths")
    return {**{key: container.get(key) for key in keep}, "running_in": inside}
