"""``optbench dashboard`` refuses bad input in one sentence (exit status 2) before it serves anything."""

from __future__ import annotations

import socket

import pytest

from orchestrator.dashboard.server import check_results_folder
from orchestrator.errors import UserError
from orchestrator.store import ResultsStore


def sentence(stderr: str) -> str:
    """The error as one line (rich wraps it at the terminal's width)."""
    text = " ".join(stderr.split())
    assert text.startswith("optbench: error: ") and text.endswith(".") and text.count(". ") == 0, text
    return text


def test_a_folder_that_is_not_a_results_folder(optbench, tmp_path):
    folder = tmp_path / "papers"
    folder.mkdir()
    (folder / "notes.txt").write_text("not results")
    code, out, err = optbench("dashboard", "--results", folder)
    assert code == 2 and out == ""
    error = sentence(err)
    assert f"{folder} is not an optbench results folder" in error and "--results DIR" in error


def test_an_empty_folder_is_one_to_launch_into(tmp_path):
    """make services-up creates results/ before anything was launched; the dashboard waits for sweeps there."""
    check_results_folder(ResultsStore(tmp_path))
    (tmp_path / "stray.txt").write_text("")
    with pytest.raises(UserError, match="not an optbench results folder"):
        check_results_folder(ResultsStore(tmp_path))


def test_a_results_folder_that_does_not_exist(optbench, tmp_path):
    code, _, err = optbench("dashboard", "--results", tmp_path / "missing")
    assert code == 2 and f"There is no results folder {tmp_path / 'missing'}" in sentence(err)


def test_a_port_in_use(optbench, results):
    (results / "runs").mkdir(parents=True)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, out, err = optbench("dashboard", "--results", results, "--port", port)
    assert code == 2 and out == ""
    error = sentence(err)
    assert f"127.0.0.1:{port} is already in use" in error and "--port" in error


def test_a_port_out_of_range(optbench, results):
    (results / "sweeps").mkdir(parents=True)
    code, _, err = optbench("dashboard", "--results", results, "--port", 70000)
    assert code == 2 and "127.0.0.1:70000" in sentence(err)


def test_baselines_that_are_not_a_folder(optbench, results):
    (results / "sweeps").mkdir(parents=True)
    code, out, err = optbench("dashboard", "--results", results, "--deepobs", results / "published")
    assert code == 2 and out == ""
    assert f"--deepobs {results / 'published'} is not a folder" in sentence(err)
