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

from orchestrator.errors import UserError

MODES = ("auto", "offline", "online", "disabled")


def has_api_key() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    try:
        return "api.wandb.ai" in netrc.read_text()
    except OSError:
        return False


def resolve(config: Mapping[str, Any], group: str) -> dict[str, Any]:
    """The logger settings a job receives, with the mode decided and the sweep as W&B group."""
    mode = config.get("mode", "auto")
    if mode not in MODES:
        raise UserError(f"logger.mode must be one of {', '.join(MODES)} (got {mode!r}).")
    if mode == "auto":
        mode = "online" if has_api_key() else "offline"
    if mode == "online" and not has_api_key():
        raise UserError("W&B online mode needs an API key; set WANDB_API_KEY or run 'wandb login', "
                        "or use logger=offline.")
    return {**config, "mode": mode, "group": group}
