"""One colour and one marker per optimizer, the same in every figure, the dashboard and the W&B summary.

Optbench's own optimizers (:data:`BASELINES`, the registered built-ins plus the
names DeepOBS imports map to) take their colour and marker from their position
in that fixed list, so adding an optimizer at its end changes no other's. Any
other name — a plugin, *the user's optimizer* — gets a colour from a separate
palette (:data:`USER_PALETTE`, never a baseline's colour) and a star-like
marker, chosen by a SHA-256 of the name: the same in every sweep, on every
machine, whatever else the sweep holds. Two user names can share a colour
(rarely also the marker); a baseline and a user name never do.

Legends list user optimizers first (by name), then baselines in list order
(:func:`legend_order`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

#: Optbench's built-in optimizers in a fixed order: a name's place decides its colour and marker, so new
#: names go at the end (tests check that every registered optimizer is here).
BASELINES = (
    "sgd", "adam", "adamw", "pal", "momentum", "nadamw", "lion", "muon", "soap", "shampoo",
    "radam", "adafactor", "schedulefree_sgd", "schedulefree_adamw", "rmsprop", "adagrad", "labpal", "sls",
    "gols_i", "pls", "labpal_nsgd", "sgd_hd", "alig", "cocob", "newton_cg", "natural_gradient", "kfac",
    "preconditioned_sgd", "adaptive_sgd", "pytorch_optimizer",
)
#: Baselines' colours (Tableau 10 without its red, plus a dark blue), cycled with :data:`BASELINE_MARKERS`.
BASELINE_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#7f7f7f", "#bcbd22", "#17becf",
                    "#e377c2", "#393b79")
BASELINE_MARKERS = ("o", "s", "^", "D")
#: User optimizers' colours: saturated, none of them in the baselines' palette.
USER_PALETTE = ("#d62728", "#a50f67", "#111111", "#e6a100", "#00796b", "#5e35b1")
USER_MARKERS = ("*", "P", "X")
#: Matplotlib marker → Plotly.js symbol, for the dashboard.
PLOTLY_SYMBOLS = {"o": "circle", "s": "square", "^": "triangle-up", "D": "diamond", "*": "star", "P": "cross",
                  "X": "x"}


@dataclass(frozen=True)
class Style:
    """How one optimizer is drawn: ``colour`` as ``#rrggbb``, a Matplotlib ``marker``, and whether it is the user's."""

    colour: str
    marker: str
    user: bool

    @property
    def rgb(self) -> tuple[float, float, float]:
        return tuple(int(self.colour[i:i + 2], 16) / 255 for i in (1, 3, 5))

    @property
    def symbol(self) -> str:
        return PLOTLY_SYMBOLS[self.marker]

    def as_dict(self) -> dict[str, object]:
        return {"colour": self.colour, "marker": self.marker, "symbol": self.symbol, "user": self.user}


def is_baseline(name: object) -> bool:
    return str(name) in BASELINES


def style_of(name: object) -> Style:
    """The colour and marker of optimizer ``name`` (see the module docstring)."""
    name = str(name)
    if name in BASELINES:
        index = BASELINES.index(name)
        return Style(BASELINE_PALETTE[index % len(BASELINE_PALETTE)],
                     BASELINE_MARKERS[index // len(BASELINE_PALETTE) % len(BASELINE_MARKERS)], False)
    digest = int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "big")
    return Style(USER_PALETTE[digest % len(USER_PALETTE)],
                 USER_MARKERS[digest // len(USER_PALETTE) % len(USER_MARKERS)], True)


def legend_order(names: Iterable[object]) -> list[str]:
    """The distinct ``names`` in the one legend order: user optimizers by name, then baselines in list order."""
    distinct = {str(n) for n in names}
    return sorted(distinct, key=lambda n: (0, BASELINES.index(n), "") if n in BASELINES else (-1, 0, n))


def colour_map(names: Iterable[object]) -> dict[str, dict[str, object]]:
    """Optimizer → :meth:`Style.as_dict`, in legend order: what the dashboard and the W&B summary record."""
    return {name: style_of(name).as_dict() for name in legend_order(names)}


def shades(colour: str, count: int) -> list[tuple[float, float, float]]:
    """``count`` variants of ``colour`` from lighter to darker (the colour itself when ``count`` is 1).

    Settings of one optimizer keep its hue this way: blends towards white for the
    first ones and towards black for the last, never far enough to look like another colour.
    """
    base = Style(colour, "o", False).rgb
    if count <= 1:
        return [base]
    out = []
    for k in range(count):
        t = -0.45 + 0.8 * k / (count - 1)  # -0.45 (lighter) … +0.35 (darker)
        target = 0.0 if t > 0 else 1.0
        out.append(tuple(c + abs(t) * (target - c) for c in base))
    return out
