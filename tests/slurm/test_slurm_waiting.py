"""Why queued runs wait, as status and the dashboard show it: held, behind a dependency, behind another job for
resources, throttled by array_parallelism; and in red, a run that can never start (its partition's time limit
lowered after submission), which resume does not submit again.

Everything runs in a partition of the test's own over n1 (PriorityTier 10, so the scheduler looks at its jobs
first): a blocker job holds n1's two GPUs and one CPU, the first task of a throttled array the other CPU. All of
it is cancelled and removed at the end.
"""

from __future__ import annotations

import re
import subprocess
import time

from rich.text import Text
from slurm_helpers import scratch_partition, wait_for
from starlette.testclient import TestClient

from orchestrator import slurmctl
from orchestrator.dashboard import create_app
from orchestrator.ledger import Ledger
from orchestrator.monitor import sweep_progress
from orchestrator.status import render
from orchestrator.store import ResultsStore

TINY = ("problem=rosenbrock", "optimizer.lr=0.001", "problem.steps_per_epoch=20", "logger=disabled",
        "launcher=slurm", "launcher.cpus_per_task=1", "launcher.time_min=5")
LONG = "train.epochs=100000"  # minutes of work (a learning rate that does not diverge): ends by being cancelled


def _sbatch(*options: str) -> str:
    """Submit a plain job whose output goes nowhere (not a slurm-N.out in the working directory)."""
    return subprocess.run(["sbatch", "--parsable", "--output=/dev/null", *options], capture_output=True, text=True,
                          check=True).stdout.strip().split(";")[0]


def _wait_running(job_id: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while subprocess.run(["squeue", "-h", "-o", "%T", "-j", job_id], capture_output=True,
                         text=True).stdout.strip() != "RUNNING":
        assert time.monotonic() < deadline, f"blocker {job_id} did not start"
        time.sleep(0.5)


def _line(out: str, run_id: str) -> str:
    return " ".join(next(line for line in out.splitlines() if line.strip().startswith(run_id)).split())


def test_status_says_why_runs_wait_and_flags_those_that_never_start(optbench, results):
    with scratch_partition(nodes="n1", MaxTime=60, PriorityTier=10) as partition:
        blocker = _sbatch("-p", partition, "--gres=gpu:2", "-c", "1", "-t", "3", "-J", "optb-blocker",
                          "--wrap", "sleep 170")
        _wait_running(blocker)

        def launch(*overrides: str):
            status, out, err = optbench("launch", *TINY, f"launcher.partition={partition}", *overrides,
                                        "--results", results)
            assert status == 0, err
            return ResultsStore(results).sweep_dir(re.search(r"Sweep (\S+):", out).group(1))

        throttled = launch(LONG, "seed=range(2)", "launcher.array_parallelism=1")
        wait_for(results, throttled, lambda views: [v.reason for v in views] == ["", "JobArrayTaskLimit"], timeout=90)
        resources = launch("launcher.gpus_per_node=2")
        dependency = launch(f"+launcher.additional_parameters.dependency=afterany:{blocker}", "seed=2")
        held = launch(f"+launcher.additional_parameters.dependency=afterany:{blocker}", "seed=3")
        held_job = Ledger(held).read()[0].popitem()[1].job_id
        subprocess.run(["scontrol", "hold", held_job], check=True)

        code, out, _ = optbench("status", throttled.name, "--results", results)
        second = ResultsStore(results).sweep_runs(throttled)[1]["run_id"]
        assert code == 0 and "(throttled by launcher.array_parallelism)" in _line(out, second)
        assert "never" not in out and "held" not in out

        (view,) = wait_for(results, resources, lambda views: views[0].reason == "Resources", timeout=60)
        code, out, _ = optbench("status", resources.name, "--results", results)
        assert code == 0 and "(waiting for free resources)" in _line(out, view.run_id)

        (view,) = wait_for(results, dependency, lambda views: views[0].reason == "Dependency", timeout=60)
        code, out, _ = optbench("status", dependency.name, "--results", results)
        assert "(waiting for the jobs it depends on)" in _line(out, view.run_id)

        (view,) = wait_for(results, held, lambda views: views[0].reason.startswith("JobHeld"), timeout=60)
        code, out, _ = optbench("status", held.name, "--results", results)
        assert re.search(r"\(held( by an administrator)?\)", _line(out, view.run_id))
        assert f"scontrol release {held_job} lets them start ({view.run_id})." in " ".join(out.split())

        # The partition's time limit drops below the runs' 5 minutes: they can never start now.
        subprocess.run(["scontrol", "update", f"PartitionName={partition}", "MaxTime=1"], check=True)
        wait_for(results, resources, lambda views: views[0].reason == "PartitionTimeLimit", timeout=60)
        progress = sweep_progress(ResultsStore(results), resources)
        notes = [part for part in render(progress, None).renderables
                 if isinstance(part, Text) and "will never start" in part.plain]
        assert [note.style for note in notes] == ["bold red"]
        assert (f"1 run will never start: Slurm says PartitionTimeLimit (its time limit is over the partition's); "
                f"cancel with optbench cancel {resources.name} and launch again with a lower launcher.time_min "
                f"({progress.runs[0].run_id}).") == notes[0].plain
        page = TestClient(create_app(ResultsStore(results), refresh_seconds=5)).get(f"/api/sweeps/{resources.name}")
        assert page.json()["runs"][0]["waiting"]["kind"] == "never"
        assert any(note["kind"] == "never" for note in page.json()["notes"])

        # Cancelled, the runs are not submitted again while the request can never run.
        code, _, _ = optbench("cancel", resources.name, "--results", results)
        submitted = Ledger(resources).read()[0]
        slurmctl.cluster_info.cache_clear()  # what a new optbench process knows: the lowered limit
        code, out, err = optbench("resume", resources.name, "--results", results)
        assert code == 2 and "launcher.time_min=5 exceeds partition" in " ".join(err.split())
        assert Ledger(resources).read()[0] == submitted
