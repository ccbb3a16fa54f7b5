"""``optbench sync``: offline W&B runs uploaded with wandb's own sync, and what it says.

Uploads go to a fake W&B server (tests/wandb/fake_wandb.py, a mock: W&B's
real server cannot be reached from the tests) that answers what wandb's Go
core asks; everything else (the jobs, their offline logs, ``wandb sync``)
is real.
"""

from __future__ import annotations

import json
import shutil

import pytest
from fake_wandb import API_KEY, ENTITY, FakeWandb
from wandb_support import missing_from, offline_logs, same

from jobs.run_folder import RunFolder
from orchestrator.store import ResultsStore

pytestmark = pytest.mark.integration  # runs real jobs


@pytest.fixture(autouse=True)
def wide_console(monkeypatch):
    """A terminal wide enough for the table's rows to stay on one line each."""
    from orchestrator import cli

    monkeypatch.setattr(cli.console, "width", 240)


def files_of(root):
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*") if not p.is_symlink()}


def sweep_of(results):
    (sweep_dir,) = ResultsStore(results).sweeps_dir.iterdir()
    return sweep_dir


def summary_log(results):
    (log,) = sweep_of(results).glob("aggregate/wandb/offline-run-*/run-*.wandb")
    return log


def test_sync_without_an_api_key_is_one_sentence_and_changes_nothing(optbench, results_copy):
    before = files_of(results_copy)
    status, out, err = optbench("sync", "--results", results_copy)
    assert status == 2
    assert " ".join(err.split()) == ("optbench: error: Uploading offline W&B runs needs an API key; set "
                                     "WANDB_API_KEY or run 'wandb login' (optbench sync --dry-run lists them "
                                     "without one).")
    assert "Traceback" not in err and files_of(results_copy) == before


def test_dry_run_lists_the_offline_runs_and_skips_running_ones(optbench, results_copy):
    sweep_dir = sweep_of(results_copy)
    running, done = (e["run_id"] for e in ResultsStore(results_copy).sweep_runs(sweep_dir))
    RunFolder(results_copy / "runs" / running).set_state("running")
    before = files_of(results_copy)

    status, out, _ = optbench("sync", sweep_dir.name, "--dry-run", "--results", results_copy)
    assert status == 0
    rows = {line.split("│")[1].strip(): line for line in out.splitlines() if line.startswith("│ ")}
    assert "skipped: still running" in rows[running] and "running" in rows[running]
    assert "would sync" in rows[done] and f"runs/{done}/wandb/offline-run-" in out
    summary_id = summary_log(results_copy).stem.removeprefix("run-")
    assert "would sync" in rows[summary_id] and "summary" in rows[summary_id]
    assert (f"Would sync 2 runs of {sweep_dir.name} to W&B project optbench; 0 already synced, 1 still running."
            in " ".join(out.split()))
    assert files_of(results_copy) == before


def test_a_sweep_without_offline_runs_has_nothing_to_sync(optbench, results_copy):
    for folder in results_copy.rglob("wandb"):
        shutil.rmtree(folder)
    status, out, _ = optbench("sync", "--results", results_copy)
    assert status == 0 and "Nothing to sync: no offline W&B runs in 1 sweep" in " ".join(out.split())


