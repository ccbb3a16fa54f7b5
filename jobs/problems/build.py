"""Instantiate the problem a validated run spec names."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from jobs.problems.base import Problem
from jobs.problems.registry import PROBLEMS


def build_problem(config: Mapping[str, Any], batch_size: int, device: torch.device, dtype: torch.dtype,
                  data_dir: str | Path | None = None) -> Problem:
    """``data_dir``: the folder of dataset files, for problems that read them (None: none given)."""
    cls = PROBLEMS.load(config["name"])
    return cls(batch_size=batch_size, device=device, dtype=dtype, **PROBLEMS.arguments(config))
