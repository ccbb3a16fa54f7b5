"""What ``optbench status`` says about time and problems, and its listing of every sweep."""

from __future__ import annotations

import re

import pytest

from jobs.run_folder import SWEEP_FILE, RunFolder, read_json, write_json
from orchestrator.monitor import RunProgress, running_time, sweep_progress
from orchestrator.store import ResultsStore


def run(state: str, started: float | None, ended: float | None = None) -> RunProgress:
    return RunProgress(run_id="r", state=state, label="", seed=0, fraction=1.0, started=started, ended=ended)


def test_running_time_is_the_union_of_the_runs_spans():
    runs = [run("completed", 100, 130), run("completed", 120, 150),  # overlapping: 100–150
            run("completed", 1000, 1010),                              # a resume days later: +10, not the gap
            run("pending", None), run("running", 2000)]                 # running until now
    assert running_time(runs, now=2005) == pytest.approx(50 + 10 + 5)
    assert running_time([run("failed", 500)], now=900) == 0  # a job that died without an end time
    assert running_time([run("pending", None)], now=10) is None


def finish_sweep(results, *overrides: str) -> tuple[ResultsStore, str]:
    from orchestrator.cli import main

    assert main(["launch", "problem=rosenbrock,himmelblau", "optimizer.lr=0.001", "train.epochs=1",
                 "logger=disabled", *overrides, "--results", str(results)]) == 0
    store = ResultsStore(results)
    (sweep_dir,) = store.sweeps_dir.iterdir()
    return store, sweep_dir.name


def test_status_of_a_finished_sweep_shows_its_run_time_not_its_age(results, optbench):
    store, sweep_id = finish_sweep(results, "seed=0,1")
    sweep_dir = store.sweep_dir(sweep_id)
    # Rewrite the record as if the sweep was created an hour before its runs, which took 7 s in all.
    info = read_json(sweep_dir / SWEEP_FILE)
    base = info["created"]
    write_json(sweep_dir / SWEEP_FILE, {**info, "created": base - 3600})
    for index, entry in enumerate(store.sweep_runs(sweep_dir)):
        RunFolder(store.run_folder(entry["run_id"]).root).update(started=base + index, ended=base + index + 4)
    progress = sweep_progress(store, sweep_dir)
    assert progress.running_seconds == pytest.approx(3 + 4)  # spans [0,4], [1,5], [2,6], [3,7]
    code, out, _ = optbench("status", sweep_id, "--results", results)
    assert code == 0 and "run time 00:00:07" in out and "ended" in out


def test_status_has_a_problem_column_and_a_line_per_problem_when_the_table_is_cut(results, optbench):
    store, sweep_id = finish_sweep(results, "seed=range(21)")  # 42 runs: more than the 40 rows shown
    code, out, _ = optbench("status", sweep_id, "--results", results)
    assert code == 0
    header = next(line for line in out.splitlines() if line.split()[:2] == ["run", "problem"])
    assert "setting" in header
    assert re.search(r"^himmelblau  21 runs, 100 %: 21 completed$", out, re.MULTILINE)
    assert re.search(r"^rosenbrock  21 runs, 100 %: 21 completed$", out, re.MULTILINE)
    rows = [line for line in out.splitlines() if re.match(r"\s*[0-9a-f]{12}\s", line)]
    assert len(rows) == 40 and all(line.split()[1] in ("himmelblau", "rosenbrock") for line in rows)
    code, out, _ = optbench("status", sweep_id, "--all", "--results", results)
    assert "21 runs, 100 %" not in out  # every run is listed: no summary needed


def test_status_without_a_sweep_lists_every_sweep(results, optbench):
    store, first = finish_sweep(results, "seed=0")
    assert optbench("launch", "problem=beale", "train.epochs=1", "logger=disabled", "seed=0,1,2",
                    "--dry-run", "--results", results)[0] == 0  # a dry run leaves no sweep behind
    assert optbench("launch", "problem=rosenbrock", "optimizer.lr=0.001", "train.epochs=1", "logger=disabled",
                    "seed=0,1,2", "--results", results)[0] == 0
    code, out, _ = optbench("status", "--results", results)
    assert code == 0
    lines = {line.split()[0]: line for line in out.splitlines() if re.match(r"\s*adhoc-", line)}
    assert len(lines) == 2 and first in lines
    second = next(name for name in lines if name != first)
    assert out.index(second) < out.index(first)  # newest first
    assert re.search(r"\s2\s+2 completed\s+100 %", lines[first])
    assert re.search(r"\s3\s+3 completed\s+100 %", lines[second])


def test_status_without_a_sweep_in_an_empty_or_missing_folder(tmp_path, optbench):
    (tmp_path / "empty").mkdir()
    code, out, _ = optbench("status", "--results", tmp_path / "empty")
    assert code == 0 and "No sweep in" in out
    code, _, err = optbench("status", "--results", tmp_path / "missing")
    assert code == 2 and "There is no results folder" in err
    code, _, err = optbench("status", "--watch", "--results", tmp_path / "empty")
    assert code == 2 and "--watch follows one sweep" in err