def test_sync_uploads_each_run_once_and_says_what_it_synced(optbench, results_copy, fake_wandb):
    sweep_dir = sweep_of(results_copy)
    running, done = (e["run_id"] for e in ResultsStore(results_copy).sweep_runs(sweep_dir))
    RunFolder(results_copy / "runs" / running).set_state("running")
    summary_id = summary_log(results_copy).stem.removeprefix("run-")

    status, out, _ = optbench("sync", sweep_dir.name, "--results", results_copy)
    text = " ".join(out.split())
    assert status == 0, out
    assert f"Synced 2 runs of {sweep_dir.name} to {ENTITY}/optbench; 0 already synced, 1 still running." in text
    assert set(fake_wandb.runs) == {done, summary_id}, "the running run is left alone"
    uploaded = fake_wandb.runs[done]
    first = uploaded.upserts[0]
    assert (first["groupName"], first["jobType"], first["displayName"]) == (sweep_dir.name, "digits_mlp", done)
    assert {"digits_mlp", "sgd", "nightly"} <= set(first["tags"])
    config = json.loads(first["config"])
    assert config["optimizer.lr"]["value"] == 0.01 and config["sweep_id"]["value"] == sweep_dir.name
    rows = {row["_step"]: row for row in uploaded.history}
    assert len(rows) == len(uploaded.history), "no step uploaded twice"
    metrics = RunFolder(results_copy / "runs" / done).metrics()
    for record in metrics:
        assert not missing_from(rows, record), missing_from(rows, record)
    assert same(uploaded.summary["valid_loss"], metrics[-1]["valid_loss"]) and uploaded.summary["state"] == "completed"
    assert uploaded.exitcode == 0
    assert fake_wandb.runs[summary_id].upserts[0]["groupName"] == sweep_dir.name
    assert any(name.startswith(f"run-{summary_id}-tablessummary") for name in fake_wandb.artifacts)
    assert all(log.with_name(log.name + ".synced").exists()
               for log in [*offline_logs(results_copy / "runs" / done), summary_log(results_copy)])
    still_running = offline_logs(results_copy / "runs" / running)
    assert not any(log.with_name(log.name + ".synced").exists() for log in still_running)

    upserts = sum(len(r.upserts) for r in fake_wandb.runs.values())
    status, out, _ = optbench("sync", sweep_dir.name, "--results", results_copy)
    assert status == 0
    assert f"Synced 0 runs of {sweep_dir.name} to W&B project optbench; 2 already synced, 1 still running." in (
        " ".join(out.split()))
    assert sum(len(r.upserts) for r in fake_wandb.runs.values()) == upserts, "nothing uploaded again"


def test_a_resumed_run_is_uploaded_as_one_wandb_run(optbench, resumed_sweep, tmp_path, fake_wandb):
    """Both attempts' logs, in order: one W&B run whose history is the run folder's metrics, each step once."""
    store = ResultsStore(shutil.copytree(resumed_sweep, tmp_path / "results", symlinks=True))
    (sweep_dir,) = store.sweeps_dir.iterdir()
    (entry,) = store.sweep_runs(sweep_dir)
    folder = store.run_folder(entry["run_id"])
    assert len(offline_logs(folder.root)) == 2

    status, out, _ = optbench("sync", sweep_dir.name, "--results", store.root)
    assert status == 0, out
    (uploaded,) = fake_wandb.runs.values()
    assert uploaded.name == folder.run_id and uploaded.exitcode == 0
    steps = [row["_step"] for row in uploaded.history]
    assert steps == sorted(set(steps)), "each step once, in order"
    rows = {row["_step"]: row for row in uploaded.history}
    for record in folder.metrics():
        assert not missing_from(rows, record), missing_from(rows, record)
    assert (uploaded.summary["attempt"], uploaded.summary["resumed_from_epoch"]) == (2, 1)
    assert f"Synced 1 run of {sweep_dir.name}" in " ".join(out.split())


def test_a_refused_upload_fails_with_wandbs_reason(optbench, results_copy, monkeypatch):
    with FakeWandb(refuse="permission denied for project optbench") as fake:
        monkeypatch.setenv("WANDB_BASE_URL", fake.url)
        monkeypatch.setenv("WANDB_API_KEY", API_KEY)
        status, out, _ = optbench("sync", "--results", results_copy)
    text = " ".join(out.split())
    assert status == 1
    assert text.count("│ failed │") == 3 and "wandb sync: permission denied for project optbench" in text
    assert "Synced 0 runs of 1 sweep to W&B project optbench; 0 already synced, 0 still running, 3 failed." in text
    assert not list(results_copy.rglob("*.wandb.synced"))


def test_a_log_torn_by_a_kill_is_uploaded_up_to_the_tear_and_marked(optbench, results_copy, fake_wandb):
    sweep_dir = sweep_of(results_copy)
    run_id = ResultsStore(results_copy).sweep_runs(sweep_dir)[0]["run_id"]
    (log,) = offline_logs(results_copy / "runs" / run_id)
    log.write_bytes(log.read_bytes()[:-5])  # the job died while W&B wrote its last record
    RunFolder(log.parents[2]).set_state("failed")

    status, out, _ = optbench("sync", sweep_dir.name, "--results", results_copy)
    assert status == 0, out
    assert "synced (torn last record left out)" in " ".join(out.split())
    assert log.with_name(log.name + ".synced").exists()
    metrics = RunFolder(log.parents[2]).metrics()
    rows = {row["_step"]: row for row in fake_wandb.runs[run_id].history}
    assert not missing_from(rows, metrics[-1]), "the rows before the tear are uploaded"
