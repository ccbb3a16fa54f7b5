"""status.json carries progress and the latest headline metrics, so the control plane reads only that file."""

from __future__ import annotations

import pytest
from jobs_support import spec_for

from jobs.entry import run
from jobs.run_folder import RunFolder
from jobs.sinks import StatusSink


def test_every_evaluation_updates_progress_and_last_metrics_in_status(tmp_path, monkeypatch):
    folder = RunFolder(tmp_path / "run")
    seen = []
    log_eval = StatusSink.log_eval

    def log_and_look(sink, record):
        log_eval(sink, record)
        seen.append(folder.status())

    monkeypatch.setattr(StatusSink, "log_eval", log_and_look)
    run(spec_for("problem=digits_mlp", "problem.hidden=8", "train.epochs=3", "train.eval_every=2"), folder.root)

    metrics = folder.metrics()
    assert [{k: s["progress"][k] for k in ("epoch", "epochs", "step")} for s in seen] == [
        {"epoch": m["epoch"], "epochs": 3, "step": m["step"]} for m in metrics]
    assert [s["progress"]["epoch"] for s in seen] == [0, 2, 3]
    for status, record in zip(seen, metrics, strict=True):
        assert status["state"] == "running" and status["attempts"] == 1
        assert status["last"] == {k: record[k] for k in ("train_loss", "valid_loss", "valid_accuracy", "test_loss",
                                                         "test_accuracy")}
    final = folder.status()
    assert final["state"] == "completed" and final["progress"] == seen[-1]["progress"]


def test_heartbeats_report_steps_rate_and_eta_at_most_once_per_interval(tmp_path, monkeypatch):
    folder = RunFolder(tmp_path / "run")
    folder.set_state("running")
    clock = [1000.0]
    monkeypatch.setattr("jobs.sinks.time.monotonic", lambda: clock[0])
    writes = []
    update = RunFolder.update
    monkeypatch.setattr(RunFolder, "update", lambda self, **fields: writes.append(fields) or update(self, **fields))
    sink = StatusSink(folder, epochs=2, heartbeat_seconds=1.0)
    for step in range(1, 101):  # 100 steps at 0.1 s each: 10 s, so 9 or 10 heartbeats, not 100
        clock[0] += 0.1
        sink.log_progress({"step": step, "epoch": step // 50, "steps": 100, "loss": 1.0 / step})
    assert 9 <= len(writes) <= 10
    progress = folder.status()["progress"]
    assert progress["steps_per_second"] == pytest.approx(10.0)
    assert 90 <= progress["step"] <= 100  # the last beat came within the last interval
    assert progress["eta_seconds"] == pytest.approx((100 - progress["step"]) / 10.0)
    assert progress["loss"] == pytest.approx(1.0 / progress["step"]) and progress["steps"] == 100
    assert [w["progress"]["step"] for w in writes] == sorted(w["progress"]["step"] for w in writes)


def test_a_real_run_beats_with_its_total_steps(tmp_path):
    """heartbeat_seconds=0: a beat at every step, so the last one is at the run's last step."""
    folder = RunFolder(tmp_path / "run")
    run(spec_for("problem=digits_mlp", "problem.hidden=8", "train.epochs=2"), folder.root,
        {"logger": {"mode": "disabled", "heartbeat_seconds": 1e-9}})
    status = folder.status()
    progress = status["progress"]
    assert status["state"] == "completed"
    assert progress["steps"] == status_steps(folder) and progress["step"] == progress["steps"]
    assert progress["steps_per_second"] > 0 and progress["eta_seconds"] == 0
    assert abs(progress["heartbeat"] - status["updated"]) < 60


def status_steps(folder: RunFolder) -> int:
    """The run's total step count, from its last evaluation record."""
    return folder.metrics()[-1]["step"]
