"""Successive halving's decisions (a sweep's ``halving.jsonl``, see :mod:`orchestrator.halving`) as a table.

One row per decided rung: which candidates it compared at how many epochs,
by which validation metric, the best value and how many (and which) it
promoted. The runs it did not promote are ``stopped`` in the runs table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

RUNG_COLUMNS = ["sweep_id", "candidates_of", "rung", "epochs", "candidates", "promoted", "metric", "best_value",
                "best", "promoted_settings"]


def rungs_table(sweeps: Sequence[Mapping[str, Any]], labels: Mapping[str, str]) -> pd.DataFrame:
    """The decided rungs of every sweep (``info`` dicts with a ``halving`` list), in decision order."""
    rows = []
    for info in sweeps:
        for decision in info.get("halving") or ():
            values = {c: v for c, v in decision["values"].items() if v is not None}
            maximise = decision.get("metric") == "valid_accuracy"
            best = (max if maximise else min)(values, key=values.get) if values else None
            rows.append({
                "sweep_id": info.get("sweep_id", ""),
                "candidates_of": decision.get("title", decision["bracket"]),
                "rung": decision["rung"],
                "epochs": decision["budget"],
                "candidates": len(decision["values"]),
                "promoted": len(decision["promoted"]),
                "metric": decision.get("metric", ""),
                "best_value": values.get(best) if best else None,
                "best": labels.get(best, best) if best else "",
                "promoted_settings": "; ".join(labels.get(c, c) for c in decision["promoted"]),
            })
    return pd.DataFrame(rows, columns=RUNG_COLUMNS)
