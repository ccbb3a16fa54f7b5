"""Sweeps as Slurm job arrays: fake GPUs, chunking to MaxArraySize, packing, failures, status."""

from __future__ import annotations

import json
import re
from pathlib import Path

from slurm_helpers import sacct, wait_until_final

from orchestrator import slurmctl
from orchestrator.ledger import Ledger

TINY = ("problem=rosenbrock", "optimizer.lr=0.001", "problem.steps_per_epoch=20", "train.epochs=2", "logger=disabled")


def provenance(results: Path, run_id: str) -> dict:
    return json.loads((results / "runs" / run_id / "provenance.json").read_text())


def test_a_sweep_is_one_array_with_a_gpu_per_task(launch, results):
    status, out, _, sweep_dir = launch(*TINY[:-1], "seed=range(4)", "launcher.gpus_per_node=1")
    assert status == 0 and "Submitted 4 runs as 4 array tasks in 1 array " in out
    assignments, _ = Ledger(sweep_dir).read()
    parents = {a.job_id.split("_")[0] for a in assignments.values()}
    assert len(parents) == 1 and sorted(a.job_id.split("_")[1] for a in assignments.values()) == ["0", "1", "2", "3"]

    views = wait_until_final(results, sweep_dir)
    assert [v.state for v in views] == ["completed"] * 4
    assert set(sacct(*parents).values()) == {"COMPLETED"}
    seen = [provenance(results, v.run_id)["scheduler"] for v in views]
    assert all(s["CUDA_VISIBLE_DEVICES"] in ("0", "1") for s in seen)
    assert sorted(s["SLURM_ARRAY_TASK_ID"] for s in seen) == ["0", "1", "2", "3"]
    # Tasks that ran at the same time on the same node had different GPUs.
    spans = [(s["SLURMD_NODENAME"], s["CUDA_VISIBLE_DEVICES"], v.status["started"], v.status["ended"])
             for s, v in zip(seen, views, strict=True)]
    together = [(gpu, other_gpu) for i, (node, gpu, start, end) in enumerate(spans)
                for other_node, other_gpu, other_start, other_end in spans[i + 1:]
                if node == other_node and start < other_end and other_start < end]
    assert together and all(gpu != other_gpu for gpu, other_gpu in together)
    # W&B (offline by default) ran inside the jobs: one offline run per run id.
    for view in views:
        assert list((results / "runs" / view.run_id).glob(f"wandb/offline-run-*-{view.run_id}"))


def test_arrays_are_cut_to_the_array_size_limit(launch, results):
    configured = re.search(r"^MaxArraySize=(\d+)", Path("/etc/slurm/slurm.conf").read_text(), re.M)
    assert slurmctl.cluster_info().max_array_size == int(configured.group(1) if configured else 1001)

    status, out, _, sweep_dir = launch(*TINY, "seed=range(5)", "launcher.max_array_size=2")
    assert status == 0 and "in 3 arrays" in out
    submitted = [r for r in _ledger_records(sweep_dir) if r["event"] == "submitted"]
    assert [len(r["jobs"]) for r in submitted] == [2, 2, 1]
    views = wait_until_final(results, sweep_dir)
    assert {v.state for v in views} == {"completed"}
    parents = {job.split("_")[0] for r in submitted for job in r["jobs"]}
    assert len(parents) == 3 and set(sacct(*parents).values()) == {"COMPLETED"}


def test_packed_runs_share_one_process(launch, results):
    status, out, _, sweep_dir = launch(*TINY, "seed=range(6)", "launcher.runs_per_job=3")
    assert status == 0 and "Submitted 6 runs as 2 array tasks" in out
    views = wait_until_final(results, sweep_dir)
    assert {v.state for v in views} == {"completed"}
    by_task: dict[str, set[tuple[str, int]]] = {}
    for view in views:
        p = provenance(results, view.run_id)
        by_task.setdefault(view.job_id, set()).add((p["host"], p["pid"]))
    assert len(by_task) == 2 and all(len(processes) == 1 for processes in by_task.values())


def test_a_failing_run_fails_in_slurm_and_status_shows_why(launch, results, optbench):
    # device=cuda is a valid spec; on these GPU-less nodes torch raises inside the job.
    status, _, _, sweep_dir = launch(*TINY, "device=cuda", "seed=range(2)")
    assert status == 0
    views = wait_until_final(results, sweep_dir)
    assert [v.state for v in views] == ["failed", "failed"]
    assert set(sacct(*{v.job_id for v in views}).values()) == {"FAILED"}
    assert all("CUDA" in v.status["error"] or "cuda" in v.status["error"] for v in views)

    code, out, _ = optbench("status", sweep_dir.name, "--results", results)
    assert code == 0 and "2 failed" in out
    assert {v.run_id for v in views} == set(re.findall(r"^(\w{12}) failed: ", out, re.MULTILINE))
    assert "CUDA" in out or "cuda" in out
    assert "_0_log.err" in out  # and the last lines of the job's own log


def test_status_lists_state_progress_node_and_job(launch, results, optbench):
    status, _, _, sweep_dir = launch(*TINY, "seed=range(3)")
    assert status == 0
    views = wait_until_final(results, sweep_dir)
    code, out, _ = optbench("status", sweep_dir.name, "--results", results)
    assert code == 0 and "3 runs — 3 completed" in out
    for view in views:
        line = next(line for line in out.splitlines() if line.strip().startswith(view.run_id))
        assert "completed" in line and " 2/2 " in line and view.job_id in line
        assert re.search(r"\bn[12]\b", line)  # the node Slurm ran it on


def _ledger_records(sweep_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (sweep_dir / "jobs.jsonl").read_text().splitlines()]

