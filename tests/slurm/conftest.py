"""Integration tests against the real Slurm that ``make cluster-up`` starts (2 nodes × 2 fake GPUs).

Without a reachable Slurm they fail, saying how to start one.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from components import require_slurm

from orchestrator import slurmctl


@pytest.fixture(scope="session")
def slurm_cluster() -> None:
    require_slurm()


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
