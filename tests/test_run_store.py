"""The run folder and results store: atomic, append-only, content-addressed."""

from __future__ import annotations

import json
import os

import pytest

from jobs.run_folder import RunFolder, append_jsonl, atomic_write_text, read_jsonl
from orchestrator import wandb_mode
from orchestrator.errors import UserError
from orchestrator.reconcile import plan
from orchestrator.store import ResultsStore
from orchestrator.sweep import expand


def test_torn_last_line_is_ignored(tmp_path):
    path = tmp_path / "metrics.jsonl"
    append_jsonl(path, [{"epoch": 0, "loss": 1.0}, {"epoch": 1, "loss": float("nan")}])
    with open(path, "a") as handle:
        handle.write('{"epoch": 2, "lo')  # a job killed mid-write
    records = list(read_jsonl(path))
    assert [r["epoch"] for r in records] == [0, 1]
    assert records[1]["loss"] != records[1]["loss"]  # NaN survives the round trip


def test_atomic_write_leaves_no_temporary_files_and_respects_umask(tmp_path):
    target = tmp_path / "status.json"
    atomic_write_text(target, "one")
    atomic_write_text(target, "two")
    assert target.read_text() == "two"
    assert [p.name for p in tmp_path.iterdir()] == ["status.json"]
    assert not target.stat().st_mode & 0o002, "never world-writable"


def test_state_machine_counts_attempts_and_keeps_fields(tmp_path):
    folder = RunFolder(tmp_path / "abc")
    assert folder.state == "pending"
    folder.set_state("submitted", launcher="local")
    folder.set_state("running", job_id="7")
    folder.set_state("failed", error="boom")
    folder.set_state("running", job_id="8")
    status = folder.status()
    assert status["state"] == "running" and status["attempts"] == 2 and status["launcher"] == "local"
    with pytest.raises(ValueError):
        folder.set_state("exploded")


def test_record_writes_the_sweep_and_plan_skips_done_runs(tmp_path):
    store = ResultsStore(tmp_path)
    sweep = expand(["seed=0,1,2", "train.epochs=1"])
    assert len(plan(sweep, store, ask_scheduler=False).to_run) == 3
    sweep_dir = store.record(sweep)
    first = sweep.runs[0]
    store.run_folder(first.run_id).set_state("completed")
    store.run_folder(sweep.runs[1].run_id).set_state("failed")
    planned = plan(sweep, store, ask_scheduler=False)
    assert [r.run_id for r in planned.done] == [first.run_id]
    assert len(planned.to_run) == 2, "failed and pending runs are run again"
    lines = [json.loads(line) for line in (sweep_dir / "runs.jsonl").read_text().splitlines()]
    assert [line["run_id"] for line in lines] == [r.run_id for r in sweep.runs]
    assert store.find_sweep(sweep.name) == sweep_dir == store.find_sweep(sweep.sweep_id)


def test_wandb_mode_auto_follows_the_api_key(monkeypatch):
    assert wandb_mode.resolve({"mode": "auto"}, group="g")["mode"] == "offline"
    with pytest.raises(UserError, match="API key"):
        wandb_mode.resolve({"mode": "online"}, group="g")
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    resolved = wandb_mode.resolve({"mode": "auto"}, group="g")
    assert resolved == {"mode": "online", "group": "g"}
    assert "x" * 40 not in json.dumps(resolved), "the key itself never travels with the settings"
    assert os.environ["WANDB_API_KEY"]


def test_a_job_cannot_overwrite_a_run_cancelled_or_handed_to_another_job(tmp_path):
    from jobs.run_folder import RunSuperseded

    control = RunFolder(tmp_path / "abc")
    control.set_state("submitted", job_id="7_1")
    job = RunFolder(tmp_path / "abc", owner="7_1")
    job.set_state("running", job_id="7_1")
    job.update(progress={"epoch": 1})

    control.set_state("cancelled")
    with pytest.raises(RunSuperseded, match="cancelled"):
        job.update(progress={"epoch": 2})
    control.set_state("submitted", job_id="9_0")  # resumed as another job
    with pytest.raises(RunSuperseded, match="9_0"):
        job.set_state("failed", error="late")
    assert control.status()["job_id"] == "9_0" and control.state == "submitted"
    assert "progress" in control.status() and control.status()["progress"] == {"epoch": 1}
