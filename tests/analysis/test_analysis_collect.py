"""Collecting run folders: the runs table and the tidy metrics table."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from analysis_factory import curve, make_spec

from analysis.collect import collect_sweep, flatten_spec, input_fingerprint, read_metrics

ROOT = Path(__file__).resolve().parents[2]


def test_runs_table_has_one_row_per_run_with_state_and_flat_hyperparameters(demo_sweep):
    data = collect_sweep(demo_sweep.sweep_dir, demo_sweep.runs_dir)
    runs = data.runs
    assert len(runs) == len(demo_sweep.entries) == 22
    assert list(runs["run_id"]) == [e["run_id"] for e in demo_sweep.entries]
    for column in ("run_id", "setting_id", "seed", "state", "problem", "optimizer", "optimizer.lr",
                   "problem.hidden", "schedule.name", "train.epochs", "device", "precision"):
        assert column in runs.columns, column
    assert runs["state"].value_counts().to_dict() == {"completed": 18, "diverged": 1, "failed": 1, "running": 1,
                                                      "pending": 1}
    pending = runs[runs["state"] == "pending"].iloc[0]
    assert pending["points"] == 0
    failed = runs[runs["state"] == "failed"].iloc[0]
    assert failed["error"] == "RuntimeError: boom"
    assert failed["points"] == 2  # the torn third line is ignored
    assert set(runs["problem"]) == {"quadratic_deep", "digits_mlp"}
    assert data.info["name"] == "demo"


def test_metrics_table_is_tidy_and_keeps_nan(demo_sweep):
    data = collect_sweep(demo_sweep.sweep_dir, demo_sweep.runs_dir)
    metrics = data.metrics
    assert list(metrics.columns[:3]) == ["run_id", "setting_id", "epoch"]
    assert {"step", "time", "train_loss", "valid_loss", "test_loss", "lr", "valid_accuracy"} <= set(metrics.columns)
    points = metrics.groupby("run_id", observed=True).size()
    expected = {e["run_id"]: n for e, n in zip(demo_sweep.entries, [4] * 18 + [3, 2, 1, 0], strict=True) if n}
    assert points.to_dict() == expected
    diverged = demo_sweep.entries[18]["run_id"]
    last = metrics[metrics["run_id"] == diverged].iloc[-1]
    assert math.isnan(last["valid_loss"]) and math.isinf(last["test_loss"])
    # setting_id of each row is its run's setting
    setting_of = {e["run_id"]: e["setting_id"] for e in demo_sweep.entries}
    assert all(setting_of[r] == s for r, s in zip(metrics["run_id"], metrics["setting_id"], strict=True))
    # values are the ones written
    first = demo_sweep.entries[0]
    rows = metrics[metrics["run_id"] == first["run_id"]]
    written = curve(4, rate=first["spec"]["optimizer"]["lr"] * 5, accuracy=False, lr=0.1)
    assert np.allclose(rows["train_loss"], [r["train_loss"] for r in written])
    assert list(rows["epoch"]) == [0, 1, 2, 3]


def test_torn_last_line_is_ignored_and_no_trailing_newline_means_nothing_read(builder):
    builder.add(make_spec(seed=0), "completed", curve(3), tail='{"epoch": 3, "train_loss": 0.')
    builder.add(make_spec(seed=1), "running", raw='{"epoch": 0, "train_loss": 1.0}')  # only a torn line
    builder.write()
    data = collect_sweep(builder.sweep_dir, builder.runs_dir)
    assert list(data.runs["points"]) == [3, 0]
    assert list(data.metrics["epoch"]) == [0, 1, 2]


def test_bad_lines_in_the_middle_fall_back_to_a_careful_parse(builder, caplog):
    good = "".join(json.dumps(r) + "\n" for r in curve(3))
    builder.add(make_spec(seed=0), "completed", curve(3))
    # a killed job resumed after a torn write, a blank line and a field of another type
    broken = good.splitlines(keepends=True)
    raw = broken[0] + '{"epoch": 1, "trai' + broken[1] + "\n" + broken[2].replace('"lr": 0.1', '"lr": "n/a"')
    builder.add(make_spec(seed=1), "completed", raw=raw)
    builder.write()
    with caplog.at_level("WARNING"):
        data = collect_sweep(builder.sweep_dir, builder.runs_dir)
    assert list(data.runs["points"]) == [3, 2]  # the corrupt line is skipped
    second = data.metrics[data.metrics["run_id"] == builder.entries[1]["run_id"]]
    assert list(second["epoch"]) == [0, 2]
    assert math.isnan(second["lr"].iloc[-1])  # a non-number is no metric value
    assert "skipping unreadable metrics line" in caplog.text


def test_fast_and_careful_parse_agree(demo_sweep):
    from analysis import collect

    run_ids = [e["run_id"] for e in demo_sweep.entries]
    settings = [e["setting_id"] for e in demo_sweep.entries]
    fast = read_metrics(demo_sweep.runs_dir, run_ids, settings)
    original = collect._parse_joined
    try:
        collect._parse_joined = lambda data, lines: None
        careful = read_metrics(demo_sweep.runs_dir, run_ids, settings)
    finally:
        collect._parse_joined = original
    assert fast.columns.tolist() == careful.columns.tolist()
    for column in fast.columns:
        if fast[column].dtype.kind == "f":
            assert np.array_equal(fast[column].to_numpy(), careful[column].to_numpy(), equal_nan=True), column
        else:
            assert fast[column].astype(str).tolist() == careful[column].astype(str).tolist(), column


def test_repeated_evaluation_points_of_a_resumed_run_keep_the_last(builder):
    records = curve(3)
    resumed = [dict(r, train_loss=r["train_loss"] + 100) for r in records[1:]]
    builder.add(make_spec(), "completed", records + resumed)
    builder.write()
    metrics = collect_sweep(builder.sweep_dir, builder.runs_dir).metrics
    assert list(metrics["epoch"]) == [0, 1, 2]
    assert metrics["train_loss"].iloc[1] == pytest.approx(records[1]["train_loss"] + 100)


def test_missing_setting_id_is_computed_like_jobs_spec(builder):
    from jobs.spec import setting_id

    builder.add(make_spec(), "completed", curve(2))
    del builder.entries[0]["setting_id"]
    builder.write()
    runs = collect_sweep(builder.sweep_dir, builder.runs_dir).runs
    assert runs["setting_id"].iloc[0] == setting_id(make_spec())


def test_flatten_spec():
    flat = flatten_spec({"problem": {"name": "rosenbrock", "start": [-1.2, 1.0]}, "seed": 3,
                         "train": {"clip_grad_norm": None}})
    assert flat == {"problem.name": "rosenbrock", "problem.start": "[-1.2, 1.0]", "seed": 3,
                    "train.clip_grad_norm": None}


def test_fingerprint_from_stat_equals_the_one_recorded_while_reading(demo_sweep):
    data = collect_sweep(demo_sweep.sweep_dir, demo_sweep.runs_dir)
    assert data.fingerprint == input_fingerprint(demo_sweep.sweep_dir, demo_sweep.runs_dir)
    assert data.fingerprint["files"] == 2 + 21 + 21  # sweep files, status files, metrics files


def test_a_missing_sweep_file_is_one_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="sweep.json does not exist"):
        collect_sweep(tmp_path, tmp_path / "runs")


def test_analysis_imports_neither_torch_nor_orchestrator():
    code = ("import sys, analysis, analysis.report, analysis.plots; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'orchestrator')]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
