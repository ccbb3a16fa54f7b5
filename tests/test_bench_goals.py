"""benchmarks/goals.py: benchmarks record their goals, ``make bench`` ends with one table of them and its verdict."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "goals.py"
_spec = importlib.util.spec_from_file_location("bench_goals", SCRIPT)
goals = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(goals)


@pytest.fixture
def goals_file(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "bench" / "goals.jsonl"
    path.parent.mkdir()
    monkeypatch.setenv(goals.ENV, str(path))
    return path


def command(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True, check=False)


def row(out: str, bench: str, what: str) -> list[str]:
    """The table row of ``bench`` and ``what``, split into its cells (two or more spaces apart)."""
    (line,) = [line for line in out.splitlines() if line.startswith(bench + " ") and what in line]
    return re.split(r"\s{2,}", line.strip())


def ran(bench: str, status: int) -> None:
    """``goals.py ran BENCH STATUS`` in this process (the subprocess path is the same ``main``)."""
    assert goals.main(["ran", bench, str(status)]) == 0


def record_passing(bench: str = "bench_a") -> None:
    goals.at_most(f"benchmarks/{bench}.py", "expand 10,000 runs: time", 0.7, 3, "s")
    goals.at_least(bench, "pipeline × model", 12.5, 5, "×")
    goals.info(bench, "status of 1,000 runs", 41.27, "ms", note="0.3× the baseline")


def test_all_goals_met_prints_one_table_and_exits_0(goals_file):
    record_passing()
    assert command("ran", "bench_a", 0).returncode == 0  # once through the command line
    done = command("report", goals_file)
    assert done.returncode == 0, done.stdout
    assert done.stdout.splitlines()[0].split() == ["benchmark", "what", "figure", "goal", "result", "note"]
    assert row(done.stdout, "bench_a", "time") == ["bench_a", "expand 10,000 runs: time", "0.7 s", "≤ 3 s", "PASS"]
    assert row(done.stdout, "bench_a", "pipeline") == ["bench_a", "pipeline × model", "12.5×", "≥ 5×", "PASS"]
    assert row(done.stdout, "bench_a", "status") == ["bench_a", "status of 1,000 runs", "41.3 ms", "—", "info",
                                                     "0.3× the baseline"]
    assert "1 benchmark, 3 rows: 2 PASS, 0 FAIL, 1 info" in done.stdout
    assert "FAILED" not in done.stdout


def test_a_failed_goal_fails_the_report(goals_file):
    record_passing()
    assert goals.at_most("bench_b", "launch: time", 15.7, 5, "s") is False
    goals.record("bench_b", "sbatch calls", 3, "= 1", False)
    for bench in ("bench_a", "bench_b"):
        ran(bench, 0)
    done = command("report", goals_file)
    assert done.returncode == 1
    assert row(done.stdout, "bench_b", "launch") == ["bench_b", "launch: time", "15.7 s", "≤ 5 s", "FAIL"]
    assert row(done.stdout, "bench_b", "sbatch") == ["bench_b", "sbatch calls", "3", "= 1", "FAIL"]
    assert "2 benchmarks, 5 rows: 2 PASS, 2 FAIL, 1 info" in done.stdout
    assert "FAILED:\n  bench_b: launch: time (15.7 s)\n  bench_b: sbatch calls (3)" in done.stdout


def test_a_crashed_benchmark_is_a_failed_row_after_its_goals(goals_file):
    record_passing()
    ran("bench_a", 0)
    goals.at_most("bench_c", "first part", 1.0, 2, "s")  # then it crashed
    ran("bench_c", 1)
    ran("bench_d", 137)  # killed before recording anything
    done = command("report", goals_file)
    assert done.returncode == 1
    lines = [line.split()[0] for line in done.stdout.splitlines()[2:7]]
    assert lines == ["bench_a"] * 3 + ["bench_c"] * 2
    assert row(done.stdout, "bench_c", "the benchmark") == ["bench_c", "the benchmark", "exited with status 1",
                                                            "status 0", "FAIL"]
    assert row(done.stdout, "bench_d", "the benchmark")[2:] == ["exited with status 137", "status 0", "FAIL"]
    assert "3 benchmarks, 6 rows: 3 PASS, 2 FAIL, 1 info" in done.stdout


def test_a_benchmark_that_recorded_nothing_fails(goals_file):
    record_passing()
    ran("bench_a", 0)
    ran("bench_quiet", 0)
    done = command("report", goals_file)
    assert done.returncode == 1
    assert row(done.stdout, "bench_quiet", "the benchmark")[2:] == ["recorded no goal", "≥ 1 goal recorded", "FAIL"]


def test_nothing_recorded_or_an_unreadable_line_fails(goals_file):
    done = command("report", goals_file)
    assert (done.returncode, done.stdout.strip()) == (1, f"no benchmark recorded a goal in {goals_file}")
    record_passing()
    with goals_file.open("a") as stream:
        stream.write('{"bench": "bench_a", "what": "torn\n')
    done = command("report", goals_file)
    assert done.returncode == 1
    assert row(done.stdout, "(goals file)", "line 4")[2:] == ["unreadable", "a JSON row", "FAIL"]


def test_without_the_variable_a_goal_is_printed_not_written(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv(goals.ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    assert goals.at_most("bench_a", "expand: time", 3.5, 3, "s") is False
    assert capsys.readouterr().out == "[FAIL] bench_a: expand: time: 3.5 s (goal ≤ 3 s)\n"
    assert list(tmp_path.iterdir()) == []
    assert command("ran", "bench_a", 0).returncode == 2  # nowhere to record it


def test_numpy_figures_are_recorded_as_numbers(goals_file):
    import json

    import numpy as np

    goals.at_most("bench_a", "peak memory", np.float32(0.25), 2, "GB")
    goals.info("bench_a", "matches", np.bool_(True))
    rows = [json.loads(line) for line in goals_file.read_text().splitlines()]
    assert [(r["figure"], r["value"], r["result"]) for r in rows] == [("0.25 GB", 0.25, "PASS"), ("yes", None, "info")]


def test_figures_read_well():
    assert [goals.number(v, u) for v, u in [(0.7034, "s"), (15.71, "s"), (312.4, "MB"), (10_000, ""),
                                             (1.234, "×"), (0.5, "%"), (2.31, "× gradient"), (True, ""),
                                             (float("nan"), "s")]] == [
        "0.703 s", "15.7 s", "312 MB", "10,000", "1.23×", "0.5%", "2.31× gradient", "yes", "nan s"]
