"""``optbench plot``: a paper's figure in the project's colours, one or two columns wide; bad input refused first."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import matplotlib.image as mpimg
import numpy as np
import pytest
from analysis_factory import SweepBuilder, curve, make_spec
from starlette.testclient import TestClient

from analysis.aggregate import current_aggregate
from analysis.paper import DPI, WIDTHS, paper_figure, save_paper_figure
from analysis.style import style_of
from orchestrator.cli import main
from orchestrator.dashboard import create_app
from orchestrator.store import ResultsStore

SVG = "{http://www.w3.org/2000/svg}"
#: Optimizer → loss scale: well apart, so each curve's end marker stands alone.
SCALES = {"sgd": 1.0, "adam": 3.0, "signum": 6.0}


@pytest.fixture
def sweep(tmp_path) -> SweepBuilder:
    """quadratic_deep (loss ≈ 100–1000) and digits_mlp (loss ≈ 1–10, accuracy) × sgd, adam and signum × 2 seeds."""
    built = SweepBuilder(tmp_path / "results", "paper")
    for problem, size, accuracy in (("quadratic_deep", 100.0, False), ("digits_mlp", 1.0, True)):
        for optimizer, scale in SCALES.items():
            for seed in range(2):
                built.add(make_spec({"name": problem}, {"name": optimizer, "lr": 0.1}, seed), "completed",
                          curve(6, scale=size * scale * (1 + 0.02 * seed), accuracy=accuracy))
    built.write()
    return built


def plot(sweep: SweepBuilder, *args: str) -> int:
    return main(["plot", "paper", "--results", str(sweep.root), *args])


def svg_colours(path) -> dict[str, str]:
    """``line-<problem>-<optimizer>`` → the stroke colour of that line's path in the SVG."""
    colours = {}
    for group in ET.parse(path).getroot().iter(f"{SVG}g"):
        if group.get("id", "").startswith("line-"):
            style = group.find(f"{SVG}path").get("style")
            colours[group.get("id")] = re.search(r"stroke: (#[0-9a-f]{6})", style).group(1)
    return colours


def test_the_colour_map_is_the_same_in_png_svg_and_the_dashboard(sweep, tmp_path):
    aggregate = current_aggregate([sweep.sweep_dir], sweep.runs_dir, sweep.sweep_dir / "aggregate")
    figure = paper_figure(aggregate, "curves", "double", "train")
    png = save_paper_figure(figure, tmp_path / "curves.png")
    # PNG: the pixel at the centre of each curve's end marker has its optimizer's colour
    rgb = mpimg.imread(png)[..., :3]
    checked = 0
    for axis in figure.axes:
        for line in axis.get_lines():
            if line.get_linestyle() != "None":
                continue
            x, y = axis.transData.transform(np.column_stack(line.get_data()))[0]
            pixel = rgb[int(round(rgb.shape[0] - y)), int(round(x))]
            assert np.abs(pixel - np.array(_rgb(line.get_color()))).max() < 0.03, (line.get_color(), pixel)
            checked += 1
    assert checked == 6  # 2 problems × 3 optimizers
    png_colours = {}
    for axis in figure.axes:
        for line in axis.get_lines():
            if line.get_gid():
                png_colours[line.get_gid()] = line.get_color()
    # SVG: the same lines, by id, stroked in the optimizers' colours
    save_paper_figure(paper_figure(aggregate, "curves", "double", "train"), tmp_path / "curves.svg")
    expected = {f"line-{p}-{o}": style_of(o).colour for p in ("quadratic_deep", "digits_mlp") for o in SCALES}
    assert svg_colours(tmp_path / "curves.svg") == expected == png_colours
    # the dashboard serves the same colour for each optimizer's setting on every problem
    client = TestClient(create_app(ResultsStore(sweep.root), refresh_seconds=5))
    served = client.get(f"/api/sweeps/{sweep.sweep_id}/curves").json()
    assert {f"line-{s['problem']}-{s['optimizer']}": s["colour"] for s in served["settings"]} == expected
    assert style_of("signum").user and served["optimizers"]["signum"]["user"] is True


