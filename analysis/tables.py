"""The per-setting summary table and its CSV, Parquet and Markdown writers.

The primary metric of a problem is accuracy when its runs report one, else
loss. For each run: *final* is the value at its last evaluation point, *best*
the max accuracy / min loss over its evaluation points. Over the seeds of a
setting: the median and the configured quantiles of those per-run values, and a
95 % percentile-bootstrap confidence interval of the median (NaN below two seeds).

Only runs with a result (completed or diverged) enter the statistics; every
run is counted by state. A diverged run (optbench's ``diverged`` state, and a
DeepOBS run that aborted on a NaN/inf loss, which the import marks diverged)
ranks worst in every outcome, final and best alike (+inf loss, -inf accuracy),
whatever it measured before it stopped: divergence shows in the median and
quantiles instead of vanishing from them, and no selection by any criterion can
prefer a setting for the good epochs its diverged seeds had before they blew up.
The per-run outcomes (:func:`run_outcomes`) keep what the run measured.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv

from analysis.labels import settings_table, varying_columns
from analysis.stats import DEFAULT_QUANTILES, bootstrap_median_ci, group_stats, quantile_name
from jobs.run_folder import DONE_STATES

log = logging.getLogger(__name__)

RESULT_STATES = DONE_STATES
#: ``stopped``: runs successive halving did not promote past a rung; a result of their own, not a failure.
COUNT_COLUMNS = ("runs", "completed", "diverged", "failed", "stopped", "other")
OUTCOMES = ("final_valid", "best_valid", "final_test", "best_test")
SPLITS = ("valid", "test")
#: Confidence of the ``<outcome>_ci_low`` / ``<outcome>_ci_high`` bootstrap interval of the median.
CI_CONFIDENCE = 0.95


def primary_metrics(runs: pd.DataFrame, metrics: pd.DataFrame) -> dict[str, str]:
    """Problem → ``"accuracy"`` where any of its runs reports a valid or test accuracy, else ``"loss"``."""
    primary = {str(p): "loss" for p in runs["problem"].dropna().unique()}
    columns = [c for c in ("valid_accuracy", "test_accuracy") if c in metrics.columns]
    if columns and len(metrics):
        reported = metrics[columns].notna().any(axis=1).to_numpy()
        problems = _row_problems(runs, metrics)[reported]
        for problem in pd.unique(problems):
            primary[str(problem)] = "accuracy"
    return primary


def _row_problems(runs: pd.DataFrame, metrics: pd.DataFrame) -> np.ndarray:
    problem_of_run = runs.set_index("run_id")["problem"]
    categories = metrics["run_id"].cat.categories
    per_code = problem_of_run.reindex(categories).to_numpy(dtype=object)
    return per_code[metrics["run_id"].cat.codes.to_numpy()]


def run_outcomes(runs: pd.DataFrame, metrics: pd.DataFrame, primary: dict[str, str]) -> pd.DataFrame:
    """Per run (index ``run_id``): final and best primary metric on valid and test; NaN without points.

    Expects the metrics table as :func:`analysis.collect.read_metrics` returns it: rows
    grouped by run, ordered by epoch within a run.
    """
    out = pd.DataFrame(np.nan, index=pd.Index(runs["run_id"], name="run_id"), columns=list(OUTCOMES))
    if metrics.empty:
        return out
    codes = metrics["run_id"].cat.codes.to_numpy()
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
    ends = np.r_[starts[1:], len(codes)] - 1
    run_ids = np.asarray(metrics["run_id"].cat.categories, dtype=object)[codes[starts]]
    is_accuracy = np.array([primary.get(str(p)) == "accuracy" for p in _row_problems(runs, metrics)], dtype=bool)
    sign = np.where(is_accuracy, -1.0, 1.0)  # minimise sign·value
    for split in SPLITS:
        loss = _column(metrics, f"{split}_loss")
        accuracy = _column(metrics, f"{split}_accuracy")
        value = np.where(is_accuracy, accuracy, loss)
        final = value[ends]
        best = sign[starts] * np.fmin.reduceat(sign * value, starts)
        out.loc[run_ids, f"final_{split}"] = final
        out.loc[run_ids, f"best_{split}"] = best
    return out


def _column(metrics: pd.DataFrame, name: str) -> np.ndarray:
    if name in metrics.columns:
        return metrics[name].to_numpy(dtype=np.float64)
    return np.full(len(metrics), np.nan)


def setting_order(runs: pd.DataFrame, labels: pd.Series) -> list[str]:
    """Settings sorted by problem, optimizer and the values of the hyperparameters that vary."""
    settings = settings_table(runs).copy()
    settings["label"] = labels.reindex(settings.index)
    keys = ["problem", "optimizer", *varying_columns(settings), "label"]
    try:
        ordered = settings.sort_values(keys, na_position="first", kind="stable")
    except TypeError:  # mixed types in a hyperparameter column
        ordered = settings.sort_values(["problem", "optimizer", "label"], kind="stable")
    return list(ordered.index)


def summary_table(
    runs: pd.DataFrame,
    metrics: pd.DataFrame,
    labels: pd.Series,
    quantiles: Sequence[float] = DEFAULT_QUANTILES,
) -> pd.DataFrame:
    """One row per setting: identity, label, run counts by state and the primary-metric outcomes."""
    order = setting_order(runs, labels)
    settings = settings_table(runs).reindex(order)
    summary = pd.DataFrame({
        "setting_id": pd.Series(order, dtype=object),
        "problem": settings["problem"].to_numpy(dtype=object),
        "optimizer": settings["optimizer"].to_numpy(dtype=object),
        "label": labels.reindex(order).to_numpy(dtype=object),
    })
    counts = _state_counts(runs).reindex(order).fillna(0).astype("int64")
    for column in COUNT_COLUMNS:
        summary[column] = counts[column].to_numpy()

    primary = primary_metrics(runs, metrics)
    summary["metric"] = [primary.get(str(p), "loss") for p in summary["problem"]]
    outcomes = run_outcomes(runs, metrics, primary)
    has_result = runs["state"].isin(RESULT_STATES).to_numpy() & (runs["points"].to_numpy() > 0)
    result_runs = runs.loc[has_result]
    values = outcomes.loc[result_runs["run_id"]].to_numpy(dtype=np.float64)
    is_accuracy = np.array([primary.get(str(p)) == "accuracy" for p in result_runs["problem"]], dtype=bool)
    worst = np.where(is_accuracy, -np.inf, np.inf)[:, None]
    diverged = (result_runs["state"] == "diverged").to_numpy()[:, None]
    values = np.where(np.isfinite(values) & ~diverged, values, np.where(np.isnan(values) | diverged, worst, values))
    codes = pd.Index(order).get_indexer(result_runs["setting_id"])
    stats = group_stats(codes, values, len(order), quantiles)
    low, high = bootstrap_median_ci(codes, values, len(order), CI_CONFIDENCE)
    summary["n"] = stats["n"][:, 0].astype("int64")
    for j, outcome in enumerate(OUTCOMES):
        summary[f"{outcome}_median"] = stats["median"][:, j]
        for q in quantiles:
            summary[f"{outcome}_{quantile_name(q)}"] = stats[quantile_name(q)][:, j]
        summary[f"{outcome}_ci_low"] = low[:, j]
        summary[f"{outcome}_ci_high"] = high[:, j]
    return summary


def _state_counts(runs: pd.DataFrame) -> pd.DataFrame:
    """Per setting: runs, completed, diverged, failed, stopped and other (pending, running, timeout, ...)."""
    states = runs["state"].astype(object)
    table = pd.DataFrame({
        "setting_id": runs["setting_id"].to_numpy(dtype=object),
        "runs": 1,
        "completed": (states == "completed").to_numpy(dtype=np.int64),
        "diverged": (states == "diverged").to_numpy(dtype=np.int64),
        "failed": (states == "failed").to_numpy(dtype=np.int64),
        "stopped": (states == "stopped").to_numpy(dtype=np.int64),
    })
    counts = table.groupby("setting_id", sort=False).sum()
    counts["other"] = counts["runs"] - counts["completed"] - counts["diverged"] - counts["failed"] - counts["stopped"]
    return counts


# ----------------------------------------------------------------------------- writers


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    """CSV through Arrow (10× faster than pandas on wide float tables); pandas where Arrow cannot type a column."""
    try:
        table = pa.Table.from_pandas(frame, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        frame.to_csv(path, index=False)
    else:
        pa_csv.write_csv(table, path)
    return path


def write_parquet(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_parquet(path, index=False, engine="pyarrow")
    return path


def write_markdown(frame: pd.DataFrame, path: Path) -> Path:
    path.write_text(markdown_table(frame), encoding="utf-8")
    return path


def markdown_table(frame: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table; numbers to 4 significant digits, NaN as an empty cell."""
    numeric = _numeric_columns(frame)
    header = "| " + " | ".join(_cell(c) for c in frame.columns) + " |"
    rule = "|" + "|".join("---:" if is_number else ":---" for is_number in numeric) + "|"
    rows = ["| " + " | ".join(format_number(v) if isinstance(v, float) else _cell(v) for v in row) + " |"
            for row in frame.itertuples(index=False, name=None)]
    return "\n".join([header, rule, *rows]) + "\n"


