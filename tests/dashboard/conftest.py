"""A sweep with a run in each state the dashboard shows, launched once per session and copied for each test."""

from __future__ import annotations

import dataclasses
import shutil

import pytest
from monitor_support import MixedSweep, make_mixed_sweep

from orchestrator.store import ResultsStore


@pytest.fixture(scope="session")
def launched_sweep(tmp_path_factory) -> MixedSweep:
    """Four real runs (about 12 s): made once, never changed; tests get copies."""
    return make_mixed_sweep(tmp_path_factory.mktemp("launched") / "results")


@pytest.fixture
def mixed(launched_sweep, tmp_path) -> MixedSweep:
    """This test's own copy of the results folder (the job logs stay where the sweep's ledger names them)."""
    store = ResultsStore(tmp_path / "results")
    shutil.copytree(launched_sweep.store.root, store.root)
    return dataclasses.replace(launched_sweep, store=store, sweep_dir=store.sweep_dir(launched_sweep.sweep_dir.name))

