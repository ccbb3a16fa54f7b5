"""Sweeps logged to W&B offline, made once per session; tests that change one work on a copy."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import wandb
from fake_wandb import API_KEY, FakeWandb
from wandb_support import Killed, kill_after_eval

from jobs.entry import run
from orchestrator.cli import main
from orchestrator.store import ResultsStore
from orchestrator.sweep import expand

#: Two tiny runs (seeds 1 and 2) with a user tag; every evaluation and every 4th step logged.
OVERRIDES = ("problem=digits_mlp", "problem.hidden=8", "train.epochs=2", "train.log_every=4", "seed=1,2",
             "logger=offline", "logger.tags=[nightly]")
#: One run of 3 epochs (evaluations at steps 0, 18, 36 and 54), every 4th step logged.
RESUMED = ("problem=digits_mlp", "problem.hidden=8", "train.epochs=3", "train.log_every=4", "logger=offline")


@contextmanager
def isolated(tmp: Path) -> Iterator[pytest.MonkeyPatch]:
    """What tests/conftest.py's autouse fixture does for each test: no API key, W&B's files under ``tmp``."""
    with pytest.MonkeyPatch.context() as env:
        for name in ("WANDB_API_KEY", "OPTBENCH_RESULTS", "OPTBENCH_CONF", "WANDB_MODE"):
            env.delenv(name, raising=False)
        env.setenv("NETRC", str(tmp / "no-netrc"))
        env.setenv("WANDB_DIR", str(tmp / "wandb"))
        env.setenv("WANDB_SILENT", "true")
        yield env
        wandb.teardown()  # as at process exit: every record log is complete


@pytest.fixture(scope="session")
def offline_sweep(tmp_path_factory) -> Path:
    """The results folder of a sweep launched and aggregated through the CLI (W&B offline, no API key)."""
    tmp = tmp_path_factory.mktemp("offline-sweep")
    results = tmp / "results"
    with isolated(tmp):
        assert main(["launch", *OVERRIDES, "--results", str(results)]) == 0
        (sweep_dir,) = (results / "sweeps").iterdir()
        assert main(["aggregate", sweep_dir.name, "--results", str(results)]) == 0
    return results


@pytest.fixture(scope="session")
def resumed_sweep(tmp_path_factory) -> Path:
    """The results folder of a one-run sweep whose job was killed once and resumed.

    The kill comes once epoch 2's metrics line is on disk, before W&B sees
    that evaluation (W&B has the step rows up to 32; the job resumes from
    epoch 1's checkpoint at step 18). The logger settings name the sweep.
    """
    tmp = tmp_path_factory.mktemp("resumed-sweep")
    store = ResultsStore(tmp / "results")
    sweep = expand(list(RESUMED))
    store.record(sweep)
    (only,) = sweep.runs
    runtime = {"logger": {"mode": "offline", "project": "optbench", "group": sweep.sweep_id, "sweep_name": sweep.name,
                          "tags": []}}
    with isolated(tmp) as env:
        kill_after_eval(env, epoch=2)
        with pytest.raises(Killed):
            run(only.spec, store.run_folder(only.run_id).root, runtime)
        wandb.teardown()  # as at the end of the killed job's process
        run(only.spec, store.run_folder(only.run_id).root, runtime)
    return store.root


@pytest.fixture
def fake_wandb(monkeypatch) -> Iterator[FakeWandb]:
    """W&B's server, faked (a mock: the real one cannot be reached from the tests), with an API key for it."""
    with FakeWandb() as fake:
        monkeypatch.setenv("WANDB_BASE_URL", fake.url)
        monkeypatch.setenv("WANDB_API_KEY", API_KEY)
        yield fake
    assert not fake.errors, fake.errors


@pytest.fixture
def results_copy(offline_sweep, tmp_path) -> Path:
    return Path(shutil.copytree(offline_sweep, tmp_path / "results", symlinks=True))