def _numeric_columns(frame: pd.DataFrame) -> list[bool]:
    """Per column: numbers (right-aligned in a table), not booleans or text."""
    return [pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])
            for c in frame.columns]


def write_latex(frame: pd.DataFrame, path: Path, *, caption: str | None = None, label: str | None = None) -> Path:
    path.write_text(latex_table(frame, caption, label), encoding="utf-8")
    return path


def latex_table(frame: pd.DataFrame, caption: str | None = None, label: str | None = None) -> str:
    """A booktabs ``tabular`` (needs ``\\usepackage{booktabs}``); wrapped in a ``table`` with a caption or label.

    Numbers to 4 significant digits (exponents as ``$1.5\\times10^{-5}$``), NaN as an empty
    cell, infinities as ``$\\infty$``; numeric columns right-aligned, others left. Cell text,
    column names and the caption are plain text with LaTeX's special characters escaped;
    the label is used as given.
    """
    numeric = _numeric_columns(frame)
    lines = [
        "\\begin{tabular}{" + "".join("r" if is_number else "l" for is_number in numeric) + "}",
        "\\toprule",
        " & ".join(latex_escape(str(c)) for c in frame.columns) + " \\\\",
        "\\midrule",
        *(" & ".join(_latex_cell(v) for v in row) + " \\\\" for row in frame.itertuples(index=False, name=None)),
        "\\bottomrule",
        "\\end{tabular}",
    ]
    if caption is None and label is None:
        return "\n".join(lines) + "\n"
    head = ["\\begin{table}[htbp]", "\\centering"]
    if caption is not None:
        head.append(f"\\caption{{{latex_escape(caption)}}}")
    if label is not None:
        head.append(f"\\label{{{label}}}")
    return "\n".join([*head, *lines, "\\end{table}"]) + "\n"


