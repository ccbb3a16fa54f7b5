"""Launchers: where a sweep's runs execute. ``local`` waits for them; ``slurm`` submits and returns."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from orchestrator.errors import UserError
from orchestrator.launchers.local import LocalSettings
from orchestrator.launchers.slurm import SlurmSettings

SETTINGS = {"local": LocalSettings, "slurm": SlurmSettings}


def settings_for(config: Mapping[str, Any]) -> LocalSettings | SlurmSettings:
    """Validated settings of the launcher a sweep's config names."""
    name = config.get("name")
    if name not in SETTINGS:
        raise UserError(f"Unknown launcher {name!r}; choose launcher=local or launcher=slurm.")
    return SETTINGS[name].from_config(config)