def _rgb(colour: str) -> tuple[float, float, float]:
    return tuple(int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5))


@pytest.mark.parametrize(("width", "suffix"), [("single", "png"), ("double", "pdf"), ("single", "svg")])
def test_plot_writes_each_format_at_a_column_width(sweep, tmp_path, width, suffix):
    output = tmp_path / f"figure.{suffix}"
    assert plot(sweep, "--kind", "curves", "--output", str(output), "--width", width) == 0
    data = output.read_bytes()
    if suffix == "png":
        assert mpimg.imread(output).shape[1] == round(WIDTHS[width] * DPI)
    elif suffix == "pdf":
        assert data.startswith(b"%PDF") and b"CreationDate" not in data
        width_points = float(re.search(rb"/MediaBox \[ ?0 0 ([\d.]+)", data).group(1))
        assert width_points == pytest.approx(WIDTHS[width] * 72, abs=0.5)
    else:
        root = ET.fromstring(data)
        assert root.get("width") == f"{WIDTHS[width] * 72:g}pt"
        assert len(svg_colours(output)) == 6
    # no layout clutter: no figure title, no "N of M shown" notes
    assert b"shown" not in data and b"median over seeds" not in data


def test_sensitivity_and_budget_figures_draw_a_grid(tmp_path):
    grid = SweepBuilder(tmp_path / "results", "paper")
    for lr, scale in ((0.01, 3.0), (0.1, 1.0), (1.0, 2.0)):
        for optimizer in ("sgd", "signum"):
            grid.add(make_spec({"name": "quadratic_deep"}, {"name": optimizer, "lr": lr}), "completed",
                     curve(4, scale=scale))
    grid.write()
    for kind in ("sensitivity", "budget"):
        output = tmp_path / f"{kind}.svg"
        assert plot(grid, "--kind", kind, "--output", str(output), "--width", "single") == 0
        strokes = set(re.findall(r"stroke: (#[0-9a-f]{6})", output.read_text()))
        assert {style_of("sgd").colour, style_of("signum").colour} <= strokes


@pytest.mark.parametrize(("args", "message"), [
    (["--kind", "curves", "--output", "figure.jpg"], "must end in .pdf, .png or .svg"),
    (["--kind", "curves", "--output", "missing/figure.pdf"], "does not exist"),
    (["--kind", "budget", "--output", "figure.pdf"], "no tuning budget to draw; choose --kind curves"),
    (["--kind", "sensitivity", "--output", "figure.pdf"], "single setting per problem"),
    (["--kind", "profiles", "--output", "figure.pdf"], "no performance profiles"),
])
def test_bad_input_exits_2_with_one_sentence_and_writes_no_figure(sweep, tmp_path, capsys, monkeypatch, args,
                                                                  message):
    monkeypatch.chdir(tmp_path)
    if "profiles" in args:  # the sweep has targets every optimizer reaches at once: drop them
        sweep.entries = [e for e in sweep.entries if e["spec"]["optimizer"]["name"] == "sgd"]
        sweep.write()
    assert plot(sweep, *args) == 2
    error = capsys.readouterr().err
    assert message in " ".join(error.split()) and error.count("\n") <= 3, error
    assert not list(tmp_path.glob("figure.*")) and not (tmp_path / "missing").exists()


def test_an_unknown_sweep_is_refused_before_anything_is_written(sweep, tmp_path, capsys):
    assert main(["plot", "nosuch", "--results", str(sweep.root), "--kind", "curves",
                 "--output", str(tmp_path / "figure.png")]) == 2
    assert "No sweep 'nosuch'" in capsys.readouterr().err
    assert not (tmp_path / "figure.png").exists() and not (sweep.sweep_dir / "aggregate").exists()
