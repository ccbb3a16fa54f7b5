"""status.json carries progress and the latest headline metrics, so the control plane reads only that file."""

from __future__ import annotations

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
    assert [s["progress"] for s in seen] == [{"epoch": m["epoch"], "epochs": 3, "step": m["step"]} for m in metrics]
    assert [s["progress"]["epoch"] for s in seen] == [0, 2, 3]
    for status, record in zip(seen, metrics, strict=True):
        assert status["state"] == "running" and status["attempts"] == 1
        assert status["last"] == {k: record[k] for k in ("train_loss", "valid_loss", "valid_accuracy", "test_loss",
                                                         "test_accuracy")}
    final = folder.status()
    assert final["state"] == "completed" and final["progress"] == seen[-1]["progress"]
