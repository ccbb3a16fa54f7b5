"""Whether the container tests can run: Apptainer on PATH, or a skip (a failure in CI)."""

from __future__ import annotations

import os
import shutil

import pytest


def require_apptainer() -> None:
    if shutil.which("apptainer") is None:
        message = "apptainer is not on PATH; install it with make apptainer"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI needs Apptainer: {message}")
        pytest.skip(message)
