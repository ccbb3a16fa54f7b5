"""Wall-clock per epoch, and its ratio to SGD on the same problem (DeepOBS's speed comparison).

A run's seconds per epoch is its training time at its last evaluation point
divided by the epochs done by then (``time`` is training time: evaluations and
checkpoints are not in it). Runs with a result (completed or diverged) and at
least one epoch done count. Over the runs of each (problem, optimizer), every
setting of the grid included: median and quartiles; ``relative_to_sgd`` is the
median over the median of the baseline optimizer on the same problem.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.stats import group_stats
from jobs.run_folder import DONE_STATES

BASELINE = "sgd"
COLUMNS = ["problem", "optimizer", "runs", "seconds_per_epoch_median", "seconds_per_epoch_q25",
           "seconds_per_epoch_q75", "relative_to_sgd"]


def seconds_per_epoch(runs: pd.DataFrame, metrics: pd.DataFrame) -> pd.Series:
    """Per run with a result and at least one epoch done (index ``run_id``): training seconds per epoch."""
    if metrics.empty or "time" not in metrics.columns:
        return pd.Series(dtype=np.float64, name="seconds_per_epoch")
    codes = metrics["run_id"].cat.codes.to_numpy()
    last = np.flatnonzero(np.r_[codes[1:] != codes[:-1], True])
    epochs = metrics["epoch"].to_numpy(dtype=np.float64)[last]
    seconds = metrics["time"].to_numpy(dtype=np.float64)[last]
    run_ids = np.asarray(metrics["run_id"].cat.categories, dtype=object)[codes[last]]
    with np.errstate(divide="ignore", invalid="ignore"):
        per_epoch = pd.Series(np.where(epochs > 0, seconds / epochs, np.nan), index=run_ids, name="seconds_per_epoch")
    with_result = runs.loc[runs["state"].isin(DONE_STATES), "run_id"]
    return per_epoch.reindex(with_result).dropna()


def speed_table(runs: pd.DataFrame, metrics: pd.DataFrame) -> pd.DataFrame:
    """One row per (problem, optimizer) with measured runs; see the module docstring."""
    per_epoch = seconds_per_epoch(runs, metrics)
    if per_epoch.empty:
        return pd.DataFrame(columns=COLUMNS)
    owners = runs.set_index("run_id").loc[per_epoch.index, ["problem", "optimizer"]].reset_index(drop=True)
    codes = owners.groupby(["problem", "optimizer"], sort=False).ngroup().to_numpy()
    keys = owners.drop_duplicates().reset_index(drop=True)
    stats = group_stats(codes, per_epoch.to_numpy(), len(keys), (0.25, 0.75))
    table = keys.assign(
        runs=stats["n"][:, 0].astype(np.int64),
        seconds_per_epoch_median=stats["median"][:, 0],
        seconds_per_epoch_q25=stats["q25"][:, 0],
        seconds_per_epoch_q75=stats["q75"][:, 0],
    )
    reference = table[table["optimizer"] == BASELINE].set_index("problem")["seconds_per_epoch_median"]
    table["relative_to_sgd"] = table["seconds_per_epoch_median"] / table["problem"].map(reference).astype(np.float64)
    return table[COLUMNS]
