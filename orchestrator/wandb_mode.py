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

from jobs.schema import Param, positive, validate_params
from orchestrator.errors import UserError

MODES = ("auto", "offline", "online", "disabled")
#: ``conf/logger/*.yaml``'s settings; see those files for what each means.
SCHEMA = {
    "mode": Param("str", choices=MODES),
    "project": Param("str"),
    "entity": Param("str", nullable=True),
    "tags": Param("strs"),
    "heartbeat_seconds": positive(),
}


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
    """The logger settings a job receives: the mode decided, the sweep's id as W&B group, and its name if given.

    Only ``mode`` is required: the job has its own default for a setting left out.
    """
    values = validate_params("logger", "the logger", SCHEMA, config, optional=set(SCHEMA) - {"mode"})
    mode = values["mode"]
    if mode == "auto":
        mode = "online" if has_api_key() else "offline"
    if mode == "online" and not has_api_key():
        raise UserError("W&B online mode needs an API key; set WANDB_API_KEY or run 'wandb login', "
                        "or use logger=offline.")
    return {**values, "mode": mode, "group": group, **({"sweep_name": sweep_name} if sweep_name else {})}
