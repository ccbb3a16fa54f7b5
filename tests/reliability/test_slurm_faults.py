"""Faults on the real Slurm cluster: what happens, what status says, what resume does, and that nothing is lost.

Every test launches a small sweep of long-enough runs (rosenbrock, ~8,000 steps
per second, an epoch checkpoint every 2.5 s), injects one fault while it runs,
and checks that every run ends completed with metrics bitwise equal to an
uninterrupted run (except wall-clock ``time``), that runs which had completed
before the fault were neither lost nor run again (their files are unchanged),
and what the user saw on the way.

The daemons are stopped and started by the pid files of ``scripts/cluster-up.sh``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from components import require_slurm
from slurm.slurm_helpers import sacct, wait_for, wait_until_final
from starlette.testclient import TestClient

from jobs.entry import run as run_here
from jobs.run_folder import METRICS, SUMMARY, RunFolder
from orchestrator import slurmctl
from orchestrator.dashboard import create_app
from orchestrator.store import ResultsStore

OPTBENCH = str(Path(sys.executable).parent / "optbench")
# 4 epochs × 20,000 steps: about 10 s a run; heartbeats every 0.1 s.
RUN = ("problem=rosenbrock", "optimizer.lr=0.0005", "problem.steps_per_epoch=20000", "train.epochs=4",
       "logger=disabled", "logger.heartbeat_seconds=0.1")


@pytest.fixture(autouse=True)
def cluster():
    require_slurm()
    slurmctl.cluster_info.cache_clear()
    yield
    _ensure_daemons()
    slurmctl.cluster_info.cache_clear()


@pytest.fixture
def launch(optbench, results):
    def run(*overrides: str) -> tuple[int, str, Path]:
        status, out, err = optbench("launch", "launcher=slurm", "launcher.cpus_per_task=1", *RUN, *overrides,
                                    "--results", results)
        assert status == 0, err
        (sweep_dir,) = (results / "sweeps").iterdir()
        return status, out, sweep_dir

    return run


def _numbers(folder: RunFolder) -> list[dict]:
    return [{k: v for k, v in m.items() if k != "time"} for m in folder.metrics()]


def _fingerprint(folder: RunFolder) -> tuple[bytes, bytes, int]:
    """A completed run's result files and status mtime: unchanged means not run again."""
    return (folder.path(METRICS).read_bytes(), folder.path(SUMMARY).read_bytes(),
            folder.path("status.json").stat().st_mtime_ns)


def _assert_as_if_uninterrupted(results: Path, sweep_dir: Path, run_id: str, tmp_path: Path) -> None:
    spec = next(r["spec"] for r in ResultsStore(results).sweep_runs(sweep_dir) if r["run_id"] == run_id)
    reference = RunFolder(tmp_path / "reference" / run_id)
    run_here(spec, reference.root)
    assert _numbers(RunFolder(results / "runs" / run_id)) == _numbers(reference)


def _running_past_first_epoch(views) -> list:
    return [v for v in views if v.state == "running" and (v.status.get("progress") or {}).get("epoch", 0) >= 1
            and v.status["progress"].get("step", 0) < 60_000]


def _pid(pidfile: str) -> int | None:
    try:
        return int(Path(pidfile).read_text())
    except (FileNotFoundError, ValueError):
        return None


def _stop(pidfile: str) -> None:
    pid = _pid(pidfile)
    assert pid is not None, f"{pidfile} is missing: was the cluster started by scripts/cluster-up.sh?"
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    raise AssertionError(f"the daemon of {pidfile} did not stop")


def _alive(pidfile: str) -> bool:
    pid = _pid(pidfile)
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def _ensure_daemons() -> None:
    """Start slurmctld and the slurmds again if a test stopped them (also after a failed assertion)."""
    if not _alive("/run/slurmctld.pid"):
        subprocess.run(["/usr/sbin/slurmctld"], check=True)
    for node in ("n1", "n2"):
        if not _alive(f"/run/slurmd-{node}.pid"):
            subprocess.run(["/usr/sbin/slurmd", "-N", node], check=True)
    deadline = time.monotonic() + 60
    while sum(map(int, subprocess.run(["sinfo", "-h", "-t", "idle,mix,alloc", "-o", "%D"], capture_output=True,
                                      text=True).stdout.split())) != 2:
        if time.monotonic() > deadline:
            raise AssertionError("the cluster did not come back: " + subprocess.run(
                ["sinfo"], capture_output=True, text=True).stdout)
        time.sleep(0.5)


def test_a_job_killed_with_sigkill_fails_and_resume_continues_it_from_its_checkpoint(launch, optbench, results,
                                                                                      tmp_path):
    _, _, sweep_dir = launch("seed=1,2,3")
    victim = _running_past_first_epoch(wait_for(results, sweep_dir, _running_past_first_epoch, timeout=120))[0]
    os.kill(victim.status["pid"], signal.SIGKILL)

    views = {v.run_id: v for v in wait_until_final(results, sweep_dir, timeout=180)}
    assert views[victim.run_id].state == "failed"
    assert f"Slurm reports FAILED for job {victim.job_id}" in views[victim.run_id].status["error"]
    others = [r for r in views if r != victim.run_id]
    assert all(views[r].state == "completed" for r in others)
    code, out, _ = optbench("status", sweep_dir.name, "--results", results)
    assert code == 0 and "1 failed" in out and "2 completed" in out
    untouched = {r: _fingerprint(RunFolder(results / "runs" / r)) for r in others}

    code, out, _ = optbench("resume", sweep_dir.name, "--results", results)
    assert code == 0 and "2 already done" in out and "1 to start" in out
    views = {v.run_id: v for v in wait_until_final(results, sweep_dir, timeout=180)}
    assert views[victim.run_id].state == "completed"
    status = views[victim.run_id].status
    assert status["attempts"] == 2 and status["resumed_from_epoch"] >= 1
    assert {r: _fingerprint(RunFolder(results / "runs" / r)) for r in others} == untouched
    _assert_as_if_uninterrupted(results, sweep_dir, victim.run_id, tmp_path)


