"""Preemption and time limits requeue and resume bitwise; one run spans two nodes, data-parallel."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
import submitit
from slurm_helpers import sacct, wait_for, wait_until_final

from jobs.entry import run as run_here
from jobs.run_folder import RunFolder
from orchestrator.store import ResultsStore

README = Path(__file__).resolve().parents[2] / "README.md"


def _metrics(folder: RunFolder) -> list[dict]:
    return [{k: v for k, v in m.items() if k != "time"} for m in folder.metrics()]


@pytest.mark.parametrize("timeout", [False, True], ids=["preempted", "time-limit"])
def test_an_interrupted_run_is_requeued_and_resumes_bitwise(launch, results, tmp_path, timeout):
    # Dropout makes the result depend on the RNG state that the checkpoint must restore.
    status, _, _, sweep_dir = launch("problem=digits_mlp", "problem.dropout=0.2", "train.batch_size=8",
                                     "train.epochs=40", "optimizer=sgd", "optimizer.momentum=0.9",
                                     "schedule=step", "logger=disabled")
    assert status == 0
    (view,) = wait_for(results, sweep_dir, lambda views: views[0].status.get("progress", {}).get("epoch", 0) >= 3)
    submitit.SlurmJob(folder=sweep_dir / "slurm", job_id=view.job_id)._interrupt(timeout=timeout)

    (view,) = wait_until_final(results, sweep_dir, timeout=300)
    assert view.state == "completed"
    assert view.status["attempts"] == 2 and view.status["resumed_from_epoch"] >= 1
    assert sacct(view.job_id)[view.job_id] == "COMPLETED"

    spec = ResultsStore(results).sweep_runs(sweep_dir)[0]["spec"]
    run_here(spec, tmp_path / "uninterrupted" / view.run_id)
    interrupted = RunFolder(results / "runs" / view.run_id)
    assert _metrics(interrupted) == _metrics(RunFolder(tmp_path / "uninterrupted" / view.run_id))
    assert [m["epoch"] for m in interrupted.metrics()] == list(range(41))


def test_one_run_over_two_nodes_matches_one_process(launch, results, tmp_path):
    common = ("problem=quadratic_deep", "precision=float64", "train.epochs=3", "optimizer.lr=0.01",
              "logger=disabled")
    status, _, _, sweep_dir = launch(*common, "launcher.nodes=2", "launcher.tasks_per_node=2")
    assert status == 0
    (view,) = wait_until_final(results, sweep_dir)
    assert view.state == "completed", view.status.get("error")
    provenance = json.loads((results / "runs" / view.run_id / "provenance.json").read_text())
    assert provenance["scheduler"]["SLURM_NTASKS"] == "4" and provenance["scheduler"]["SLURM_NNODES"] == "2"

    spec = ResultsStore(results).sweep_runs(sweep_dir)[0]["spec"]
    run_here(spec, tmp_path / "single" / view.run_id)
    parallel = RunFolder(results / "runs" / view.run_id).metrics()
    single = RunFolder(tmp_path / "single" / view.run_id).metrics()
    assert [m["epoch"] for m in parallel] == [0, 1, 2, 3]  # rank 0 alone wrote the metrics
    for p, s in zip(parallel, single, strict=True):
        for key in ("train_loss", "valid_loss", "test_loss"):
            assert p[key] == pytest.approx(s[key], rel=1e-10), key


def test_the_readme_multi_node_command_runs_as_written(optbench, results):
    """As a new user copies it: no launcher.cpus_per_task, so it takes what the 2-CPU nodes hold per rank."""
    (command,) = [line for line in README.read_text().splitlines()
                  if line.startswith("optbench launch") and "launcher.nodes=2" in line]
    status, out, err = optbench(*shlex.split(command)[1:], "--results", results)
    assert status == 0, err
    sweep_dir = ResultsStore(results).sweep_dir(re.search(r"Sweep (\S+):", out).group(1))
    (view,) = wait_until_final(results, sweep_dir)
    assert view.state == "completed", view.status.get("error")
    scheduler = json.loads((results / "runs" / view.run_id / "provenance.json").read_text())["scheduler"]
    assert (scheduler["SLURM_NNODES"], scheduler["SLURM_NTASKS"]) == ("2", "4")
