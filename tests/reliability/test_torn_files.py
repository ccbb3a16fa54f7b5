"""A torn last line in metrics.jsonl, as a job killed mid-append leaves it."""

from __future__ import annotations

import re

import pandas as pd
import pytest
from jobs_support import Killed, Killer, numbers

from analysis.collect import collect_sweep
from jobs.entry import run
from jobs.run_folder import METRICS, read_jsonl
from orchestrator.store import ResultsStore
from orchestrator.sweep import expand

DIGITS = ("problem=digits_mlp", "problem.hidden=8", "problem.dropout=0.3", "train.epochs=4", "logger=disabled")


def points(runs: pd.DataFrame) -> dict[str, tuple[str, int]]:
    return {row.run_id: (row.state, row.points) for row in runs.itertuples()}


def test_a_torn_last_metrics_line_is_skipped_by_readers_and_rewritten_by_resume(tmp_path, monkeypatch, results,
                                                                                 optbench):
    """A job killed while appending epoch 2's metrics leaves half a line: readers, status and aggregate see epochs
    0 and 1 only; resuming cuts the fragment, writes the record again and ends bitwise as if never stopped."""
    sweep = expand([*DIGITS, "seed=0,1"])
    store = ResultsStore(results)
    sweep_dir = store.record(sweep)
    done, torn = sweep.runs
    run(done.spec, store.run_folder(done.run_id).root)
    Killer(monkeypatch, ("eval", 2))
    folder = store.run_folder(torn.run_id)
    with pytest.raises(Killed):
        run(torn.spec, folder.root)
    metrics = folder.path(METRICS)
    whole = metrics.read_bytes()
    last = whole[whole.rstrip(b"\n").rfind(b"\n") + 1:]
    metrics.write_bytes(whole[: len(whole) - len(last) // 2])  # epoch 2's line, cut off midway

    assert [m["epoch"] for m in read_jsonl(metrics)] == [0, 1]
    collected = collect_sweep(sweep_dir, store.runs_dir)
    assert points(collected.runs) == {done.run_id: ("completed", 5), torn.run_id: ("failed", 2)}
    assert list(collected.metrics.loc[collected.metrics["run_id"] == torn.run_id, "epoch"]) == [0, 1]

    status, out, _ = optbench("status", sweep.sweep_id, "--results", results)
    assert status == 0 and "2 runs — 1 failed, 1 completed" in " ".join(out.split())
    row = next(line for line in out.splitlines() if line.lstrip().startswith(torn.run_id))
    assert re.search(r"\bfailed\b.*\b1/4\b", row)

    status, _, _ = optbench("aggregate", sweep.sweep_id, "--results", results, "--no-wandb")
    assert status == 0
    summary = pd.read_csv(sweep_dir / "aggregate" / "summary.csv")
    assert summary[["runs", "completed", "failed", "n"]].to_dict("records") == [
        {"runs": 2, "completed": 1, "failed": 1, "n": 1}]
    assert points(pd.read_csv(sweep_dir / "aggregate" / "runs.csv")) == points(collected.runs)

    run(torn.spec, folder.root)
    assert folder.status()["resumed_from_epoch"] == 1
    assert metrics.read_bytes().count(b"\n") == 5 and metrics.read_bytes().endswith(b"\n")
    unbroken = tmp_path / "unbroken"
    run(torn.spec, unbroken)
    assert numbers(folder.root) == numbers(unbroken)
    assert points(collect_sweep(sweep_dir, store.runs_dir).runs) == {
        done.run_id: ("completed", 5), torn.run_id: ("completed", 5)}
