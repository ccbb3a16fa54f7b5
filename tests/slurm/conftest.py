"""Integration tests against the real Slurm that ``make cluster-up`` starts (2 nodes × 2 fake GPUs).

Without a reachable Slurm these tests are skipped, except in CI (``CI=true``)
where a missing Slurm is a failure.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator import slurmctl


def _slurm_answers() -> bool:
    if shutil.which("sinfo") is None:
        return False
    return subprocess.run(["sinfo", "-h"], capture_output=True, timeout=30).returncode == 0


@pytest.fixture(scope="session")
def slurm_cluster() -> None:
    if not _slurm_answers():
        message = "no Slurm answers here; start one with make cluster-up"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI needs Slurm: {message}")
        pytest.skip(message)


@pytest.fixture(autouse=True)
def _fresh_cluster_facts(slurm_cluster):
    """cluster_info() is cached per process; a test that changes the environment must not see stale facts."""
    slurmctl.cluster_info.cache_clear()
    yield
    slurmctl.cluster_info.cache_clear()


@pytest.fixture
def launch(optbench, results) -> Callable[..., tuple[int, str, str, Path | None]]:
    """``optbench launch OVERRIDES launcher=slurm`` with tiny, fast runs; returns status, out, err, sweep dir."""

    def run(*overrides: str) -> tuple[int, str, str, Path | None]:
        status, out, err = optbench("launch", "launcher=slurm", "launcher.cpus_per_task=1", *overrides,
                                    "--results", results)
        sweeps = sorted((results / "sweeps").glob("*")) if (results / "sweeps").is_dir() else []
        return status, out, err, (sweeps[-1] if sweeps else None)

    return run
