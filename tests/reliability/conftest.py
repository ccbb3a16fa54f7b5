"""Fault injection into the data plane: kills, corrupt checkpoints, torn lines, a full disk, divergence.

The tests reuse the data-plane helpers of ``tests/jobs`` (``jobs_support``), imported by module name.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

JOBS_TESTS = str(Path(__file__).resolve().parents[1] / "jobs")
if JOBS_TESTS not in sys.path:
    sys.path.append(JOBS_TESTS)


@pytest.fixture
def job_threads() -> Iterator[int]:
    """The torch threads of the local jobs these tests launch (``launcher.threads_per_run``).

    A reference run in this process uses as many, to be bitwise comparable; the count is restored after.
    """
    threads = torch.get_num_threads()
    yield 1
    torch.set_num_threads(threads)
