"""One colour and marker per optimizer: fixed for optbench's own, hashed for the user's, one legend order."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from analysis import plots, style
from analysis.style import BASELINE_PALETTE, BASELINES, USER_PALETTE, legend_order, shades, style_of
from jobs.optim.registry import OPTIMIZERS


def test_every_registered_optimizer_is_a_baseline_with_a_place_of_its_own():
    """A new built-in must join BASELINES (at its end), or it would be drawn, and highlighted, as the user's."""
    missing = sorted(set(OPTIMIZERS.names()) - set(BASELINES))
    assert not missing, f"add {missing} at the end of analysis.style.BASELINES"
    assert len(set(BASELINES)) == len(BASELINES)
    pairs = [(style_of(name).colour, style_of(name).marker) for name in BASELINES]
    assert len(set(pairs)) == len(pairs)  # no two baselines look alike
    assert not any(style_of(name).user for name in BASELINES)


def test_a_users_optimizer_never_takes_a_baselines_colour():
    assert not set(USER_PALETTE) & set(BASELINE_PALETTE)
    for name in ("signum", "my_adam", "Lookahead", "sophia-g", "x"):
        mine = style_of(name)
        assert mine.user and mine.colour in USER_PALETTE and mine.marker in style.USER_MARKERS


def test_colours_do_not_depend_on_what_else_a_figure_or_sweep_holds():
    """The issue's bug: PAL orange in one figure, blue in the next."""
    alone = plots.optimizer_colors(["pal"])["pal"]
    for others in (["sgd", "adam", "pal"], ["pal", "signum"], ["adam", "pal", "sgd", "lion", "muon"]):
        assert plots.optimizer_colors(others)["pal"] == alone
    assert style_of("sgd").colour == "#1f77b4" and style_of("adam").colour == "#ff7f0e"


def test_a_users_colour_is_the_same_in_every_process():
    """Hash-based, but not Python's salted hash(): two interpreters with different hash seeds agree."""
    code = "import json; from analysis.style import colour_map; print(json.dumps(colour_map(['signum', 'my_opt'])))"
    seen = set()
    for seed in ("1", "2"):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             env={**os.environ, "PYTHONHASHSEED": seed}).stdout
        seen.add(out)
    assert len(seen) == 1
    assert json.loads(seen.pop())["signum"]["colour"] == style_of("signum").colour


def test_one_legend_order_users_first_then_baselines_in_list_order():
    assert legend_order(["pal", "zeta_mine", "adam", "sgd", "alpha_mine", "adam"]) == [
        "alpha_mine", "zeta_mine", "sgd", "adam", "pal"]
    assert list(style.colour_map(["pal", "sgd"])) == ["sgd", "pal"]


def test_shades_keep_the_hue_and_go_from_light_to_dark():
    (only,) = shades("#1f77b4", 1)
    assert only == style_of("sgd").rgb
    light, middle, dark = shades("#1f77b4", 3)
    assert sum(light) > sum(middle) > sum(dark)
    for rgb in (light, middle, dark):  # blue stays the largest channel
        assert max(range(3), key=lambda i: rgb[i]) == 2
