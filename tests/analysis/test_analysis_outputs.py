"""aggregate_sweep's files, the figure and the self-contained HTML report."""

from __future__ import annotations

import json
import re
import struct
import time
from pathlib import Path

import pandas as pd
import pytest
from analysis_factory import curve, make_spec

from analysis.aggregate import Aggregate, Options, aggregate_sweep, load_aggregate
from analysis.plots import PANEL_HEIGHT, PANEL_WIDTH
from analysis.report import write_report

TABLES = ("summary", "best", "robustness", "speed", "targets", "scores", "studies")  # studies: AlgoPerf's trials
FIGURES = ("best_curves", "curves", "sensitivity", "boxes", "profiles", "budgets")
OUTPUTS = {"runs.csv", "runs.parquet", "curves.parquet", "curves.csv", "profiles.csv", "profiles.parquet",
           "budgets.csv", "budgets.parquet", *(f"budget_summary.{x}" for x in ("csv", "parquet", "md", "tex")),
           "aggregate.json", *(f"{t}.{x}" for t in TABLES for x in ("csv", "parquet", "md", "tex")),
           *(f"{f}.{x}" for f in FIGURES for x in ("png", "svg"))}


def report(builder) -> Path:
    return write_report([builder.sweep_dir], builder.runs_dir)


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_aggregate_sweep_writes_every_output(demo_sweep):
    result = aggregate_sweep(demo_sweep.sweep_dir, demo_sweep.runs_dir)
    assert isinstance(result, Aggregate)
    out = demo_sweep.sweep_dir / "aggregate"
    assert {p.name for p in result.files} == OUTPUTS
    assert all(p.is_file() and p.parent in (out, out / "plots") for p in result.files)
    assert set(result.figures) == set(FIGURES)
    assert len(result.runs) == 22 and len(result.summary) == 7  # 6 settings + the lr=10 one
    pd.testing.assert_frame_equal(pd.read_parquet(out / "curves.parquet"), result.curves, check_dtype=False)
    pd.testing.assert_frame_equal(pd.read_parquet(out / "summary.parquet"), result.summary, check_dtype=False)
    runs_csv = pd.read_csv(out / "runs.csv", dtype={"run_id": str, "setting_id": str})
    assert list(runs_csv["run_id"]) == list(result.runs["run_id"])
    assert "label" in runs_csv.columns and "optimizer.lr" in runs_csv.columns
    curves_csv = pd.read_csv(out / "curves.csv", dtype={"setting_id": str})
    assert curves_csv.shape == result.curves.shape
    for column in ("label", "problem", "epoch", "train_loss_median", "valid_loss_q25", "lr_q75", "train_loss_n"):
        assert column in result.curves.columns
    lossy = result.summary[result.summary["label"].str.contains("lr=10")].iloc[0]
    assert (lossy["runs"], lossy["diverged"], lossy["failed"], lossy["other"], lossy["n"]) == (4, 1, 1, 2, 1)
    assert lossy["optimizer.lr"] == 10.0  # the varying hyperparameters are in the summary
    assert "\\toprule" in (out / "best.tex").read_text()


def test_load_aggregate_reads_back_what_was_written(demo_sweep):
    result = aggregate_sweep(demo_sweep.sweep_dir, demo_sweep.runs_dir)
    loaded = load_aggregate(demo_sweep.sweep_dir / "aggregate")
    for name in ("summary", "best", "robustness", "speed", "targets", "profiles", "scores", "curves"):
        pd.testing.assert_frame_equal(getattr(loaded, name), getattr(result, name), check_dtype=False)
    assert loaded.figures == result.figures and loaded.primary == result.primary
    assert loaded.options == result.options


def test_png_is_valid_with_the_expected_pixel_size(demo_sweep):
    aggregate_sweep(demo_sweep.sweep_dir, demo_sweep.runs_dir)
    width, height = _png_size((demo_sweep.sweep_dir / "aggregate" / "plots" / "curves.png").read_bytes())
    # two problems side by side; 4 rows of panels plus a legend of at most 4 settings (2 lines of 2)
    assert width == round(2 * PANEL_WIDTH * 100)
    assert height > round(4 * PANEL_HEIGHT * 100)
    from analysis.plots import figure_size

    assert (width, height) == tuple(round(x * 100) for x in figure_size(2, 4))


def test_quantiles_are_validated(demo_sweep):
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        aggregate_sweep(demo_sweep.sweep_dir, demo_sweep.runs_dir, Options(quantiles=(0.25, 1.5)))


