"""Log a sweep's aggregate to Weights & Biases as one summary run in the sweep's group.

The run (named ``<group>-summary``, job type ``aggregate``) holds the result
tables as ``wandb.Table`` (``tables/<name>``), the figures as ``wandb.Image``
(``figures/<name>``, drawn in :mod:`analysis.style`'s colours), each optimizer's
colour and marker in its config (``styles``, so W&B's own charts can be set to
match), and headline counts in its summary: ``runs``, ``settings``,
``problems``, ``optimizers`` and ``runs_<state>`` for every state.
"""

from __future__ import annotations

import json
import logging
import numbers
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis.style import colour_map
from analysis.wandb_source import SUMMARY_JOB_TYPE, WandbError, reason, wandb_errors
from jobs.run_folder import STATES

log = logging.getLogger(__name__)

#: Aggregate tables logged when present (``None`` ones are left out).
TABLES = ("summary", "best", "robustness", "speed", "targets", "scores", "measurement_summary")
MODES = ("offline", "online", "disabled")


def log_summary(aggregate: Any, logger: Mapping[str, Any], group: str, directory: Path) -> str:
    """Log ``aggregate`` (an :class:`analysis.aggregate.Aggregate`) as the summary run of ``group``.

    ``logger`` holds the sweep's resolved logger settings (``mode``, ``project``,
    ``entity``, ``tags``); W&B writes its files under ``directory/wandb``. Returns
    the run's URL when online, its local folder (for ``wandb sync``) when offline,
    and ``""`` when the mode is ``disabled``. W&B's service may finish writing the
    folder's ``.wandb`` log after this returns; it is complete when the process
    exits (or after ``wandb.teardown()``).
    """
    mode = logger.get("mode", "disabled")
    if mode not in MODES:
        raise WandbError(f"logger.mode must be one of {', '.join(MODES)} to log the W&B summary (got {mode!r}).")
    if mode == "disabled":
        log.info("W&B is disabled; no summary run for %s", group)
        return ""
    os.environ.setdefault("WANDB_SILENT", "true")
    import wandb

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    try:
        run = wandb.init(
            project=logger.get("project") or "optbench",
            entity=logger.get("entity"),
            group=group,
            job_type=SUMMARY_JOB_TYPE,
            name=f"{group}-summary",
            tags=list(logger.get("tags") or []),
            dir=str(directory),
            config=_config(aggregate, group),
            mode=mode,
        )
    except wandb_errors() as error:
        raise WandbError(f"W&B did not start the summary run ({reason(error)}); check WANDB_API_KEY and the network, "
                         "or use logger=offline.") from None
    exit_code = 1
    try:
        run.log(_media(aggregate, wandb))
        run.summary.update(headline(aggregate))
        where = run.url if mode == "online" else str(run.settings.sync_dir)
        exit_code = 0
    finally:
        run.finish(exit_code=exit_code)
    log.info("logged the W&B summary run of %s: %s", group, where)
    return where


def headline(aggregate: Any) -> dict[str, int]:
    """Counts of runs, settings, problems, optimizers and runs in each state."""
    runs = aggregate.runs
    counts = runs["state"].value_counts()
    numbers = {
        "runs": len(runs),
        "settings": int(runs["setting_id"].nunique()),
        "problems": int(runs["problem"].nunique()),
        "optimizers": int(runs["optimizer"].nunique()),
    }
    for state in dict.fromkeys([*STATES, *counts.index]):
        numbers[f"runs_{state}"] = int(counts.get(state, 0))
    return numbers


def _config(aggregate: Any, group: str) -> dict[str, Any]:
    # A JSON round trip turns paths and other objects in the sweep info into text W&B accepts.
    return json.loads(json.dumps({
        "sweep_id": group,
        "sweep": dict(aggregate.info),
        "quantiles": list(aggregate.quantiles),
        "primary": dict(aggregate.primary),
        "styles": colour_map(aggregate.runs["optimizer"].dropna()),
    }, default=str))


def _media(aggregate: Any, wandb: Any) -> dict[str, Any]:
    media: dict[str, Any] = {}
    for name in TABLES:
        frame = getattr(aggregate, name, None)
        if frame is not None:
            media[f"tables/{name}"] = wandb.Table(dataframe=table_frame(frame))
    for name, png in aggregate.figures.items():
        if Path(png).is_file():
            media[f"figures/{name}"] = wandb.Image(str(png))
        else:
            log.warning("figure %s (%s) does not exist; not logging it to W&B", name, png)
    return media


def table_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with one type per column, as ``wandb.Table`` requires.

    Numeric and boolean columns stay; a column of numbers and missing values
    becomes float; any other column becomes text (missing values stay missing).
    """
    columns = {}
    for name in frame.columns:
        column = frame[name]
        if pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
            columns[str(name)] = column.reset_index(drop=True)
            continue
        values = column.astype(object)
        present = values[values.notna()]
        if all(isinstance(v, numbers.Real) and not isinstance(v, bool | np.bool_) for v in present):
            columns[str(name)] = pd.Series(pd.to_numeric(values).astype(float).to_numpy())
        else:
            text = [str(v) if ok else None for v, ok in zip(values, values.notna(), strict=True)]
            columns[str(name)] = pd.Series(text, dtype=object)  # a list would become pandas' str dtype (NaN)
    return pd.DataFrame(columns, index=pd.RangeIndex(len(frame)))
