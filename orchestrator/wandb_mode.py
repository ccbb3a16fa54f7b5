"""Which Weights & Biases mode a sweep's runs use.

``auto`` (the default) means online when an API key is available and
offline otherwise, so a laptop or a compute node without internet never
fails for lack of W&B. The key itself is never copied anywhere: W&B reads
it from the environment or ~/.netrc inside the job.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from jobs.sinks import HEARTBEAT_SECONDS
from orchestrator.errors import UserError

MODES = ("auto", "offline", "online", "disabled")


def has_api_key() -> bool:
    """A key in WANDB_API_KEY, or a ~/.netrc entry for W&B's host (WANDB_BASE_URL's; api.wandb.ai by default)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai").hostname or "api.wandb.ai"
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    try:
        return host in netrc.read_text()
    except OSError:
        return False


def resolve(config: Mapping[str, Any], group: str, sweep_name: str | None = None) -> dict[str, Any]:
    """The logger settings a job receives: the mode decided, the sweep's id as W&B group, and its name if given."""
    mode = config.get("mode", "auto")
    if mode not in MODES:
        raise UserError(f"logger.mode must be one of {', '.join(MODES)} (got {mode!r}).")
    if mode == "auto":
        mode = "online" if has_api_key() else "offline"
    if mode == "online" and not has_api_key():
        raise UserError("W&B online mode needs an API key; set WANDB_API_KEY or run 'wandb login', "
                        "or use logger=offline.")
    heartbeat = config.get("heartbeat_seconds", HEARTBEAT_SECONDS)
    if isinstance(heartbeat, bool) or not isinstance(heartbeat, int | float) or not heartbeat > 0:
        raise UserError(f"logger.heartbeat_seconds must be a positive number of seconds (got {heartbeat!r}).")
    return {**config, "mode": mode, "group": group, **({"sweep_name": sweep_name} if sweep_name else {})}
