"""The summary table: counts, final/best outcomes, labels and the writers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from analysis_factory import make_spec

from analysis.collect import collect_sweep
from analysis.labels import setting_labels
from analysis.selection import select_best
from analysis.stats import bootstrap_median_ci
from analysis.tables import (
    OUTCOMES,
    latex_escape,
    latex_table,
    markdown_table,
    summary_table,
    write_csv,
    write_latex,
    write_markdown,
    write_parquet,
)

QUADRATIC = {"name": "quadratic_deep"}
DIGITS = {"name": "digits_mlp", "hidden": 32}
SGD = {"name": "sgd", "lr": 0.1, "momentum": 0.0}
ADAM = {"name": "adam", "lr": 0.001, "beta1": 0.9}


def _records(valid, test, *, accuracy: bool):
    key = "accuracy" if accuracy else "loss"
    return [{"epoch": e, "step": e, "train_loss": 1.0, f"valid_{key}": v, f"test_{key}": t,
             **({"valid_loss": 1.0, "test_loss": 1.0} if accuracy else {})}
            for e, (v, t) in enumerate(zip(valid, test, strict=True))]


@pytest.fixture
def hand_made(builder):
    """Setting A (loss): 3 completed, 1 diverged, 1 failed, 1 running, 1 pending. Setting B (accuracy): 2 seeds."""
    a = [([3, 1, 2], [30, 10, 20]), ([4, 0.5, 0.8], [40, 5, 8]), ([5, 2, 3], [50, 20, 30])]
    for seed, (valid, test) in enumerate(a):
        builder.add(make_spec(QUADRATIC, SGD, seed), "completed", _records(valid, test, accuracy=False))
    builder.add(make_spec(QUADRATIC, SGD, 3), "diverged", _records([3, math.nan], [30, math.inf], accuracy=False))
    builder.add(make_spec(QUADRATIC, SGD, 4), "failed", _records([0.01], [0.01], accuracy=False))
    builder.add(make_spec(QUADRATIC, SGD, 5), "running", _records([0.01], [0.01], accuracy=False))
    builder.add(make_spec(QUADRATIC, SGD, 6), None)
    b = [([0.1, 0.9, 0.8], [0.1, 0.85, 0.8]), ([0.2, 0.7, 0.95], [0.2, 0.7, 0.9])]
    for seed, (valid, test) in enumerate(b):
        builder.add(make_spec(DIGITS, ADAM, seed), "completed", _records(valid, test, accuracy=True))
    builder.write()
    data = collect_sweep(builder.sweep_dir, builder.runs_dir)
    labels = setting_labels(data.runs)
    return data, labels


def _row(summary, problem):
    rows = summary[summary["problem"] == problem]
    assert len(rows) == 1
    return rows.iloc[0]


def test_counts_by_state_keep_every_run(hand_made):
    data, labels = hand_made
    a = _row(summary_table(data.runs, data.metrics, labels), "quadratic_deep")
    assert (a["runs"], a["completed"], a["diverged"], a["failed"], a["other"], a["n"]) == (7, 3, 1, 1, 2, 4)


def test_final_and_best_loss_over_seeds_with_a_diverged_run_ranked_worst(hand_made):
    data, labels = hand_made
    a = _row(summary_table(data.runs, data.metrics, labels), "quadratic_deep")
    assert a["metric"] == "loss"
    final = [2, 0.8, 3, math.inf]  # the diverged run's final NaN counts as +inf
    best = [1, 0.5, 2, math.inf]  # a diverged run is worst in every outcome, though it measured 3 before
    assert a["final_valid_median"] == pytest.approx(np.median(final))
    assert a["final_valid_q25"] == pytest.approx(np.quantile(final[:3] + [10.0], 0.25))
    assert a["final_valid_q75"] == math.inf
    assert a["best_valid_median"] == pytest.approx(np.median(best))
    assert a["best_valid_q25"] == pytest.approx(np.quantile(best, 0.25))
    assert a["best_valid_q75"] == math.inf
    assert a["final_test_median"] == pytest.approx(np.median([20, 8, 30, math.inf]))
    assert a["best_test_median"] == pytest.approx(np.median([10, 5, 20, math.inf]))


def test_final_and_best_accuracy_is_the_max(hand_made):
    data, labels = hand_made
    b = _row(summary_table(data.runs, data.metrics, labels), "digits_mlp")
    assert b["metric"] == "accuracy"
    assert (b["runs"], b["completed"], b["n"]) == (2, 2, 2)
    assert b["final_valid_median"] == pytest.approx(np.median([0.8, 0.95]))
    assert b["best_valid_median"] == pytest.approx(np.median([0.9, 0.95]))
    assert b["best_valid_q25"] == pytest.approx(np.quantile([0.9, 0.95], 0.25))
    assert b["final_test_median"] == pytest.approx(np.median([0.8, 0.9]))
    assert b["best_test_q75"] == pytest.approx(np.quantile([0.85, 0.9], 0.75))


def test_configurable_quantiles_become_columns(hand_made):
    data, labels = hand_made
    summary = summary_table(data.runs, data.metrics, labels, (0.1, 0.9))
    b = _row(summary, "digits_mlp")
    assert b["final_valid_q10"] == pytest.approx(np.quantile([0.8, 0.95], 0.1))
    assert "final_valid_q25" not in summary.columns


def test_best_setting_selection_per_problem(builder):
    for lr, final in ((0.1, 0.5), (0.01, 0.2), (1.0, math.nan)):
        for seed in range(2):
            builder.add(make_spec(QUADRATIC, dict(SGD, lr=lr), seed), "completed",
                        _records([1.0, final], [1.0, final], accuracy=False))
    builder.write()
    data = collect_sweep(builder.sweep_dir, builder.runs_dir)
    summary = summary_table(data.runs, data.metrics, setting_labels(data.runs))
    assert list(select_best(summary)["label"]) == ["sgd lr=0.01"]  # NaN (diverged) never wins


def test_labels_show_only_the_hyperparameters_that_vary(builder):
    cosine = {"name": "cosine", "warmup": 0}
    for problem, epochs in ((QUADRATIC, 3), (DIGITS, 20)):
        for optimizer in (SGD, dict(SGD, lr=0.01), ADAM):
            builder.add(make_spec(problem, optimizer, 0, train=dict(make_spec()["train"], epochs=epochs)), "completed",
                        _records([1.0], [1.0], accuracy=False))
    builder.add(make_spec(QUADRATIC, SGD, 0, schedule=cosine), "completed", _records([1.0], [1.0], accuracy=False))
    builder.write()
    data = collect_sweep(builder.sweep_dir, builder.runs_dir)
    labels = setting_labels(data.runs)
    by_problem = {}
    for entry in builder.entries:
        by_problem.setdefault(entry["spec"]["problem"]["name"], []).append(labels[entry["setting_id"]])
    assert by_problem["digits_mlp"] == ["sgd lr=0.1", "sgd lr=0.01", "adam lr=0.001"]
    assert by_problem["quadratic_deep"] == ["sgd lr=0.1 schedule=constant", "sgd lr=0.01 schedule=constant",
                                            "adam lr=0.001 schedule=constant", "sgd lr=0.1 schedule=cosine"]


def test_csv_parquet_and_markdown_read_back_equal(hand_made, tmp_path):
    data, labels = hand_made
    summary = summary_table(data.runs, data.metrics, labels)
    text_columns = ["setting_id", "problem", "optimizer", "label", "metric"]

    write_csv(summary, tmp_path / "s.csv")
    back = pd.read_csv(tmp_path / "s.csv", dtype=dict.fromkeys(text_columns, str))
    pd.testing.assert_frame_equal(back, summary, check_dtype=False)

    write_parquet(summary, tmp_path / "s.parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "s.parquet"), summary, check_dtype=False)

    write_markdown(summary, tmp_path / "s.md")
    lines = (tmp_path / "s.md").read_text().splitlines()
    assert len(lines) == 2 + len(summary)
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert header == list(summary.columns)
    assert lines[1].startswith("|:---|")
    for line, (_, row) in zip(lines[2:], summary.iterrows(), strict=True):
        cells = [c.strip() for c in line.strip("|").split("|")]
        for column, cell in zip(summary.columns, cells, strict=True):
            value = row[column]
            if isinstance(value, float):
                expected = "" if math.isnan(value) else value
                if cell == "" or math.isinf(value):
                    assert cell == ("" if expected == "" else ("inf" if value > 0 else "-inf"))
                else:
                    assert float(cell) == pytest.approx(value, rel=5e-4), (column, cell, value)
            else:
                assert cell == str(value), column


def test_markdown_escapes_pipes():
    text = markdown_table(pd.DataFrame({"label": ["a|b"], "x": [1.23456789]}))
    assert "a\\|b" in text and "1.235" in text


def test_bootstrap_interval_columns_follow_each_outcomes_quantiles(hand_made):
    data, labels = hand_made
    summary = summary_table(data.runs, data.metrics, labels, (0.1, 0.9))
    columns = list(summary.columns)
    for outcome in OUTCOMES:
        at = columns.index(f"{outcome}_median")
        assert columns[at : at + 5] == [f"{outcome}_{s}" for s in ("median", "q10", "q90", "ci_low", "ci_high")]
    a = _row(summary, "quadratic_deep")
    final = np.array([2, 0.8, 3, math.inf])  # as in the test above: the diverged run counts as +inf
    low, high = bootstrap_median_ci(np.zeros(4, dtype=int), final, 1)
    assert (a["final_valid_ci_low"], a["final_valid_ci_high"]) == (low[0], high[0])
    assert 0.8 <= a["final_valid_ci_low"] <= a["final_valid_median"] and a["final_valid_ci_high"] == math.inf
    for outcome in OUTCOMES:
        assert a[f"{outcome}_ci_low"] <= a[f"{outcome}_median"] <= a[f"{outcome}_ci_high"]
    b = _row(summary, "digits_mlp")
    assert 0.9 <= b["best_valid_ci_low"] <= b["best_valid_ci_high"] <= 0.95  # the two seeds' best: 0.9, 0.95


def test_one_seed_has_no_interval(builder):
    builder.add(make_spec(QUADRATIC, SGD, 0), "completed", _records([3, 1], [3, 1], accuracy=False))
    builder.write()
    data = collect_sweep(builder.sweep_dir, builder.runs_dir)
    row = summary_table(data.runs, data.metrics, setting_labels(data.runs)).iloc[0]
    assert row["final_valid_median"] == 1 and math.isnan(row["final_valid_ci_low"])
    assert math.isnan(row["final_valid_ci_high"])


def _latex_rows(text):
    """The body rows of a booktabs tabular, split into cells (no cell of these tests holds an escaped &)."""
    lines = text.splitlines()
    body = lines[lines.index("\\midrule") + 1 : lines.index("\\bottomrule")]
    header = lines[lines.index("\\toprule") + 1]
    assert header.endswith(" \\\\") and all(line.endswith(" \\\\") for line in body)
    return header[:-3].split(" & "), [line[:-3].split(" & ") for line in body]


def test_latex_escapes_every_special_character():
    assert latex_escape("a&b%c$d#e_f{g}h~i^j\\k") == (
        "a\\&b\\%c\\$d\\#e\\_f\\{g\\}h\\textasciitilde{}i\\textasciicircum{}j\\textbackslash{}k")
    assert latex_escape("\\&") == "\\textbackslash{}\\&"  # escapes are not escaped again
    frame = pd.DataFrame({"best_valid_q25": [0.5], "label": ["sgd lr=0.1 50%"]})
    header, rows = _latex_rows(latex_table(frame))
    assert header == ["best\\_valid\\_q25", "label"]
    assert rows == [["0.5", "sgd lr=0.1 50\\%"]]


def test_latex_alignment_numbers_infinities_and_empty_cells():
    frame = pd.DataFrame({
        "label": ["a", "b", None], "runs": [3, 4, 5], "score": [math.inf, -math.inf, math.nan],
        "lr": [1.23456789, 1.5e-05, 123456.0], "ok": [True, False, True],
    })
    text = latex_table(frame)
    lines = text.splitlines()
    assert lines[0] == "\\begin{tabular}{lrrrl}" and lines[-1] == "\\end{tabular}"
    assert lines[1] == "\\toprule" and "\\midrule" in lines and lines[-2] == "\\bottomrule"
    header, rows = _latex_rows(text)
    assert len(header) == frame.shape[1] and all(len(row) == frame.shape[1] for row in rows)
    assert len(rows) == len(frame)
    assert rows[0] == ["a", "3", "$\\infty$", "1.235", "True"]
    assert rows[1] == ["b", "4", "$-\\infty$", "$1.5\\times10^{-5}$", "False"]
    assert rows[2] == ["", "5", "", "$1.235\\times10^{5}$", "True"]


def test_latex_table_environment_with_caption_and_label(hand_made, tmp_path):
    data, labels = hand_made
    summary = summary_table(data.runs, data.metrics, labels)
    assert not latex_table(summary).startswith("\\begin{table}")
    path = write_latex(summary, tmp_path / "s.tex", caption="Final & best (50%)", label="tab:summary_1")
    text = path.read_text()
    lines = text.splitlines()
    assert lines[:4] == ["\\begin{table}[htbp]", "\\centering", "\\caption{Final \\& best (50\\%)}",
                         "\\label{tab:summary_1}"]
    assert lines[-1] == "\\end{table}" and text == latex_table(summary, "Final & best (50%)", "tab:summary_1")
    header, rows = _latex_rows(text)
    assert len(header) == summary.shape[1] and len(rows) == len(summary)
    assert all(len(row) == summary.shape[1] for row in rows)
    a = rows[list(summary["problem"]).index("quadratic_deep")]
    assert a[list(summary.columns).index("final_valid_q75")] == "$\\infty$"
    assert a[list(summary.columns).index("problem")] == "quadratic\\_deep"
