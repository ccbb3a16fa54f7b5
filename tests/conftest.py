"""Shared fixtures. Tests never touch the user's results folder or W&B account.

Tests that need a real component (Slurm, an Apptainer image, Chromium, a fresh
environment with optbench installed) or run real jobs are marked
``integration``: ``make test`` runs everything, ``make test-unit`` the rest in
seconds.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import pytest
from components import require_apptainer, require_chromium
from plugin_support import TOYS, Installed, install
from rich.console import Console

from orchestrator.cli import main

TESTS = Path(__file__).resolve().parent
#: What makes a test an integration test: a fixture that brings up a real component, or a folder of such tests.
COMPONENT_FIXTURES = frozenset({"slurm_cluster", "cpu_image", "installed", "chromium"})
COMPONENT_FOLDERS = frozenset({"slurm", "container", "reliability"})


def pytest_collection_modifyitems(items):
    for item in items:
        folder = Path(item.fspath).resolve().relative_to(TESTS).parts[0]
        if folder in COMPONENT_FOLDERS or COMPONENT_FIXTURES & set(item.fixturenames):
            item.add_marker(pytest.mark.integration)


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
def one_thread():
    """Tiny models on one torch thread: thread start-up costs more than the work (and a lot when the cores are
    busy with other work), and one thread keeps float32 sums in one order. Modules ask for it with
    ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def optbench(capsys):
    """Run the CLI in-process; returns (exit status, stdout, stderr)."""

    def run(*args: str) -> tuple[int, str, str]:
        status = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return status, out, err

    return run


@pytest.fixture(scope="session")
def cpu_image() -> Path:
    """The CPU image of this tree with the toy plugin package on top, built by ``optbench image build``'s own
    code once per content.

    Cached under build/test-images/ by a hash of everything the image is made
    from, so an unchanged tree reuses it; OPTBENCH_TEST_IMAGE names one to use.
    """
    require_apptainer()
    given = os.environ.get("OPTBENCH_TEST_IMAGE")
    if given:
        return Path(given).resolve()
    from orchestrator import image

    cache = image.SOURCE_ROOT / "build" / "test-images"
    path = cache / f"optbench-cpu-{_image_inputs_hash(image)}.sif"
    if not path.is_file():
        for stale in cache.glob("optbench-cpu-*.sif"):
            stale.unlink()
        log = io.StringIO()
        try:
            image.build("cpu", path, None, Console(file=log, width=200), plugins=[str(TOYS)])
        except Exception:
            print(log.getvalue()[-5000:])
            raise
    return path


def _image_inputs_hash(image) -> str:
    digest = hashlib.sha256()
    files = [*image.CONTAINERS.glob("*")]
    for entry in (*image.PROJECT_FILES, TOYS.relative_to(image.SOURCE_ROOT)):
        root = image.SOURCE_ROOT / entry
        files += [root] if root.is_file() else [
            p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    for path in sorted(files):
        digest.update(str(path.relative_to(image.SOURCE_ROOT)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


@pytest.fixture(scope="session")
def installed(tmp_path_factory) -> Installed:
    """optbench from a wheel and the toy plugin package, pip-installed in a fresh virtual environment."""
    return install(tmp_path_factory.mktemp("fresh-venv"))


@pytest.fixture
def elsewhere(tmp_path) -> Path:
    """A working folder outside the repository."""
    folder = tmp_path / "work"
    folder.mkdir()
    return folder


def pytest_report_header(config):
    return f"CI={os.environ.get('CI', '')}"


#: Headless Chromium without sandbox (root in CI), GPU or any background traffic of its own.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="session")
def chromium():
    """Debian's Chromium driven by playwright, once per test session."""
    executable = require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(executable), args=CHROMIUM_ARGS)
        yield browser
        browser.close()
