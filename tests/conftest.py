"""Shared fixtures. Tests never touch the user's results folder or W&B account."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from orchestrator.cli import main


@pytest.fixture(autouse=True)
def isolated_environment(monkeypatch, tmp_path):
    """No API key (so W&B is offline), no inherited results folder, W&B files under tmp."""
    for name in ("WANDB_API_KEY", "OPTBENCH_RESULTS", "OPTBENCH_CONF", "WANDB_MODE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb"))
    monkeypatch.setenv("WANDB_SILENT", "true")


@pytest.fixture
def results(tmp_path) -> Path:
    return tmp_path / "results"


@pytest.fixture
def optbench(capsys):
    """Run the CLI in-process; returns (exit status, stdout, stderr)."""

    def run(*args: str) -> tuple[int, str, str]:
        status = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return status, out, err

    return run


def pytest_report_header(config):
    return f"CI={os.environ.get('CI', '')}"
