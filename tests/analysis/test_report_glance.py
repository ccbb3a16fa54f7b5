"""The report's first screen (each optimizer's tuned result, interval and rank per problem), what it leaves out,
and how it stays readable for big sweeps."""

from __future__ import annotations

import math
import re
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
from analysis_factory import SweepBuilder, curve, make_spec
from test_report_browser import open_offline

from analysis.aggregate import CURVE_PROBLEMS, Options, aggregate_sweeps
from analysis.report import FOLD_ABOVE, render_report
from analysis.standings import standings
from analysis.style import style_of

SEEDS = 3
#: Per problem: optimizer → the scale of its losses (final test loss ∝ scale; accuracy falls with it).
PLANTED = {
    "quadratic_deep": {"signum": 1.0, "sgd": 1.015, "adam": 2.0},
    "digits_mlp": {"adam": 0.5, "signum": 1.0, "sgd": 3.0},
}
#: What the first screen must say: (rank, optimizer, vs #1) best first; PAL diverged on every seed of quadratic_deep.
EXPECTED = {
    "quadratic_deep": [("1", "signum", "leader"), ("2", "sgd", "overlaps"), ("3", "adam", "behind"),
                       ("—", "pal", "—")],
    "digits_mlp": [("1", "adam", "leader"), ("2", "signum", "behind"), ("3", "sgd", "behind")],
}
LR = {"sgd": 0.1, "adam": 0.001, "signum": 0.01, "pal": None}


@pytest.fixture
def planted(tmp_path) -> SweepBuilder:
    """Two problems × sgd, adam and signum (not optbench's: the user's), one setting each, 3 seeds whose losses
    differ by 1 % (so the median's interval is [scale, 1.02 · scale]); PAL diverged on quadratic_deep."""
    sweep = SweepBuilder(tmp_path / "results", "mine")
    for problem, scales in PLANTED.items():
        accuracy = problem == "digits_mlp"
        for optimizer, scale in scales.items():
            for seed in range(SEEDS):
                spec = make_spec({"name": problem}, {"name": optimizer, "lr": LR[optimizer]}, seed)
                sweep.add(spec, "completed", curve(4, scale=scale * (1 + 0.01 * seed), accuracy=accuracy))
    for seed in range(SEEDS):
        blown = curve(3)
        blown[-1].update(train_loss=math.nan, valid_loss=math.nan, test_loss=math.nan)
        sweep.add(make_spec({"name": "quadratic_deep"}, {"name": "pal"}, seed), "diverged", blown)
    sweep.write()
    return sweep


def glance_rows(html: str) -> dict[str, list[tuple[str, str, str]]]:
    """Per problem: (rank, optimizer, vs #1) of each row of its first-screen table."""
    out = {}
    for problem, body in re.findall(r'<table id="glance-\d+" class="glance" data-problem="([^"]+)">(.*?)</table>',
                                    html, re.S):
        rows = re.findall(r'<tr data-optimizer="([^"]+)".*?<td class="num rank">([^<]*)</td>'
                          r'.*?<td>([^<]*)</td>\s*</tr>', body, re.S)
        out[problem] = [(rank, optimizer, versus) for optimizer, rank, versus in rows]
    return out


def test_the_first_screen_ranks_each_optimizers_tuned_result_per_problem(planted, tmp_path):
    aggregate = aggregate_sweeps([planted.sweep_dir], planted.runs_dir, tmp_path / "aggregate", Options())
    html = render_report(aggregate)
    assert glance_rows(html) == EXPECTED
    # the user's optimizer (not one of optbench's own) is highlighted and summed up in one line
    assert re.findall(r'<tr data-optimizer="(\w+)" class="mine"', html) == ["signum", "signum"]
    assert "<b>signum: 2nd of 3 on digits_mlp, 1st of 4 on quadratic_deep</b>" in html
    # its tuned result: the median over seeds and the bootstrap interval of the median (3 seeds: lowest to highest)
    best = aggregate.best.set_index(["problem", "optimizer"])
    leader = best.loc[("quadratic_deep", "signum")]
    assert leader["final_test_ci_low"] < leader["final_test_median"] < leader["final_test_ci_high"]
    table = re.search(r'data-problem="quadratic_deep">(.*?)</table>', html, re.S).group(1)
    row = re.search(r'<tr data-optimizer="signum" class="mine" title="[^"]+">(.*?)</tr>', table, re.S).group(1)
    assert f'{leader["final_test_median"]:.4g}' in row
    assert f'[{leader["final_test_ci_low"]:.4g}, {leader["final_test_ci_high"]:.4g}]' in row
    # each row wears its optimizer's colour, as the figures do
    for optimizer in ("sgd", "adam", "signum"):
        assert f'<span class="mark" style="color: {style_of(optimizer).colour}">' in html


def test_the_first_screen_is_on_the_first_screen_in_chromium(planted, tmp_path, chromium):
    aggregate = aggregate_sweeps([planted.sweep_dir], planted.runs_dir, tmp_path / "aggregate", Options())
    path = tmp_path / "report.html"
    path.write_text(render_report(aggregate), encoding="utf-8")
    page, outside = open_offline(chromium, path)
    try:
        height = page.viewport_size["height"]
        for problem, expected in EXPECTED.items():
            table = page.locator(f'table.glance[data-problem="{problem}"]')
            box = table.bounding_box()
            assert box and box["y"] + box["height"] <= height, (problem, box)  # seen without scrolling
            ranks = table.locator("tbody tr").evaluate_all(
                "rows => rows.map(r => [r.cells[0].textContent.trim(), r.dataset.optimizer, r.cells[6].textContent])")
            assert [tuple(r) for r in ranks] == expected
        assert page.locator("tr.mine .tag").first.text_content() == "yours"
        assert outside == []
    finally:
        page.close()


