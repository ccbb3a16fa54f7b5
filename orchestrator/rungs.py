"""Successive halving's and Hyperband's schedules: which budgets, how many candidates, who competes with whom.

Pure arithmetic on the sweep's specs, checked before anything runs;
:mod:`orchestrator.halving` runs the rungs.

With ``R`` the runs' ``train.epochs`` (the maximum budget), ``r`` =
``search.min_epochs`` and ``η`` = ``search.eta``, ``s_max`` is the largest
``s`` with ``r · η^s ≤ R``. Bracket ``b`` (0 first; successive halving is
bracket 0 alone) has ``s = s_max − b`` and rungs ``i = 0 … s`` with budgets
``⌊R / η^(s−i)⌋`` epochs, the last one ``R`` (Li et al. 2017, Hyperband,
with budgets rounded down to whole epochs). A rung keeps the best
``max(1, ⌊n/η⌋)`` of its ``n`` candidates for the next. Hyperband's bracket
``s`` starts ``⌈(s_max + 1) / (s + 1) · η^s⌉`` candidates, each drawn from
the search space; bracket 0 alone (``search.brackets=1``) takes the grid's
settings, or ``search.trials`` drawn points.

A *population* is what competes: the runs whose specs agree on everything
but the searched keys and the seed (one problem with one optimizer, say); a
*candidate* is one setting of a population, scored by the median over its
seeds.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from jobs.spec import flatten
from orchestrator.errors import UserError


def max_rung(epochs: int, min_epochs: int, eta: int) -> int:
    """``s_max``: the largest ``s`` with ``min_epochs · eta^s ≤ epochs`` (whole numbers, no rounding error)."""
    s = 0
    while min_epochs * eta ** (s + 1) <= epochs:
        s += 1
    return s


def budgets(epochs: int, min_epochs: int, eta: int, bracket: int = 0) -> tuple[int, ...]:
    """The epochs of each rung of ``bracket``, ending with ``epochs``."""
    s = max_rung(epochs, min_epochs, eta) - bracket
    return tuple(epochs // eta ** (s - i) for i in range(s + 1))


def bracket_sizes(epochs: int, min_epochs: int, eta: int, brackets: int) -> list[int]:
    """Hyperband's number of candidates per bracket, most aggressive first."""
    s_max = max_rung(epochs, min_epochs, eta)
    return [math.ceil((s_max + 1) / (s + 1) * eta ** s) for s in range(s_max, s_max - brackets, -1)]


def promoted(candidates: int, eta: int) -> int:
    """How many of a rung's candidates go on to the next one."""
    return max(1, candidates // eta)


@dataclass(frozen=True)
class Bracket:
    """One bracket of one population: its candidates (setting ids, in sweep order) and their rungs' epochs."""

    population: int
    index: int
    budgets: tuple[int, ...]
    candidates: tuple[str, ...]
    #: setting id → its runs (one per seed), in sweep order.
    runs: Mapping[str, tuple[str, ...]]
    #: For people: the population's problem and optimizer.
    title: str = ""

    @property
    def key(self) -> str:
        """``population/bracket``, as ``halving.jsonl`` names it."""
        return f"{self.population}/{self.index}"

    def describe(self) -> str:
        return f"{self.title}, bracket {self.index}" if self.title else f"bracket {self.key}"


def check(search: Mapping[str, Any], specs: Sequence[Mapping[str, Any]]) -> None:
    """One sentence for a halving request that cannot work; before anything runs."""
    eta, min_epochs, brackets = search["eta"], search["min_epochs"], search["brackets"]
    if "train.epochs" in search["keys"]:
        raise UserError("search=halving cannot search train.epochs: it is the maximum budget; give it one value.")
    for spec in specs:
        train = spec["train"]
        name = spec["problem"]["name"]
        if train["epochs"] < 1:
            raise UserError(f"search=halving stops runs at epoch budgets, but {name} trains for "
                            f"train.epochs={train['epochs']}; give it train.epochs >= {min_epochs * eta}.")
        if min_epochs > train["epochs"]:
            raise UserError(f"search.min_epochs={min_epochs} is more than {name}'s train.epochs={train['epochs']}; "
                            "lower search.min_epochs or raise train.epochs.")
        s_max = max_rung(train["epochs"], min_epochs, eta)
        if brackets > s_max + 1:
            raise UserError(f"search.brackets={brackets} is more than the {s_max + 1} brackets that "
                            f"train.epochs={train['epochs']}, search.min_epochs={min_epochs} and search.eta={eta} "
                            f"allow; give search.brackets <= {s_max + 1}.")
        for bracket in range(brackets):
            for budget in budgets(train["epochs"], min_epochs, eta, bracket)[:-1]:
                if budget % train["eval_every"]:
                    raise UserError(f"The rung at epoch {budget} is not evaluated (train.eval_every="
                                    f"{train['eval_every']}), so halving could not compare runs there; set "
                                    "train.eval_every=1 or budgets that are multiples of it.")
    if brackets > 1:
        if not search.get("space"):
            raise UserError("search.brackets > 1 (Hyperband) draws each bracket's candidates: sweep a key with "
                            "interval(...) or choice(...) (a grid has one set of candidates).")
        if len({spec["train"]["epochs"] for spec in specs}) > 1:
            raise UserError("Hyperband's brackets need one maximum budget: give every run the same train.epochs.")


def population_key(spec: Mapping[str, Any], keys: Sequence[str]) -> str:
    """The spec without its searched keys and seed: equal for the runs that compete."""
    flat = flatten(spec)
    return json.dumps({k: v for k, v in flat.items() if k not in keys and k != "seed"}, sort_keys=True, default=str)


def brackets(search: Mapping[str, Any], runs: Sequence[Any]) -> list[Bracket]:
    """Every population's brackets; ``runs`` are the sweep's (``run_id``, ``setting_id``, ``spec``, ``trial``)."""
    populations: dict[str, dict[int, dict[str, list[str]]]] = {}
    epochs: dict[str, int] = {}
    titles: dict[str, str] = {}
    ends = list(_cumulative(search.get("bracket_trials") or []))
    for run in runs:
        key = population_key(run.spec, search["keys"])
        epochs[key] = run.spec["train"]["epochs"]
        titles[key] = f"{run.spec['problem']['name']} · {run.spec['optimizer']['name']}"
        bracket = 0 if run.trial is None or not ends else next(b for b, end in enumerate(ends) if run.trial < end)
        populations.setdefault(key, {}).setdefault(bracket, {}).setdefault(run.setting_id, []).append(run.run_id)
    result = []
    for number, (key, by_bracket) in enumerate(populations.items()):
        for index, settings in sorted(by_bracket.items()):
            rungs = budgets(epochs[key], search["min_epochs"], search["eta"], index)
            result.append(Bracket(number, index, rungs, tuple(settings), {s: tuple(r) for s, r in settings.items()},
                                  titles[key]))
    return result


def _cumulative(sizes: Sequence[int]) -> list[int]:
    total, ends = 0, []
    for size in sizes:
        total += size
        ends.append(total)
    return ends
