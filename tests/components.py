"""The real components the integration tests need: a missing one is a failure, never a skip.

``make test`` installs and starts them (Apptainer, a local Slurm, headless Chromium); a test
that finds one missing says how to get it.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from pathlib import Path

import pytest


def require_apptainer() -> None:
    if shutil.which("apptainer") is None:
        pytest.fail("apptainer is not on PATH; install it with make apptainer (make test does).")


def require_slurm() -> None:
    answers = shutil.which("sinfo") is not None and subprocess.run(
        ["sinfo", "-h"], capture_output=True, timeout=30).returncode == 0
    if not answers:
        pytest.fail("no Slurm answers here; start one with make cluster-up (make test does).")


#: Debian's chromium package; the report's browser test drives it through playwright.
CHROMIUM = Path("/usr/bin/chromium")


def require_chromium() -> Path:
    """The Chromium executable, when it and playwright are both here."""
    if not CHROMIUM.is_file() or importlib.util.find_spec("playwright") is None:
        pytest.fail(f"headless Chromium ({CHROMIUM}) or playwright is missing; install them with make browser "
                    "(make test does).")
    return CHROMIUM
