"""Instantiate the problem a validated run spec names."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from jobs.problems.base import Problem
from jobs.problems.registry import PROBLEMS


def build_problem(config: Mapping[str, Any], batch_size: int, device: torch.device, dtype: torch.dtype,
                  data_dir: str | Path | None = None) -> Problem:
    """``data_dir``: the folder of dataset files, for problems that read them (None: none given).

    A plugin gets ``batch_size``, ``device``, ``dtype`` and ``data_dir`` by name, those its constructor takes;
    a problem without files gets ``data_dir`` when its constructor takes it (to cache what it generates there).
    """
    name = config["name"]
    entry = PROBLEMS.resolve(config)
    cls = PROBLEMS.load(config)
    arguments = {**entry.setup, **PROBLEMS.arguments(config)}
    context = {"batch_size": batch_size, "device": device, "dtype": dtype}
    if entry.plugin is not None:
        accepted = inspect.signature(entry.plugin.cls).parameters
        context = {k: v for k, v in {**context, "data_dir": data_dir}.items() if k in accepted}
    elif entry.dataset is not None:
        arguments.update(problem=name, dataset=entry.dataset, data_dir=data_dir)
    elif "data_dir" in inspect.signature(cls).parameters:
        arguments["data_dir"] = data_dir
    return cls(**context, **arguments)