def test_a_sweep_without_any_metrics_still_aggregates(builder):
    builder.add(make_spec(seed=0), None)
    builder.add(make_spec(seed=1), "running")
    builder.write()
    result = aggregate_sweep(builder.sweep_dir, builder.runs_dir)
    assert len(result.curves) == 0
    row = result.summary.iloc[0]
    assert (row["runs"], row["other"], row["n"]) == (2, 2, 0)
    assert pd.isna(row["final_valid_median"])
    _png_size((builder.sweep_dir / "aggregate" / "plots" / "curves.png").read_bytes())
    assert report(builder).is_file()


def test_sensitivity_and_boxes_are_drawn_only_for_a_grid(builder):
    """One setting per optimizer and problem has no hyperparameter to be sensitive to and no spread to box."""
    for name, lr in (("sgd", 0.1), ("adam", 0.001)):
        for seed in (0, 1):
            builder.add(make_spec(optimizer={"name": name, "lr": lr}, seed=seed), metrics=curve(lr=lr))
    builder.write()
    single = aggregate_sweep(builder.sweep_dir, builder.runs_dir)
    assert {"curves", "best_curves"} <= set(single.figures) and not {"sensitivity", "boxes"} & set(single.figures)
    builder.add(make_spec(optimizer={"name": "sgd", "lr": 0.01}), metrics=curve(lr=0.01))  # now sgd has a grid
    builder.write()
    grid = aggregate_sweep(builder.sweep_dir, builder.runs_dir)
    assert {"sensitivity", "boxes"} <= set(grid.figures)


def test_report_is_self_contained_and_shows_the_sweep(demo_sweep):
    path = report(demo_sweep)
    assert path == demo_sweep.sweep_dir / "report.html"
    html = path.read_text()
    assert "http://" not in html and "https://" not in html
    sources = re.findall(r'src="([^"]*)"', html)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    assert "<link" not in html and "@import" not in html and "url(" not in html
    for text in ("demo", "sw-0001", "optimizer=sgd,adam", "sgd lr=0.1", "sgd lr=0.01", "adam lr=0.001",
                 "quadratic_deep", "digits_mlp", "RuntimeError: boom"):
        assert text in html, text
    summary = pd.read_parquet(demo_sweep.sweep_dir / "aggregate" / "summary.parquet")
    assert set(summary["label"]) <= set(re.findall(r'<td class="label">([^<]*)</td>', html))
    assert re.search(r"<b>18</b><span>completed</span>", html)
    assert re.search(r"<b>1</b><span>diverged</span>", html)


def test_report_escapes_what_users_wrote(builder):
    builder.overrides = ["optimizer.name=<script>alert(1)</script>"]
    builder.add(make_spec(optimizer={"name": "<b>evil</b>", "lr": 0.1}), "completed", curve(2))
    builder.write()
    html = report(builder).read_text()
    assert "<script>alert" not in html and "&lt;script&gt;" in html
    assert "<b>evil</b>" not in html


def test_report_reaggregates_only_when_inputs_changed(demo_sweep):
    out = demo_sweep.sweep_dir / "aggregate"
    report(demo_sweep)  # aggregates: nothing there yet
    created = json.loads((out / "aggregate.json").read_text())["created"]

    report(demo_sweep)  # fresh: reuses aggregate/
    assert json.loads((out / "aggregate.json").read_text())["created"] == created

    aggregate_sweep(demo_sweep.sweep_dir, demo_sweep.runs_dir, Options(quantiles=(0.1, 0.9)))
    time.sleep(0.01)
    folder = demo_sweep.runs_dir / demo_sweep.entries[20]["run_id"]
    assert json.loads((folder / "status.json").read_text())["state"] == "running"
    (folder / "status.json").write_text(json.dumps({"state": "completed"}))
    html = report(demo_sweep).read_text()  # stale: aggregates again
    summary = pd.read_parquet(out / "summary.parquet")
    assert "final_valid_q10" in summary.columns  # the quantiles chosen last are kept
    assert summary["completed"].sum() == 19
    assert "q10–q90" in html


def test_a_sweep_without_runs_still_aggregates_and_reports(builder):
    builder.write()
    result = aggregate_sweep(builder.sweep_dir, builder.runs_dir)
    assert result.summary.empty and result.curves.empty and result.runs.empty
    assert "0 runs in 0 settings" in report(builder).read_text()


def test_load_aggregate_ignores_tables_an_earlier_aggregate_left(builder):
    # One optimizer: time to target, but no performance profile (it needs two submissions).
    for seed in range(2):
        builder.add(make_spec(seed=seed), "completed", curve(3))
    builder.write()
    out = builder.sweep_dir / "aggregate"
    result = aggregate_sweep(builder.sweep_dir, builder.runs_dir)
    assert result.targets is not None and result.profiles is None
    pd.DataFrame({"submission": ["old"], "tau": [1.0], "rho": [1.0]}).to_parquet(out / "profiles.parquet")
    loaded = load_aggregate(out)
    assert loaded.profiles is None and loaded.targets is not None
