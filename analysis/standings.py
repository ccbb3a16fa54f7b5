"""The report's first screen: per problem, each optimizer's tuned result, its interval and its rank.

An optimizer's *tuned result* on a problem is the final test metric of its best
setting (DeepOBS's selection by the validation criterion, :mod:`analysis.selection`):
the median over seeds with the 95 % bootstrap interval of that median. Ranks
order the tuned results (lower loss, higher accuracy first); equal medians share
a rank (1, 1, 3). ``versus`` compares each interval with the leader's: *overlaps*
when they overlap (the seeds do not separate the two), *behind* when not. An
optimizer without a finished, finite setting on the problem is listed last
without a rank. *User* optimizers are those that are not optbench's own
(:func:`analysis.style.is_baseline`) plus any the caller names.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import pandas as pd

from analysis.style import is_baseline, legend_order, style_of


def user_optimizers(optimizers: Iterable[object], named: Iterable[str] = ()) -> set[str]:
    """The optimizers to highlight: every one that is not optbench's own, and those ``named``."""
    return {str(o) for o in optimizers if not is_baseline(o)} | {str(n) for n in named}


def standings(best: pd.DataFrame, summary: pd.DataFrame, highlight: set[str]) -> list[dict[str, Any]]:
    """Per problem (first-seen order): ``{problem, metric, rows}``, rows best rank first.

    A row: ``rank``, ``optimizer``, ``label``, ``median``, ``low``, ``high``, ``n``,
    ``versus`` ("leader", "overlaps", "behind" or None), ``user``, ``colour``,
    ``marker``, and ``position`` (the median, low and high as 0–100 % of the
    problem's range, for the interval strip; None without a value).
    """
    problems = list(dict.fromkeys([*_column(summary, "problem"), *_column(best, "problem")]))
    out = []
    for problem in problems:
        chosen = best[best["problem"] == problem] if len(best) else best
        metric = _metric(chosen, problem) if len(chosen) else _metric(summary, problem)
        sign = -1.0 if metric == "accuracy" else 1.0
        rows = []
        for record in chosen.to_dict("records"):
            rows.append(_row(record, record.get("final_test_median"), record.get("final_test_ci_low"),
                             record.get("final_test_ci_high"), highlight))
        listed = {r["optimizer"] for r in rows}
        every = summary[summary["problem"] == problem]["optimizer"] if len(summary) else []
        for optimizer in legend_order(set(map(str, every)) - listed):
            rows.append(_row({"optimizer": optimizer}, None, None, None, highlight))
        order = {name: i for i, name in enumerate(legend_order(r["optimizer"] for r in rows))}
        ranked = sorted((r for r in rows if math.isfinite(r["median"])),
                        key=lambda r: (sign * r["median"], order[r["optimizer"]]))
        for row in ranked:
            row["rank"] = 1 + sum(sign * other["median"] < sign * row["median"] for other in ranked)
        unranked = [r for r in rows if not math.isfinite(r["median"])]
        _compare(ranked, sign)
        _place(ranked)
        out.append({"problem": str(problem), "metric": metric, "rows": ranked + unranked,
                    "optimizers": len(ranked) + len(unranked)})
    return out


def headline(tables: list[dict[str, Any]]) -> list[str]:
    """One phrase per highlighted optimizer: ``pal: 1st of 3 on digits_mlp, 2nd of 3 on quadratic_deep``."""
    places: dict[str, list[str]] = {}
    for table in tables:
        for row in table["rows"]:
            if row["user"]:
                where = f"{_ordinal(row['rank'])} of {table['optimizers']}" if row["rank"] else "no result"
                places.setdefault(row["optimizer"], []).append(f"{where} on {table['problem']}")
    return [f"{name}: {', '.join(parts)}" for name, parts in places.items()]


def _row(record: dict[str, Any], median: Any, low: Any, high: Any, highlight: set[str]) -> dict[str, Any]:
    optimizer = str(record["optimizer"])
    style = style_of(optimizer)
    label = str(record.get("label") or "")
    hyperparameters = label.removeprefix(optimizer).strip() if label.startswith(f"{optimizer} ") else label
    return {"rank": None, "optimizer": optimizer, "label": hyperparameters or "defaults",
            "setting_id": record.get("setting_id"),
            "median": _number(median), "low": _number(low), "high": _number(high), "n": record.get("n"),
            "versus": None, "user": optimizer in highlight, "colour": style.colour, "marker": style.marker,
            "position": None}


def _compare(ranked: list[dict[str, Any]], sign: float) -> None:
    """``versus`` of each ranked row against the leader's interval (a missing interval: the median alone)."""
    if not ranked:
        return
    leader = ranked[0]
    lead_low, lead_high = _interval(leader)
    for row in ranked:
        if row["rank"] == 1:
            row["versus"] = "leader"
            continue
        low, high = _interval(row)
        overlap = low <= lead_high and lead_low <= high
        row["versus"] = "overlaps" if overlap else "behind"


def _interval(row: dict[str, Any]) -> tuple[float, float]:
    low, high = row["low"], row["high"]
    if not (math.isfinite(low) and math.isfinite(high)):
        return row["median"], row["median"]
    return min(low, row["median"]), max(high, row["median"])


def _place(ranked: list[dict[str, Any]]) -> None:
    """``position``: where the median and interval lie on a 0–100 scale spanning every ranked interval."""
    values = [v for row in ranked for v in _interval(row) if math.isfinite(v)]
    if not values:
        return
    lowest, highest = min(values), max(values)
    span = highest - lowest

    def at(value: float) -> float:
        return 50.0 if span <= 0 else round(4 + 92 * (value - lowest) / span, 2)

    for row in ranked:
        low, high = _interval(row)
        row["position"] = {"median": at(row["median"]), "low": at(low), "high": at(high)}


def _metric(frame: pd.DataFrame, problem: object) -> str:
    """The problem's metric as a best or summary table records it; loss without one."""
    rows = frame[frame["problem"] == problem] if len(frame) and "metric" in frame.columns else []
    metrics = [m for m in (rows["metric"] if len(rows) else []) if isinstance(m, str)]
    return metrics[0] if metrics else "loss"


def _column(frame: pd.DataFrame, name: str) -> list:
    return list(frame[name]) if len(frame) and name in frame.columns else []


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _ordinal(rank: int) -> str:
    suffix = "th" if 10 <= rank % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(rank % 10, "th")
    return f"{rank}{suffix}"
