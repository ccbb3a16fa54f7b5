"""What optbench creates follows the user's umask, and is never world-writable, even with umask 000.

A local sweep (jobs on this Python) and a Slurm sweep (array tasks in the
image) are launched, aggregated and reported under umask 000 and 027; then
every file and folder of the results folder is checked. Links are left out:
a link's own mode means nothing on Linux (W&B links its logs to its cache).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from components import require_slurm
from slurm.slurm_helpers import wait_until_final

from jobs.run_folder import atomic_write_text, current_umask, restrict_umask
from orchestrator import slurmctl

RUNS = ("problem=quadratic_deep", "train.epochs=1", "seed=1,2", "logger=offline")


@pytest.mark.parametrize(("mask", "restricted"), [(0o000, 0o002), (0o002, 0o002), (0o022, 0o022), (0o027, 0o027),
                                                  (0o077, 0o077), (0o070, 0o072)])
def test_restricting_the_umask_only_adds_that_others_may_not_write(mask, restricted, tmp_path):
    old = os.umask(mask)
    try:
        assert restrict_umask() == restricted
        assert current_umask() == restricted
        atomic_write_text(tmp_path / "file", "x")
        (tmp_path / "folder").mkdir()
        assert stat.S_IMODE((tmp_path / "file").stat().st_mode) == 0o666 & ~restricted
        assert stat.S_IMODE((tmp_path / "folder").stat().st_mode) == 0o777 & ~restricted
    finally:
        os.umask(old)


@pytest.fixture(params=[0o000, 0o027], ids=["umask-000", "umask-027"])
def umask(request) -> Iterator[int]:
    """This process's umask for the test; W&B's service, which outlives a run, starts again under it."""
    import wandb

    wandb.teardown()
    old = os.umask(request.param)
    yield request.param
    wandb.teardown()
    os.umask(old)


def entries(root: Path) -> Iterator[tuple[Path, int]]:
    """Every file and folder from ``root`` down, with its permission bits; links are skipped."""
    yield root, stat.S_IMODE(root.lstat().st_mode)
    for folder, folders, files in os.walk(root):
        for name in folders + files:
            path = Path(folder) / name
            mode = path.lstat().st_mode
            if not stat.S_ISLNK(mode):
                yield path, stat.S_IMODE(mode)


def assert_follows_the_umask(results: Path, umask: int, also: frozenset[str] = frozenset()) -> int:
    """No entry is world-writable; under umask 027 none is group-writable or open to others. Returns the count.

    Files of every kind a sweep writes must be among them, and of the kinds ``also`` names (a launcher's own).
    """
    found = list(entries(results))
    assert [f"{oct(mode)} {path}" for path, mode in found if mode & 0o002] == []
    if umask == 0o027:
        assert [f"{oct(mode)} {path}" for path, mode in found if mode & 0o027] == []
    kinds = {path.suffix for path, _ in found}
    assert {".json", ".jsonl", ".yaml", ".wandb", ".err", ".csv", ".html", *also} <= kinds, kinds
    return len(found)


def test_a_local_sweep_and_its_analysis_follow_the_umask(optbench, results, umask):
    status, _, err = optbench("launch", *RUNS, "--results", results)
    assert status == 0, err
    for command in ("aggregate", "report"):
        status, _, err = optbench(command, "adhoc", "--results", results)
        assert status == 0, err
    assert assert_follows_the_umask(results, umask) > 30


def test_a_slurm_sweep_in_the_image_follows_the_umask(optbench, results, cpu_image, umask):
    require_slurm()
    slurmctl.cluster_info.cache_clear()
    status, _, err = optbench("launch", *RUNS, "launcher=slurm", "launcher.cpus_per_task=1", "container=apptainer",
                              f"container.image={cpu_image}", "--results", results)
    assert status == 0, err
    (sweep_dir,) = (results / "sweeps").iterdir()
    views = wait_until_final(results, sweep_dir, timeout=300)
    assert [v.state for v in views] == ["completed", "completed"], [v.status.get("error") for v in views]
    for command in ("aggregate", "report"):
        status, _, err = optbench(command, sweep_dir.name, "--results", results)
        assert status == 0, err
    assert any(path.name.endswith("_log.out") for path, _ in entries(sweep_dir / "slurm"))  # Slurm wrote the logs
    assert assert_follows_the_umask(results, umask, frozenset({".pkl"})) > 30  # submitit's pickles too
