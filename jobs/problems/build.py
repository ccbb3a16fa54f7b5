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
    name = config["name"]
    entry = PROBLEMS.entry(name)
    arguments = {**entry.setup, **PROBLEMS.arguments(config)}
    if entry.dataset is not None:
        arguments.update(problem=name, dataset=entry.dataset, data_dir=data_dir)
    return PROBLEMS.load(name)(batch_size=batch_size, device=device, dtype=dtype, **arguments)
