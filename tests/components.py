"""The real components the integration tests need: a missing one is a failure, never a skip.

``make test`` installs and starts them (Apptainer, a local Slurm); a test
that finds one missing says how to get it.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest


def require_apptainer() -> None:
    if shutil.which("apptainer") is None:
        pytest.fail("apptainer is not on PATH; install it with make apptainer (make test does).")


def require_slurm() -> None:
    answers = shutil.which("sinfo") is not None and subprocess.run(
        ["sinfo", "-h"], capture_output=True, timeout=30).returncode == 0
    if not answers:
        pytest.fail("no Slurm answers here; start one with make cluster-up (make test does).")
