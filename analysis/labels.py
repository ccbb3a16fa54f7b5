"""Short human labels for settings: the optimizer and the hyperparameters that vary.

Variation is judged among the settings of the same problem (a sweep over two
problems with different default epochs does not label every setting with its
epochs); a hyperparameter a setting does not have (PAL has no ``lr``) is left
out of its label. Example: ``sgd lr=0.1``, ``adam lr=0.001 schedule=cosine``.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from analysis.collect import hyperparameter_columns


def settings_table(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per setting (the first run of each), indexed by ``setting_id``, in first-seen order."""
    first = runs.drop_duplicates("setting_id", keep="first")
    return first.set_index("setting_id", drop=False)


#: A plugin's identity (see jobs.plugins): part of what its name means, so it varies only between settings that
#: share the name (two versions of one plugin's code), never merely because another optimizer has none.
IDENTITY_KEYS = ("target", "code_hash")


def varying_columns(settings: pd.DataFrame) -> list[str]:
    """Hyperparameter columns with more than one distinct value among ``settings``."""
    varying = []
    for column in hyperparameter_columns(settings):
        owner, _, key = column.rpartition(".")
        groups = [settings[column]]
        if key in IDENTITY_KEYS and owner in settings.columns:
            groups = [group[column] for _, group in settings.groupby(owner, dropna=False, sort=False)]
        if any(len({_text(v) for v in values if not _missing(v)}) > 1 for values in groups):
            varying.append(column)
    return varying


def setting_labels(runs: pd.DataFrame) -> pd.Series:
    """``setting_id`` → label, unique within each problem."""
    settings = settings_table(runs)
    labels = pd.Series("", index=settings.index, dtype=object)
    for _, group in settings.groupby("problem", dropna=False, sort=False):
        varying = varying_columns(group)
        names = short_names(varying)
        text = group["optimizer"].map(str).astype(object)
        for column in varying:
            part = group[column].map(lambda v, n=names[column]: "" if _missing(v) else f" {n}={_text(v)}")
            text = text + part.astype(object)
        duplicated = text.duplicated(keep=False)
        text[duplicated] = text[duplicated] + " [" + group.index[duplicated].map(lambda s: str(s)[:6]) + "]"
        labels[group.index] = text
    return labels


def short_names(columns: list[str]) -> dict[str, str]:
    """``optimizer.lr`` → ``lr``, ``schedule.name`` → ``schedule``; full names where short ones clash."""
    short = {c: (c.split(".")[0] if c.endswith(".name") else c.rsplit(".", 1)[-1]) for c in columns}
    counts = pd.Series(list(short.values()), dtype=object).value_counts()
    return {c: (s if counts[s] == 1 else c) for c, s in short.items()}


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _text(value: Any) -> str:
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else f"{value:g}"
    return str(value)