def test_sections_with_nothing_to_say_are_left_out_with_one_line(planted, tmp_path):
    """One setting per optimizer: no robustness table, sensitivity or box figure, no link to them."""
    aggregate = aggregate_sweeps([planted.sweep_dir], planted.runs_dir, tmp_path / "aggregate", Options())
    html = render_report(aggregate)
    assert '<h2 id="robustness">' not in html and 'href="#robustness"' not in html
    assert 'id="figure-sensitivity"' not in html and 'id="figure-boxes"' not in html
    note = re.search(r'<p class="note" id="robustness">(.*?)</p>', html, re.S).group(1)
    assert "left out" in note and "single setting" in note
    assert 'id="figure-best_curves"' in html  # what has something to say stays


def test_highlight_names_a_baseline_as_the_users(planted, tmp_path):
    aggregate = aggregate_sweeps([planted.sweep_dir], planted.runs_dir, tmp_path / "aggregate", Options())
    html = render_report(aggregate, highlight=["sgd"])
    assert sorted(re.findall(r'<tr data-optimizer="(\w+)" class="mine"', html)) == ["sgd", "sgd", "signum", "signum"]
    assert "<b>sgd: 3rd of 3 on digits_mlp, 2nd of 4 on quadratic_deep</b>" in html


def test_equal_medians_share_a_rank_and_a_missing_interval_is_the_median():
    best = pd.DataFrame({"problem": "p", "optimizer": ["sgd", "adam", "mine"], "setting_id": ["a", "b", "c"],
                         "label": ["sgd", "adam", "mine"], "metric": "loss", "n": [1, 3, 3],
                         "final_test_median": [2.0, 1.0, 1.0], "final_test_ci_low": [math.nan, 0.9, 0.95],
                         "final_test_ci_high": [math.nan, 1.1, 1.05]})
    (table,) = standings(best, best, {"mine"})
    rows = [(r["rank"], r["optimizer"], r["versus"], r["user"]) for r in table["rows"]]
    assert rows == [(1, "mine", "leader", True), (1, "adam", "leader", False), (3, "sgd", "behind", False)]
    positions = [r["position"] for r in table["rows"]]
    assert positions[2]["low"] == positions[2]["median"] == positions[2]["high"] == 96.0  # the worst, one seed
    assert positions[1]["low"] == 4.0  # adam's interval starts lowest


def test_long_tables_start_folded():
    rows = FOLD_ABOVE + 40
    best = pd.DataFrame({"problem": [f"p{i % 5}" for i in range(rows)], "optimizer": [f"o{i}" for i in range(rows)],
                         "setting_id": [f"s{i}" for i in range(rows)], "label": "x", "score": 1.0, "metric": "loss"})
    html = render_report(SimpleNamespace(best=best))
    fold = re.search(r'<details class="fold"><summary>(\d+) rows \(folded: click to show\)</summary>\s*'
                     r'<div class="scroll">\s*<table id="best-table"', html)
    assert fold and int(fold.group(1)) == rows
    short = render_report(SimpleNamespace(best=best.head(3)))
    assert '<details class="fold">' not in short and 'id="best-table"' in short


def test_many_problems_get_a_curves_page_each(tmp_path):
    problems = [f"problem_{i}" for i in range(CURVE_PROBLEMS + 2)]
    sweep = SweepBuilder(tmp_path / "results", "wide")
    for problem in problems:
        for optimizer in ("sgd", "adam"):
            sweep.add(make_spec({"name": problem}, {"name": optimizer, "lr": 0.1}), "completed", curve(3))
    sweep.write()
    aggregate = aggregate_sweeps([sweep.sweep_dir], sweep.runs_dir, tmp_path / "aggregate", Options())
    assert {f"{kind}/{p}" for kind in ("best_curves", "curves") for p in problems} <= set(aggregate.figures)
    assert "curves" not in aggregate.figures and "best_curves" not in aggregate.figures
    assert all(Path(path).is_file() for path in aggregate.figures.values())
    html = render_report(aggregate)
    pages = re.findall(r'<details class="page" id="curves-\d+" data-problem="([^"]+)"( open)?>', html)
    assert [p for p, _ in pages] == problems
    assert [bool(o) for _, o in pages] == [True] + [False] * (len(problems) - 1)  # the first page open
    assert len(re.findall(r'<figure id="figure-(?:best_)?curves/', html)) == 2 * len(problems)


def test_report_highlight_on_the_command_line(planted, capsys):
    from orchestrator.cli import main

    report = planted.sweep_dir / "report.html"
    assert main(["report", "mine", "--results", str(planted.root), "--highlight", "lion"]) == 2
    error = " ".join(capsys.readouterr().err.split())
    assert "--highlight lion: the sweeps have no optimizer 'lion' (they have adam, pal, sgd, signum)" in error
    assert not report.exists() and not (planted.sweep_dir / "aggregate").exists()  # refused before any writing
    assert main(["report", "mine", "--results", str(planted.root), "--highlight", "adam"]) == 0
    assert sorted(re.findall(r'<tr data-optimizer="(\w+)" class="mine"', report.read_text())) == [
        "adam", "adam", "signum", "signum"]
