"""The disk filling up while a run writes: a real tmpfs of 2 MiB holds the run store (``results/runs``)."""

from __future__ import annotations

import errno
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import yaml
from jobs_support import numbers, spec_for

from jobs import checkpoint
from jobs.entry import run
from jobs.run_folder import STEPS, append_jsonl, read_jsonl
from jobs.spec import run_id
from orchestrator.store import ResultsStore
from orchestrator.sweep import expand

NET = ("problem=digits_mlp", "problem.hidden=8", "problem.dropout=0.3", "train.log_every=1")
DIGITS = (*NET, "train.epochs=4")
KIB = 1024


@pytest.fixture
def small_disk(results) -> Iterator[Path]:
    """The run store, ``results/runs``, on a 2 MiB tmpfs (mounting needs root); unmounted at the end."""
    mount = ResultsStore(results).runs_dir
    mount.mkdir(parents=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True,
                             text=True)
    if mounted.returncode != 0:
        pytest.fail(f"cannot mount a tmpfs to fill ({mounted.stderr.strip()}); these tests need root, as make test "
                    "has for Slurm")
    yield mount
    subprocess.run(["umount", "--lazy", str(mount)], check=True)


def fill(disk: Path, leave: int) -> Path:
    """A ballast file that leaves ``leave`` bytes free on ``disk``."""
    stats = os.statvfs(disk)
    ballast = disk / ".ballast"
    ballast.write_bytes(bytes(stats.f_bavail * stats.f_frsize - leave))
    return ballast


def assert_every_file_reads(folder: Path) -> None:
    """What a killed or failed job leaves must read: whole JSON, whole lines, loadable checkpoints, no temp files."""
    for path in folder.rglob("*"):
        if path.suffix == ".jsonl":
            list(read_jsonl(path))
        elif path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix == ".yaml":
            yaml.safe_load(path.read_text())
        elif path.suffix == ".pt":
            assert torch.load(path, weights_only=True)["run_id"] == folder.name
        assert not path.name.endswith(".tmp"), f"a failed atomic write left {path}"


def test_a_run_that_fills_the_disk_fails_saying_so_and_resumes_exactly(tmp_path, results, small_disk):
    """With room for two checkpoints but not a third, the run ends ``failed`` with 'No space left on device', every
    file it left reads; once there is room it resumes from its checkpoint to the metrics of an uninterrupted run."""
    spec = spec_for(*DIGITS)
    unbroken = run(spec, tmp_path / "unbroken")
    folder = ResultsStore(results).run_folder(run_id(spec))
    ballast = fill(small_disk, leave=96 * KIB)

    with pytest.raises(OSError) as failure:
        run(spec, folder.root)

    assert failure.value.errno == errno.ENOSPC
    status = folder.status()
    assert status["state"] == "failed" and "No space left on device" in status["error"]
    assert_every_file_reads(folder.root)
    checkpointed = checkpoint.load(folder)["epoch"]
    ballast.unlink()
    summary = run(spec, folder.root)
    assert folder.status()["state"] == "completed" and folder.status()["resumed_from_epoch"] == checkpointed >= 1
    assert numbers(folder.root) == numbers(tmp_path / "unbroken")
    assert folder.path(STEPS).read_bytes() == (tmp_path / "unbroken" / STEPS).read_bytes()
    assert summary["final"] == {**unbroken["final"], "time": summary["final"]["time"]}
    assert not list(folder.root.glob("checkpoint*")), "a finished run keeps no checkpoint"


def test_a_job_that_cannot_write_even_its_status_leaves_the_last_whole_one(tmp_path, results, small_disk):
    """A few KB free: the job dies of ENOSPC (so its scheduler sees it fail) before it can record that; status.json
    is the last one written whole, every file reads, and with room again the run completes as an unbroken one."""
    spec = spec_for(*DIGITS)
    run(spec, tmp_path / "unbroken")
    folder = ResultsStore(results).run_folder(run_id(spec))
    folder.set_state("submitted", launcher="local", job_id=None)  # as the launcher leaves it
    ballast = fill(small_disk, leave=8 * KIB)

    with pytest.raises(OSError) as failure:
        run(spec, folder.root)

    assert failure.value.errno == errno.ENOSPC
    status = folder.status()
    assert status["state"] == "running" and status["error"] is None, "the failure itself could not be written"
    assert_every_file_reads(folder.root)
    ballast.unlink()
    run(spec, folder.root)
    assert folder.state == "completed" and numbers(folder.root) == numbers(tmp_path / "unbroken")


def test_an_append_that_runs_out_of_space_adds_no_partial_line(small_disk):
    """A failed append must add nothing: otherwise the next append, once there is room, glues its line onto the
    fragment and the file no longer reads."""
    path = small_disk / "metrics.jsonl"
    append_jsonl(path, [{"epoch": 0, "padding": "x" * 3000}])
    ballast = fill(small_disk, leave=0)
    with pytest.raises(OSError) as failure:
        append_jsonl(path, [{"epoch": 1, "padding": "x" * 3000}])
    assert failure.value.errno == errno.ENOSPC
    ballast.unlink()
    append_jsonl(path, [{"epoch": 2}])
    assert [record["epoch"] for record in read_jsonl(path)] == [0, 2]


def test_the_local_launcher_reports_a_job_that_could_not_record_its_failure(tmp_path, results, small_disk, optbench,
                                                                             job_threads):
    """The run store has room for the launcher's 'submitted' only: the job dies of ENOSPC at its first write and
    cannot record it; the launcher says the run failed and why, status.json stays whole, and with room again
    ``optbench resume`` completes the run as an unbroken one."""
    overrides = [*DIGITS, "launcher=local", f"launcher.threads_per_run={job_threads}", "logger=disabled"]
    sweep = expand(overrides)
    folder = ResultsStore(results).run_folder(sweep.runs[0].run_id)
    ballast = fill(small_disk, leave=4 * KIB)

    code, out, _ = optbench("launch", *overrides, "--results", results)

    assert code == 1 and "Finished: 1 failed." in " ".join(out.split())
    assert "No space left on device" in " ".join(out.split())
    assert folder.state == "submitted", "the job could not record that it ran, nor that it failed"
    assert_every_file_reads(folder.root)
    ballast.unlink()
    code, _, _ = optbench("resume", sweep.sweep_id, "--results", results)
    assert code == 0 and folder.state == "completed"
    run(sweep.runs[0].spec, tmp_path / "unbroken", {"threads": job_threads})
    assert numbers(folder.root) == numbers(tmp_path / "unbroken")
