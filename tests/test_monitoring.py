"""What status, logs and the progress model show of a sweep with completed, running, failed and pending runs."""

from __future__ import annotations

import json
import math
import threading
import time

import pytest
from monitor_support import FAILURE, MixedSweep, make_mixed_sweep

from jobs.run_folder import METRICS, append_jsonl
from orchestrator.monitor import STALL_INTERVALS, latest_job, sweep_progress
from orchestrator.reconcile import job_logs

pytestmark = pytest.mark.integration  # runs real jobs


@pytest.fixture
def mixed(results) -> MixedSweep:
    return make_mixed_sweep(results)


def test_progress_agrees_with_the_run_folders(mixed):
    sweep = sweep_progress(mixed.store, mixed.sweep_dir)
    on_disk = {r: mixed.folder(r).state for r in (mixed.completed, mixed.running, mixed.failed, mixed.pending)}
    assert on_disk == {mixed.completed: "completed", mixed.running: "running", mixed.failed: "failed",
                       mixed.pending: "pending"}
    assert {r.run_id: r.state for r in sweep.runs} == on_disk
    assert sweep.counts == {"running": 1, "failed": 1, "pending": 1, "completed": 1}
    assert [r.state for r in sweep.runs] == ["running", "failed", "pending", "completed"]  # most urgent first

    runs = {r.run_id: r for r in sweep.runs}
    running = runs[mixed.running]
    assert (running.step, running.steps, running.fraction, running.loss) == (15, 30, 0.5, 0.25)
    assert running.eta_seconds is not None and running.eta_seconds >= 0 and not running.stalled
    assert runs[mixed.completed].fraction == runs[mixed.failed].fraction == 1.0 and runs[mixed.pending].fraction == 0
    assert sweep.fraction == pytest.approx((1 + 1 + 0.5 + 0) / 4)
    assert FAILURE in runs[mixed.failed].error
    # labels name what varies (the learning rate); seeds are kept apart
    assert {r.label for r in sweep.runs} == {"sgd lr=0.3", "sgd lr=0.1"} and {r.seed for r in sweep.runs} == {1, 2}
    assert {r.problem for r in sweep.runs} == {"digits_mlp"}
    final = mixed.folder(mixed.completed).metrics()[-1]
    assert runs[mixed.completed].last == {k: final[k] for k in ("train_loss", "valid_loss", "valid_accuracy",
                                                                "test_loss", "test_accuracy")}


def test_a_run_without_heartbeats_is_called_stalled_and_its_eta_counts_down(mixed):
    beat = mixed.folder(mixed.running).status()["progress"]["heartbeat"]
    soon = sweep_progress(mixed.store, mixed.sweep_dir, now=beat + 1)
    late = sweep_progress(mixed.store, mixed.sweep_dir, now=beat + STALL_INTERVALS * 10 + 1)  # 10 s beats
    (soon_run,) = [r for r in soon.runs if r.state == "running"]
    (late_run,) = [r for r in late.runs if r.state == "running"]
    assert not soon_run.stalled and late_run.stalled
    assert late_run.eta_seconds <= soon_run.eta_seconds


def test_the_sweep_eta_extrapolates_its_pace_and_is_zero_once_every_run_has_ended(mixed):
    sweep = sweep_progress(mixed.store, mixed.sweep_dir)
    assert sweep.eta_seconds == pytest.approx(sweep.running_seconds * (1 - sweep.fraction) / sweep.fraction)
    mixed.folder(mixed.running).set_state("completed")
    mixed.folder(mixed.pending).set_state("cancelled")
    ended = sweep_progress(mixed.store, mixed.sweep_dir)
    assert ended.eta_seconds == 0 and not ended.active


def test_the_json_form_has_no_nan(mixed):
    """A diverged run's last loss is inf or NaN; JSON readers (the dashboard) get null."""
    mixed.folder(mixed.completed).update(last={"train_loss": math.inf, "valid_loss": math.nan})
    text = json.dumps(sweep_progress(mixed.store, mixed.sweep_dir).to_json(), allow_nan=False)
    assert '"train_loss": null' in text


def test_status_shows_counts_progress_and_the_failure_with_its_log(mixed, optbench):
    code, out, _ = optbench("status", mixed.sweep_dir.name, "--results", mixed.store.root)
    assert code == 0
    assert "4 runs — 1 running, 1 failed, 1 pending, 1 completed" in out
    assert "62 %" in out  # (1 + 1 + 0.5 + 0) / 4
    running_line = next(line for line in out.splitlines() if line.strip().startswith(mixed.running))
    assert "running" in running_line and "digits_mlp" in running_line and "sgd lr=" in running_line
    assert "━" in running_line
    assert f"{mixed.failed} failed: digits_mlp · sgd lr=" in out and FAILURE in out


def test_status_names_the_job_log_lines_the_error_does_not_have(mixed, optbench):
    _, stderr = job_logs(latest_job(mixed.store, mixed.failed))
    with open(stderr, "a", encoding="utf-8") as log:
        log.write("slurmstepd: error: Detected 1 oom_kill event\n")
    code, out, _ = optbench("status", mixed.sweep_dir.name, "--results", mixed.store.root)
    assert code == 0 and str(stderr) in out and "oom_kill event" in out


def test_watch_refreshes_until_the_last_run_ends(mixed, optbench):
    def finish_later():
        time.sleep(1.0)
        mixed.folder(mixed.pending).set_state("cancelled")
        mixed.folder(mixed.running).set_state("completed")

    finisher = threading.Thread(target=finish_later)
    finisher.start()
    started = time.monotonic()
    code, out, _ = optbench("status", mixed.sweep_dir.name, "--watch", "0.2", "--results", mixed.store.root)
    finisher.join()
    assert code == 0 and time.monotonic() - started >= 1.0
    assert "2 completed" in out and "ended" in out


def test_logs_prints_the_jobs_output_and_follows_it_until_the_run_ends(mixed, optbench):
    code, out, _ = optbench("logs", mixed.failed, "--results", mixed.store.root)
    assert code == 0 and FAILURE in out and "_0_log.err" in out and "_0_log.out" in out

    stdout, _ = job_logs(latest_job(mixed.store, mixed.running))

    def write_later():
        time.sleep(0.5)
        with open(stdout, "a", encoding="utf-8") as log:
            log.write("epoch 2 done\n")
        append_jsonl(mixed.folder(mixed.running).path(METRICS), [{"epoch": 2}])
        time.sleep(1.5)
        mixed.folder(mixed.running).set_state("completed")

    writer = threading.Thread(target=write_later)
    writer.start()
    code, out, _ = optbench("logs", mixed.running, "--follow", "--results", mixed.store.root)
    writer.join()
    assert code == 0 and "epoch 2 done" in out and out.rstrip().endswith("Run ended: completed.")


@pytest.mark.parametrize("args, sentence", [
    (("logs", "0123456789ab"), "No run '0123456789ab'"),
    (("logs", "x", "--lines", "0"), "--lines takes a positive count"),
    (("status", "nosuchsweep"), "No sweep 'nosuchsweep'"),
])
def test_bad_monitoring_input_is_one_sentence(mixed, optbench, args, sentence):
    code, out, err = optbench(*args, "--results", mixed.store.root)
    message = " ".join(err.split())
    assert code == 2 and out == "" and message.startswith("optbench: error: ") and sentence in message
    assert message.count(". ") == 0 and message.endswith(".") and "Traceback" not in err