_LATEX_SPECIAL = {
    "&": "\\&", "%": "\\%", "$": "\\$", "#": "\\#", "_": "\\_", "{": "\\{", "}": "\\}",
    "~": "\\textasciitilde{}", "^": "\\textasciicircum{}", "\\": "\\textbackslash{}", "\n": " ",
}
_LATEX_PATTERN = re.compile("|".join(re.escape(c) for c in _LATEX_SPECIAL))


def latex_escape(text: str) -> str:
    """Plain text for LaTeX: ``& % $ # _ { } ~ ^ \\`` escaped in one pass (so escapes are not escaped again)."""
    return _LATEX_PATTERN.sub(lambda match: _LATEX_SPECIAL[match.group()], text)


def _latex_cell(value: object) -> str:
    if value is None or value is pd.NA:
        return ""
    if isinstance(value, float | np.floating):
        value = float(value)
        if math.isinf(value):
            return "$\\infty$" if value > 0 else "$-\\infty$"
        text = format_number(value)
        mantissa, exponent = text.partition("e")[::2]
        return f"${mantissa}\\times10^{{{int(exponent)}}}$" if exponent else text
    return latex_escape(str(value))


def format_number(value: float, digits: int = 4) -> str:
    """4 significant digits; NaN as empty text; integral values without a decimal point."""
    if math.isnan(value):
        return ""
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:.{digits}g}"


def _cell(value: object) -> str:
    if value is None or value is pd.NA:
        return ""
    return str(value).replace("|", "\\|").replace("\n", " ")
