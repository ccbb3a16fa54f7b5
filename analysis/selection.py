"""DeepOBS's selection: the best setting of each (problem, optimizer), and how robust the choice is.

A setting's *score* is the median over its seeds of the criterion (``final_valid``
or ``best_valid``, DeepOBS uses the final validation metric), read from the
summary table. Higher is better for accuracy, lower for loss. A setting whose
median is not finite (most of its seeds diverged) is never selected, but it is
counted in the robustness figures as the worst score, so a grid where most
learning rates diverge does not look robust.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis import CRITERIA
from analysis.stats import group_stats

#: A setting is *near best* when its score is within this fraction of the best score.
NEAR_BEST = 0.05
GROUP = ["problem", "optimizer"]
BEST_FRONT = ["problem", "optimizer", "setting_id", "label", "criterion", "score", "settings"]
ROBUSTNESS_COLUMNS = [*GROUP, "settings", "scored", "diverged_settings", "best_score", "grid_median", "grid_q25",
                      "grid_q75", "near_best"]


def check_criterion(criterion: str) -> str:
    if criterion not in CRITERIA:
        raise ValueError(f"the selection criterion must be one of {', '.join(CRITERIA)}; got {criterion!r}.")
    return criterion


def scores(summary: pd.DataFrame, criterion: str = "final_valid") -> np.ndarray:
    """Each setting's score oriented so that lower is better (accuracy negated); non-finite → +inf."""
    value = summary[f"{check_criterion(criterion)}_median"].to_numpy(dtype=np.float64)
    oriented = np.where(summary["metric"].to_numpy() == "accuracy", -value, value)
    return np.where(np.isfinite(oriented), oriented, np.inf)


def select_best(summary: pd.DataFrame, criterion: str = "final_valid") -> pd.DataFrame:
    """One row per (problem, optimizer) with a finite score: the setting with the best score.

    Ties go to the setting listed first in ``summary``. Columns: ``BEST_FRONT``, then
    the rest of the chosen setting's summary row.
    """
    oriented = scores(summary, criterion)
    frame = summary.assign(_score=oriented, _position=np.arange(len(summary)))
    settings = frame.groupby(GROUP, sort=False)["setting_id"].transform("size")
    frame = frame.assign(settings=settings.to_numpy())
    finite = frame[np.isfinite(oriented)]
    if finite.empty:
        return pd.DataFrame(columns=[*BEST_FRONT, *(c for c in summary.columns if c not in BEST_FRONT)])
    chosen = finite.sort_values(["_score", "_position"], kind="stable").drop_duplicates(GROUP, keep="first")
    chosen = chosen.sort_values("_position", kind="stable")
    best = chosen.assign(criterion=criterion, score=chosen[f"{criterion}_median"].to_numpy(dtype=np.float64))
    rest = [c for c in summary.columns if c not in BEST_FRONT]
    return best[[*BEST_FRONT, *rest]].reset_index(drop=True)


def robustness(summary: pd.DataFrame, criterion: str = "final_valid") -> pd.DataFrame:
    """Per (problem, optimizer): how the score spreads over the tuning grid.

    ``grid_*`` are the median and quartiles of the settings' scores (non-finite
    scores count as the worst), ``near_best`` the share of settings within
    ``NEAR_BEST`` (relative) of the best one, ``diverged_settings`` the settings
    with at least one diverged seed.
    """
    if summary.empty:
        return pd.DataFrame(columns=ROBUSTNESS_COLUMNS)
    oriented = scores(summary, criterion)
    groups = summary.groupby(GROUP, sort=False)
    codes = groups.ngroup().to_numpy()
    keys = summary[GROUP].drop_duplicates().reset_index(drop=True)
    spread = group_stats(codes, oriented, len(keys), (0.25, 0.75))
    finite = np.where(np.isfinite(oriented), oriented, np.nan)
    best = pd.Series(finite).groupby(codes).min().reindex(range(len(keys))).to_numpy()
    near = oriented <= (best + NEAR_BEST * np.abs(best))[codes]
    sign = np.where(summary["metric"].groupby(codes).first().to_numpy() == "accuracy", -1.0, 1.0)
    lower, upper = spread["q25"][:, 0], spread["q75"][:, 0]
    frame = keys.assign(
        settings=np.bincount(codes, minlength=len(keys)),
        scored=np.bincount(codes, weights=np.isfinite(oriented), minlength=len(keys)).astype(np.int64),
        diverged_settings=np.bincount(codes, weights=summary["diverged"].to_numpy() > 0,
                                      minlength=len(keys)).astype(np.int64),
        best_score=sign * best,
        grid_median=sign * spread["median"][:, 0],
        grid_q25=np.where(sign > 0, lower, -upper),
        grid_q75=np.where(sign > 0, upper, -lower),
        near_best=np.bincount(codes, weights=near, minlength=len(keys)) / np.bincount(codes, minlength=len(keys)),
    )
    return frame[ROBUSTNESS_COLUMNS]
