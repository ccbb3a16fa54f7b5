"""Short human labels for settings: the optimizer and the hyperparameters that vary. The one labeller.

Launch's progress lines, status, the dashboard, the aggregate and the report
all name a setting through :func:`label_settings` (:func:`setting_labels` is
its form for a runs table). Variation is judged among the settings of the
same problem (a sweep over two problems with different default epochs does
not label every setting with its epochs); a hyperparameter a setting does
not have (PAL has no ``lr``) is left out of its label. Where a view has no
problem column and its settings span several problems, ``qualified=True``
puts the problem first. Examples: ``sgd lr=0.1``, ``adam lr=0.001
schedule=cosine``, ``digits_mlp · sgd lr=0.1``.

Pandas is imported only by :func:`setting_labels`, so launching a sweep does not pay for it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

#: A plugin's identity (see jobs.plugins): part of what its name means, so it varies only between settings that
#: share the name (two versions of one plugin's code), never merely because another optimizer has none.
IDENTITY_KEYS = ("target", "code_hash")
#: The keys of a flat spec that name the problem and the optimizer.
PROBLEM, OPTIMIZER = "problem.name", "optimizer.name"


def label_settings(settings: Mapping[str, Mapping[str, Any]], qualified: bool = False) -> dict[str, str]:
    """``setting_id`` → label, unique within each problem, for settings given as flat specs without the seed.

    A flat spec is what :func:`jobs.spec.flatten` makes of a spec: ``{"problem.name": ..., "optimizer.lr": ...}``.
    """
    problems: dict[Any, dict[str, Mapping[str, Any]]] = {}
    for setting_id, flat in settings.items():
        problems.setdefault(flat.get(PROBLEM), {})[setting_id] = flat
    labels: dict[str, str] = {}
    for problem, group in problems.items():
        varying = varying_keys(group)
        names = short_names(varying)
        texts = {sid: str(flat.get(OPTIMIZER)) + "".join(f" {names[k]}={_text(flat[k])}" for k in varying
                                                         if not _missing(flat.get(k)))
                 for sid, flat in group.items()}
        counts: dict[str, int] = {}
        for text in texts.values():
            counts[text] = counts.get(text, 0) + 1
        for sid, text in texts.items():
            text = f"{text} [{str(sid)[:6]}]" if counts[text] > 1 else text
            labels[sid] = f"{problem} · {text}" if qualified and len(problems) > 1 else text
    return labels


def varying_keys(settings: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Hyperparameter keys with more than one distinct value among ``settings`` (names and identity aside)."""
    keys = sorted({k for flat in settings.values() for k in flat} - {PROBLEM, OPTIMIZER, "seed"})
    varying = []
    for key in keys:
        owner, _, leaf = key.rpartition(".")
        groups: dict[Any, set[str]] = {}
        for flat in settings.values():
            value = flat.get(key)
            if not _missing(value):  # identity varies only among settings of one plugin name
                groups.setdefault(flat.get(f"{owner}.name") if leaf in IDENTITY_KEYS else None, set()).add(_text(value))
        if any(len(values) > 1 for values in groups.values()):
            varying.append(key)
    return varying


def setting_labels(runs: pd.DataFrame, qualified: bool = False) -> pd.Series:
    """``setting_id`` → label (:func:`label_settings`) for a runs table (:func:`analysis.collect.runs_table`)."""
    import pandas as pd

    from analysis.collect import hyperparameter_columns

    settings = settings_table(runs)
    columns = hyperparameter_columns(settings)
    flats = {sid: {PROBLEM: row["problem"], OPTIMIZER: row["optimizer"],
                   **{c: row[c] for c in columns if not _missing(row[c])}}
             for sid, row in zip(settings.index, settings.to_dict("records"), strict=True)}
    return pd.Series(label_settings(flats, qualified), index=settings.index, dtype=object)


def setting_parameters(runs: pd.DataFrame) -> dict[str, dict[str, str]]:
    """``setting_id`` → {short name: value as labels write it} of the hyperparameters that vary among ``runs``.

    Variation is judged over the whole table (not per problem, as for labels), so
    a filter by one hyperparameter spans every problem; a setting without the
    hyperparameter (PAL has no ``lr``) leaves it out.
    """
    settings = settings_table(runs)
    columns = varying_columns(settings)
    names = short_names(columns)
    return {sid: {names[c]: _text(row[c]) for c in columns if not _missing(row[c])}
            for sid, row in zip(settings.index, settings[columns].to_dict("records"), strict=True)}


def settings_table(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per setting (the first run of each), indexed by ``setting_id``, in first-seen order."""
    first = runs.drop_duplicates("setting_id", keep="first")
    return first.set_index("setting_id", drop=False)


def varying_columns(settings: pd.DataFrame) -> list[str]:
    """Hyperparameter columns with more than one distinct value among a table of ``settings``."""
    from analysis.collect import hyperparameter_columns

    columns = hyperparameter_columns(settings)
    flats = {i: {OPTIMIZER: row.get("optimizer"), PROBLEM: row.get("problem"),
                 **{c: row[c] for c in columns if not _missing(row[c])}}
             for i, row in enumerate(settings.to_dict("records"))}
    return [key for key in varying_keys(flats) if key in columns]


def short_names(columns: list[str]) -> dict[str, str]:
    """``optimizer.lr`` → ``lr``, ``schedule.name`` → ``schedule``; full names where short ones clash."""
    short = {c: (c.split(".")[0] if c.endswith(".name") else c.rsplit(".", 1)[-1]) for c in columns}
    counts: dict[str, int] = {}
    for name in short.values():
        counts[name] = counts.get(name, 0) + 1
    return {c: (s if counts[s] == 1 else c) for c, s in short.items()}


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or type(value).__name__ == "NAType"


def _text(value: Any) -> str:
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else f"{value:g}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_text(v) for v in value) + "]"
    return str(value)
