"""The figures: PNG and SVG written, not blank, in the expected colours; what each one draws."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import LineCollection, PathCollection

from analysis import plots
from analysis.stats import quantile_name
from analysis.style import style_of

QUANTILES = (0.25, 0.75)
OUTCOMES = ("final_valid", "best_valid", "final_test", "best_test")
C0, C1 = style_of("sgd").rgb, style_of("adam").rgb  # the optimizers' own colours (analysis.style)


# ----------------------------------------------------------------------------- synthetic tables


def curves_frame(settings: list[tuple[str, str, str, str]], epochs: int = 6) -> pd.DataFrame:
    """A curves table: (setting_id, problem, optimizer, label) → decaying losses, rising accuracy, constant lr."""
    frames = []
    for k, (setting, problem, optimizer, label) in enumerate(settings):
        epoch = np.arange(epochs, dtype=float)
        loss = 2.0 * np.exp(-(0.2 + 0.1 * k) * epoch) + 0.05
        columns = {"setting_id": setting, "problem": problem, "optimizer": optimizer, "label": label, "epoch": epoch}
        for metric, values in (("train_loss", loss), ("valid_loss", 1.1 * loss), ("test_loss", 1.2 * loss),
                               ("valid_accuracy", 1 - loss / 3), ("test_accuracy", 1 - loss / 2.5),
                               ("lr", np.full(epochs, 0.1 / (k + 1)))):
            columns |= {f"{metric}_median": values, f"{metric}_q25": 0.9 * values, f"{metric}_q75": 1.1 * values,
                        f"{metric}_n": 3}
        frames.append(pd.DataFrame(columns))
    return pd.concat(frames, ignore_index=True)


def summary_frame(rows: list[dict]) -> pd.DataFrame:
    """A summary table from (problem, optimizer, metric, lr, momentum, value[, n]) rows; quartiles ±10 %."""
    records = []
    for i, row in enumerate(rows):
        value = row["value"]
        record = {"setting_id": f"s{i}", "problem": row["problem"], "optimizer": row["optimizer"],
                  "label": f"{row['optimizer']} lr={row['lr']:g}", "runs": 3, "completed": 3,
                  "diverged": 0 if np.isfinite(value) else 3, "failed": 0, "other": 0, "metric": row["metric"],
                  "n": row.get("n", 3)}
        for outcome in OUTCOMES:
            record |= {f"{outcome}_median": value, f"{outcome}_q25": 0.9 * value, f"{outcome}_q75": 1.1 * value}
        record |= {"optimizer.lr": row["lr"], "optimizer.momentum": row.get("momentum", np.nan)}
        records.append(record)
    return pd.DataFrame(records)


def grid_summary() -> pd.DataFrame:
    """Problem "quad" (loss): sgd over lr 1e-4..1e-1 × momentum 0/0.9 (lr=1 diverged), adam at three lrs.
    Problem "mlp" (accuracy): sgd and adam, lr within one decade."""
    rows = []
    for lr in (1e-4, 1e-3, 1e-2, 1e-1):
        for momentum, factor in ((0.0, 1.0), (0.9, 0.05 if lr < 1e-2 else 2.0)):
            rows.append({"problem": "quad", "optimizer": "sgd", "metric": "loss", "lr": lr, "momentum": momentum,
                         "value": factor * (1 + abs(np.log10(lr) + 2))})
    rows.append({"problem": "quad", "optimizer": "sgd", "metric": "loss", "lr": 1.0, "momentum": 0.0, "value": np.inf})
    rows.append({"problem": "quad", "optimizer": "sgd", "metric": "loss", "lr": 1.0, "momentum": 0.9,
                 "value": np.nan, "n": 0})  # nothing finished yet: not a divergence
    for lr, value in ((1e-4, 3.0), (1e-3, 1.5), (1e-2, 2.5)):
        rows.append({"problem": "quad", "optimizer": "adam", "metric": "loss", "lr": lr, "value": value})
    for optimizer, values in (("sgd", (0.6, 0.8, 0.7)), ("adam", (0.75, 0.85, 0.5))):
        for lr, value in zip((0.1, 0.2, 0.5), values, strict=True):
            rows.append({"problem": "mlp", "optimizer": optimizer, "metric": "accuracy", "lr": lr, "value": value})
    return summary_frame(rows)


def profile_tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    tau = np.linspace(1.0, 4.0, 31)
    profiles = pd.concat([
        pd.DataFrame({"submission": "sgd", "tau": tau, "rho": np.where(tau >= 2.0, 1.0, 0.5)}),
        pd.DataFrame({"submission": "adam", "tau": tau, "rho": np.where(tau >= 1.5, 1.0, 0.0)}),
    ], ignore_index=True)
    scores = pd.DataFrame({"submission": ["sgd", "adam"], "score": [0.75, 0.5], "problems": [2, 2], "reached": [2, 2]})
    return profiles, scores


# ----------------------------------------------------------------------------- image checks


def pixels(png: Path) -> np.ndarray:
    """RGB floats in [0, 1] (alpha dropped)."""
    return mpimg.imread(png)[..., :3]


def ink_share(rgb: np.ndarray) -> float:
    """Share of pixels that are not (near-)white background."""
    return float((np.abs(rgb - 1.0).max(axis=-1) > 0.05).mean())


def colour_pixels(rgb: np.ndarray, colour: tuple[float, float, float], tolerance: float = 0.08) -> int:
    return int((np.abs(rgb - np.asarray(colour)).max(axis=-1) < tolerance).sum())


def check_files(png: Path, stem: Path, colours: tuple = ()) -> None:
    """``<stem>.png`` and ``<stem>.svg`` exist, the PNG is drawn on and shows ``colours``, the SVG parses."""
    assert png == stem.parent / f"{stem.name}.png" and png.is_file()
    rgb = pixels(png)
    assert ink_share(rgb) > 0.03, f"{png.name} is (nearly) blank"
    for colour in colours:
        assert colour_pixels(rgb, colour) > 40, f"{png.name} lacks the colour {colour}"
    svg = ET.parse(stem.parent / f"{stem.name}.svg").getroot()
    assert svg.tag == "{http://www.w3.org/2000/svg}svg"
    assert len(svg.findall(".//{http://www.w3.org/2000/svg}path")) > 20


# ----------------------------------------------------------------------------- curves


def test_plot_curves_writes_png_and_svg_with_each_optimizer_colour(tmp_path):
    curves = curves_frame([("a", "quad", "sgd", "sgd $\\frac$"), ("b", "quad", "adam", "adam"),
                           ("c", "mlp", "sgd", "sgd"), ("d", "mlp", "adam", "adam")])
    stem = tmp_path / "plots" / "curves"
    png = plots.plot_curves(curves, stem, {"quad": "loss", "mlp": "accuracy"}, QUANTILES, title="demo $x")
    check_files(png, stem, colours=(C0, C1))  # one setting per optimizer: its own colour, not a shade
    assert mpimg.imread(png).shape[:2] == tuple(round(x * plots.DPI) for x in reversed(plots.figure_size(2, 2)))


def test_plot_curves_accepts_a_png_path_as_stem(tmp_path):
    png = plots.plot_curves(curves_frame([("a", "quad", "sgd", "sgd")]), tmp_path / "curves.png", {}, QUANTILES)
    assert png == tmp_path / "curves.png" and (tmp_path / "curves.svg").is_file()


def test_curves_cap_draws_the_first_settings_of_the_order_and_says_so():
    many = [(f"s{i:02d}", "quad", "sgd" if i % 2 else "adam", f"setting {i:02d}") for i in range(30)]
    few = [("t0", "mlp", "sgd", "mlp sgd"), ("t1", "mlp", "adam", "mlp adam")]
    curves = curves_frame(many + few)
    order = [f"s{i:02d}" for i in reversed(range(30))] + ["t0", "t1"]
    figure = plots.curves_figure(curves, {"quad": "loss", "mlp": "accuracy"}, QUANTILES, order=order, limit=12)
    titles = [a.get_title() for a in figure.axes if a.get_title()]
    assert titles == ["quad\n12 of 30 settings shown", "mlp"]
    first = figure.axes[0]
    lines = [c for c in first.collections if isinstance(c, LineCollection)]
    assert len(lines) == 1 and len(lines[0].get_segments()) == 12
    legend = [a for a in figure.axes if a.get_legend() is not None][0].get_legend()
    # the first 12 of the order, grouped by optimizer in legend order (sgd before adam), in order within each
    assert [t.get_text() for t in legend.get_texts()] == [f"setting {i:02d}" for i in (*range(29, 18, -2),
                                                                                        *range(28, 17, -2))]


def test_curves_order_selects_the_settings_it_names():
    curves = curves_frame([("a", "quad", "sgd", "sgd a"), ("b", "quad", "adam", "adam b"), ("c", "quad", "sgd", "c"),
                           ("d", "quad", "adam", "adam d")])
    figure = plots.curves_figure(curves, {"quad": "loss"}, QUANTILES, order=["d", "b", "a"])
    legend = [a for a in figure.axes if a.get_legend() is not None][0].get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["sgd a", "adam d", "adam b"]
    assert figure.axes[0].get_title() == "quad"  # no note: everything selected is shown


def test_curves_of_nothing_say_so(tmp_path):
    empty = curves_frame([("a", "quad", "sgd", "sgd")]).iloc[0:0]
    figure = plots.curves_figure(empty, {}, QUANTILES)
    assert any("no metrics yet" in t.get_text() for a in figure.axes for t in a.texts)
    png = plots.plot_curves(empty, tmp_path / "empty", {}, QUANTILES)
    assert png.is_file() and (tmp_path / "empty.svg").is_file()


# ----------------------------------------------------------------------------- sensitivity


def test_x_column_prefers_the_learning_rate_then_the_most_varying_hyperparameter():
    frame = pd.DataFrame({"optimizer.lr": [0.1, 0.01, 0.1], "optimizer.momentum": [0.0, 0.5, 0.9],
                          "train.epochs": [3, 3, 3], "schedule.name": ["a", "b", "c"]})
    assert plots.x_column(frame) == "optimizer.lr"
    frame["optimizer.lr"] = 0.1
    assert plots.x_column(frame) == "optimizer.momentum"
    frame["optimizer.momentum"] = 0.0
    assert plots.x_column(frame) == "optimizer.lr"  # nothing varies: a single point at its lr
    assert plots.x_column(frame.drop(columns="optimizer.lr").assign(**{"optimizer.momentum": np.nan})) is None


def test_sensitivity_draws_the_best_setting_per_value_on_a_log_axis():
    summary = grid_summary()
    figure = plots.sensitivity_figure(summary, QUANTILES)
    quad, mlp = figure.axes
    assert quad.get_xscale() == "log"  # lr spans four decades
    assert mlp.get_xscale() == "linear"  # 0.1 .. 0.5: under one decade
    assert quad.get_yscale() == "log"  # loss over more than a decade
    sgd, adam = quad.get_lines()
    rows = summary[(summary["problem"] == "quad") & (summary["optimizer"] == "sgd")]
    finite = rows[np.isfinite(rows["final_valid_median"])]
    expected = finite.groupby("optimizer.lr")["final_valid_median"].min()  # loss: the lower momentum wins
    np.testing.assert_allclose(sgd.get_xdata(), expected.index.to_numpy())
    np.testing.assert_allclose(sgd.get_ydata(), expected.to_numpy())
    np.testing.assert_allclose(adam.get_ydata(), [3.0, 1.5, 2.5])
    # accuracy: the highest median at each lr
    mlp_sgd, mlp_adam = mlp.get_lines()
    np.testing.assert_allclose(mlp_sgd.get_ydata(), [0.6, 0.8, 0.7])
    np.testing.assert_allclose(mlp_adam.get_ydata(), [0.75, 0.85, 0.5])


def test_sensitivity_marks_diverged_settings_at_the_worst_edge():
    figure = plots.sensitivity_figure(grid_summary(), QUANTILES)
    quad, mlp = figure.axes
    assert quad.get_title() == "quad\n1 of 13 settings diverged"  # the n=0 setting is not counted
    assert mlp.get_title() == "mlp\n0 of 6 settings diverged"
    marks = [c for c in quad.collections if c.get_gid() == "diverged"]
    assert len(marks) == 1 and isinstance(marks[0], PathCollection)
    np.testing.assert_allclose(marks[0].get_offsets(), [[1.0, 0.97]])  # at lr=1, top edge (loss: higher is worse)
    assert quad.get_xlim()[1] >= 1.0  # the mark is inside the x range
    assert not [c for c in mlp.collections if c.get_gid() == "diverged"]
    # the other momentum at each lr is a faint dot
    dots = [c for c in quad.collections if c.get_gid() == "others"]
    assert sum(len(c.get_offsets()) for c in dots) == 4
    labels = [t.get_text() for t in figure.legends[0].get_texts()]
    assert labels == ["sgd", "adam", "other settings at that value", "diverged (at the worst edge)"]


def test_plot_sensitivity_writes_png_and_svg(tmp_path):
    stem = tmp_path / "sensitivity"
    png = plots.plot_sensitivity(grid_summary(), stem, QUANTILES)
    check_files(png, stem, colours=(C0, C1))


# ----------------------------------------------------------------------------- boxes


def test_boxes_summarise_the_finite_medians_and_count_the_rest(tmp_path):
    summary = grid_summary()
    figure = plots.boxes_figure(summary)
    quad, mlp = figure.axes
    ticks = [t.get_text() for t in quad.get_xticklabels()]
    assert ticks == ["sgd\n10 settings\n2 non-finite", "adam\n3 settings\n0 non-finite"]
    rows = summary[(summary["problem"] == "quad") & (summary["optimizer"] == "sgd")]["final_valid_median"]
    median = float(np.median(rows[np.isfinite(rows)]))
    assert any(np.allclose(line.get_ydata(), [median, median]) for line in quad.get_lines())
    assert [t.get_text() for t in mlp.get_xticklabels()][1] == "adam\n3 settings\n0 non-finite"
    stem = tmp_path / "boxes"
    check_files(plots.plot_boxes(summary, stem), stem, colours=(C0, C1))


def test_boxes_and_sensitivity_of_an_empty_summary_still_write(tmp_path):
    empty = grid_summary().iloc[0:0]
    for function, stem in ((plots.plot_boxes, tmp_path / "boxes"), (plots.plot_sensitivity, tmp_path / "sens")):
        args = (empty, stem) if function is plots.plot_boxes else (empty, stem, QUANTILES)
        assert function(*args).is_file() and stem.with_suffix(".svg").is_file()


# ----------------------------------------------------------------------------- profiles


def test_profiles_are_step_lines_in_legend_order(tmp_path):
    profiles, scores = profile_tables()
    figure = plots.profiles_figure(profiles, scores, r_max=4.0)
    (axis,) = figure.axes
    assert axis.get_xlim() == (1.0, 4.0)
    labels = [t.get_text() for t in axis.get_legend().get_texts()]
    assert labels == ["sgd (score 0.750)", "adam (score 0.500)"]
    sgd = axis.get_lines()[0]
    assert sgd.get_drawstyle() == "steps-post"
    np.testing.assert_allclose(sgd.get_ydata(), np.where(np.linspace(1, 4, 31) >= 2.0, 1.0, 0.5))
    stem = tmp_path / "profiles"
    check_files(plots.plot_profiles(profiles, scores, stem), stem, colours=(C0, C1))


def test_profiles_cap_the_submissions_and_say_so():
    tau = np.linspace(1, 4, 5)
    names = [f"opt{i:02d}" for i in range(15)]
    profiles = pd.DataFrame({"submission": np.repeat(names, 5), "tau": np.tile(tau, 15), "rho": 0.5})
    scores = pd.DataFrame({"submission": names, "score": np.linspace(0, 1, 15)})
    figure = plots.profiles_figure(profiles, scores)
    assert len(figure.axes[0].get_lines()) == plots.MAX_SUBMISSIONS
    assert f"{plots.MAX_SUBMISSIONS} of 15 submissions shown" in figure.texts[0].get_text()
    # the best scores are shown, in legend order (names that are not optbench's own: by name)
    labels = [t.get_text() for t in figure.axes[0].get_legend().get_texts()]
    assert labels[0] == "opt03 (score 0.214)" and labels[-1] == "opt14 (score 1.000)"
    assert [label.split()[0] for label in labels] == names[3:]


@pytest.mark.parametrize("q", [0.1, 0.25])
def test_quantile_band_names_follow_the_quantiles(q):
    figure = plots.sensitivity_figure(grid_summary().rename(columns=lambda c: c.replace(
        "q25", quantile_name(q)).replace("q75", quantile_name(1 - q))), (q, 1 - q))
    assert f"band {quantile_name(q)}–{quantile_name(1 - q)}" in figure.texts[0].get_text()
    quad = figure.axes[0]
    sgd = quad.get_lines()[0].get_ydata()
    band = [c for c in quad.collections if c.get_gid() == "band"][0]
    y = np.concatenate([path.vertices[:, 1] for path in band.get_paths()])
    # the band runs between the renamed quantile columns (±10 % of the medians of the line)
    np.testing.assert_allclose([y.min(), y.max()], [0.9 * sgd.min(), 1.1 * sgd.max()])