def test_a_cancelled_job_is_cancelled_and_resume_continues_it(launch, optbench, results, tmp_path):
    _, _, sweep_dir = launch("seed=1,2")
    victim = _running_past_first_epoch(wait_for(results, sweep_dir, _running_past_first_epoch, timeout=120))[0]
    subprocess.run(["scancel", victim.job_id], check=True)

    views = {v.run_id: v for v in wait_until_final(results, sweep_dir, timeout=180)}
    assert views[victim.run_id].state == "cancelled"
    assert sacct(victim.job_id)[victim.job_id] == "CANCELLED"
    (other,) = [r for r in views if r != victim.run_id]
    assert views[other].state == "completed"
    untouched = _fingerprint(RunFolder(results / "runs" / other))

    code, out, _ = optbench("resume", sweep_dir.name, "--results", results)
    assert code == 0 and "1 to start" in out
    views = {v.run_id: v for v in wait_until_final(results, sweep_dir, timeout=180)}
    assert views[victim.run_id].state == "completed" and views[victim.run_id].status["resumed_from_epoch"] >= 1
    assert _fingerprint(RunFolder(results / "runs" / other)) == untouched
    _assert_as_if_uninterrupted(results, sweep_dir, victim.run_id, tmp_path)


def test_a_node_daemon_stopped_and_started_again_loses_nothing(launch, optbench, results, tmp_path):
    """slurmd of n2 stops while runs are queued and running; jobs already running finish, the rest wait or fail
    over; after it is back (and a resume for whatever Slurm gave up on), every run is complete and none ran twice."""
    _, _, sweep_dir = launch("seed=range(6)", "launcher.array_parallelism=6")
    wait_for(results, sweep_dir, lambda views: any(v.state == "running" for v in views), timeout=120)
    _stop("/run/slurmd-n2.pid")
    time.sleep(3)
    code, out, _ = optbench("status", sweep_dir.name, "--results", results)
    assert code == 0 and "6 runs" in out
    subprocess.run(["/usr/sbin/slurmd", "-N", "n2"], check=True)

    views = wait_until_final(results, sweep_dir, timeout=300)
    done_before = {v.run_id: _fingerprint(RunFolder(results / "runs" / v.run_id))
                   for v in views if v.state == "completed"}
    if len(done_before) < len(views):
        code, _, _ = optbench("resume", sweep_dir.name, "--results", results)
        assert code == 0
        views = wait_until_final(results, sweep_dir, timeout=300)
    assert [v.state for v in views] == ["completed"] * 6
    assert {r: _fingerprint(RunFolder(results / "runs" / r)) for r in done_before} == done_before
    assert all(v.status["attempts"] <= 2 for v in views)
    _assert_as_if_uninterrupted(results, sweep_dir, views[0].run_id, tmp_path)


def test_a_controller_restart_degrades_status_to_one_sentence_and_it_recovers(launch, optbench, results):
    _, _, sweep_dir = launch("seed=1,2")
    wait_for(results, sweep_dir, _running_past_first_epoch, timeout=120)
    _stop("/run/slurmctld.pid")
    slurmctl.cluster_info.cache_clear()

    code, out, _ = optbench("status", sweep_dir.name, "--results", results)
    assert code == 0 and "Slurm does not answer now" in " ".join(out.split()) and "2 runs" in out
    page = TestClient(create_app(ResultsStore(results), refresh_seconds=1)).get(f"/api/sweeps/{sweep_dir.name}")
    assert page.status_code == 200 and "Slurm does not answer now" in page.json()["warning"]
    assert sum(page.json()["counts"].values()) == 2
    code, out, err = optbench("resume", sweep_dir.name, "--results", results)
    message = " ".join(err.split())
    assert code == 2 and message.startswith("optbench: error: Slurm") and message.count(". ") == 0

    subprocess.run(["/usr/sbin/slurmctld"], check=True)
    slurmctl.cluster_info.cache_clear()
    views = wait_until_final(results, sweep_dir, timeout=300)
    assert [v.state for v in views] == ["completed", "completed"]
    assert all(v.status["attempts"] == 1 for v in views)
    code, out, _ = optbench("status", sweep_dir.name, "--results", results)
    assert code == 0 and "Slurm does not answer" not in out and "2 completed" in out


def test_a_job_preempted_twice_in_a_row_resumes_bitwise(launch, results, tmp_path):
    import submitit

    _, _, sweep_dir = launch("seed=7")
    (view,) = wait_for(results, sweep_dir, lambda views: bool(_running_past_first_epoch(views)), timeout=120)
    job = submitit.SlurmJob(folder=sweep_dir / "slurm", job_id=view.job_id)
    job._interrupt()
    (view,) = wait_for(results, sweep_dir, lambda views: views[0].status.get("attempts") == 2
                       and bool(_running_past_first_epoch(views)), timeout=180)
    job._interrupt()

    (view,) = wait_until_final(results, sweep_dir, timeout=300)
    assert view.state == "completed" and view.status["attempts"] == 3 and view.status["resumed_from_epoch"] >= 1
    assert sacct(view.job_id)[view.job_id] == "COMPLETED"
    _assert_as_if_uninterrupted(results, sweep_dir, view.run_id, tmp_path)
