"""The HTML report: what it shows, that it is self-contained, and how headless Chromium renders it."""

from __future__ import annotations

import io
import re
import time
from pathlib import Path
from types import SimpleNamespace

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
from analysis_factory import SweepBuilder
from test_analysis_plots import curves_frame, profile_tables, summary_frame

from analysis import plots
from analysis.aggregate import Aggregate, Options, aggregate_sweeps
from analysis.report import render_report

QUANTILES = (0.25, 0.75)
FIGURES = ("best_curves", "curves", "sensitivity", "boxes", "budgets", "profiles")


def report_input(sweep: SweepBuilder, out: Path) -> Aggregate:
    """The real aggregate of ``sweep``, written to ``out`` (AlgoPerf with its default targets)."""
    return aggregate_sweeps([sweep.sweep_dir], sweep.runs_dir, out, Options(quantiles=QUANTILES))


def table_rows(html: str, table_id: str) -> int:
    match = re.search(rf'<table id="{table_id}".*?</table>', html, re.S)
    assert match, f"no table {table_id}"
    return len(re.findall(r"<tr[ >]", match.group(0).split("<tbody>", 1)[1]))


# ----------------------------------------------------------------------------- the HTML


def test_report_shows_every_section_with_its_rows(demo_sweep, tmp_path):
    aggregate = report_input(demo_sweep, tmp_path)
    html = render_report(aggregate)
    for text in ("demo", "sw-0001", "optimizer=sgd,adam", "seed=range(3)", "22 runs in 7 settings",
                 "1 diverged", "1 failed", "Best settings", "Relative speed", "Tuning robustness", "AlgoPerf",
                 "RuntimeError: boom", "q25–q75"):
        assert text in html, text
    for state, count in (("completed", 18), ("diverged", 1), ("failed", 1), ("running", 1), ("pending", 1)):
        assert re.search(rf'<div class="state {state}"><b>{count}</b><span>{state}</span>', html), state
    expected = {"best-table": 4, "speed-table": 4, "robustness-table": 4, "targets-table": 7, "scores-table": 2,
                "summary-table": 7, "attention-table": 2, "budgets-table": 16}
    assert {t: table_rows(html, t) for t in expected} == expected
    assert len(aggregate.best) == 4 and len(aggregate.summary) == 7
    # every figure, in the order of the sections, as an inline PNG
    ids = re.findall(r'<figure id="figure-([a-z_]+)"', html)
    assert ids == ["sensitivity", "boxes", "budgets", "best_curves", "curves", "profiles"]
    sources = re.findall(r'src="([^"]*)"', html)
    assert len(sources) == 6 and all(s.startswith("data:image/png;base64,iVBORw0KGgo") for s in sources)
    assert not re.search(r"https?://|<link|@import|url\(", html)
    # the best score of each problem is starred: the lowest loss, the highest accuracy
    best = aggregate.best
    for problem, pick in (("quadratic_deep", "idxmin"), ("digits_mlp", "idxmax")):
        winner = best.loc[getattr(best[best["problem"] == problem]["score"], pick)()]
        row = re.search(rf'<tr class="best" title="{winner["setting_id"]}">(.*?)</tr>', html, re.S)
        assert row and f"★ {winner['optimizer']}" in row.group(1)
    assert html.count('<tr class="best" title=') == 2 + 4  # two winners in "best", four chosen settings in "all"
    # every setting of a problem with a target has a time to target; the lr=10 one has one run with a result
    lossy = aggregate.targets[aggregate.targets["label"].str.contains("lr=10")].iloc[0]
    assert (lossy["n"], lossy["reached"]) == (1, 1)


def test_algoperf_section_only_with_targets(demo_sweep, tmp_path):
    aggregate = report_input(demo_sweep, tmp_path)
    aggregate.targets = aggregate.profiles = aggregate.scores = None
    del aggregate.figures["profiles"]
    html = render_report(aggregate)
    assert 'id="algoperf"' not in html and "AlgoPerf" not in html
    assert 'id="figure-profiles"' not in html and len(re.findall(r"<img ", html)) == 5


def test_report_of_nothing_still_renders_and_shows_zero_divergences():
    html = render_report(SimpleNamespace())
    assert "0 runs in 0 settings" in html and "0 diverged" in html and "0 failed" in html
    for state in ("completed", "diverged", "failed"):
        assert f'<div class="state {state} zero"><b>0</b><span>{state}</span>' in html
    assert "No curves yet." in html and "<img" not in html


def test_a_missing_figure_file_is_left_out(demo_sweep, tmp_path):
    aggregate = report_input(demo_sweep, tmp_path)
    aggregate.figures["boxes"].unlink()
    html = render_report(aggregate)
    assert 'id="figure-boxes"' not in html and 'id="figure-sensitivity"' in html


def test_report_escapes_what_users_wrote():
    best = pd.DataFrame({"problem": ["p"], "optimizer": ["<b>evil</b>"], "setting_id": ["x"], "label": ["<i>l</i>"],
                         "score": [1.0], "metric": ["loss"]})
    html = render_report(SimpleNamespace(info={"name": "<script>alert(1)</script>", "overrides": ["a=<b>"]},
                                         best=best))
    assert "<script>alert" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<b>evil</b>" not in html and "&lt;b&gt;evil&lt;/b&gt;" in html and "<i>l</i>" not in html
    assert "a=&lt;b&gt;" in html


def test_header_lists_every_merged_sweep():
    info = {"sweeps": [{"name": "first", "sweep_id": "sw-0001", "overrides": ["optimizer=sgd"]},
                       {"name": "second", "sweep_id": "sw-0002", "overrides": ["optimizer=adam"], "launches": 2}]}
    html = render_report(SimpleNamespace(info=info))
    assert "<title>first, second — optbench report</title>" in html
    for text in ("<h1>first</h1>", "<h1>second</h1>", "<code>sw-0002</code>", "optimizer=adam", "launched 2×"):
        assert text in html, text


def test_report_of_500_settings_is_produced_in_seconds(tmp_path):
    """Every figure and the HTML of a 5 problems × 4 optimizers × 25 settings grid in well under 30 s."""
    rows, settings = [], []
    for problem in ("p0", "p1", "p2", "p3", "p4"):
        for optimizer in ("sgd", "momentum", "adam", "lamb"):
            for lr in np.logspace(-4, 0, 5):
                for momentum in np.linspace(0, 0.9, 5):
                    value = np.inf if lr == 1.0 and momentum > 0.5 else 1 + abs(np.log10(lr) + 2) + momentum
                    rows.append({"problem": problem, "optimizer": optimizer, "metric": "loss", "lr": lr,
                                 "momentum": momentum, "value": value})
                    settings.append((f"s{len(settings)}", problem, optimizer, f"{optimizer} lr={lr:g} m={momentum:g}"))
    summary = summary_frame(rows)
    curves = curves_frame(settings, epochs=50)
    profiles, scores = profile_tables()
    runs = pd.DataFrame({"run_id": [f"r{i}" for i in range(1500)], "setting_id": np.repeat(summary["setting_id"], 3),
                         "state": "completed", "label": np.repeat(summary["label"], 3), "seed": np.tile([0, 1, 2], 500),
                         "error": ""})
    primary = dict.fromkeys(summary["problem"], "loss")
    started = time.perf_counter()
    figures = {
        "best_curves": plots.plot_curves(curves, tmp_path / "best_curves", primary, QUANTILES,
                                         order=list(summary["setting_id"][::25])),
        "curves": plots.plot_curves(curves, tmp_path / "curves", primary, QUANTILES, order=list(summary["setting_id"])),
        "sensitivity": plots.plot_sensitivity(summary, tmp_path / "sensitivity", QUANTILES),
        "boxes": plots.plot_boxes(summary, tmp_path / "boxes"),
        "profiles": plots.plot_profiles(profiles, scores, tmp_path / "profiles"),
    }
    html = render_report(SimpleNamespace(info={"name": "big"}, runs=runs, summary=summary, curves=curves,
                                         best=summary.iloc[::25], figures=figures, quantiles=QUANTILES))
    elapsed = time.perf_counter() - started
    assert elapsed < 30, f"the report of 500 settings took {elapsed:.1f} s"
    assert table_rows(html, "summary-table") == 500 and table_rows(html, "best-table") == 20
    assert "<details>" in html  # 500 rows start folded
    assert "1500 runs in 500 settings" in html


# ----------------------------------------------------------------------------- in Chromium


def open_offline(browser, path: Path):
    """A page showing ``path`` whose every request but the file and data: URIs is recorded and aborted."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    outside: list[str] = []
    document = path.as_uri()

    def handle(route):
        url = route.request.url
        if url == document or url.startswith("data:"):
            route.continue_()
        else:
            outside.append(url)
            route.abort()

    page.route("**/*", handle)
    page.on("request", lambda r: None if r.url == document or r.url.startswith("data:") else outside.append(r.url))
    page.goto(document, wait_until="load")
    return page, outside


def decode(png: bytes) -> np.ndarray:
    return mpimg.imread(io.BytesIO(png), format="png")[..., :3]


def test_report_renders_offline_in_chromium(demo_sweep, tmp_path, chromium):
    path = tmp_path / "report.html"
    path.write_text(render_report(report_input(demo_sweep, tmp_path)), encoding="utf-8")
    page, outside = open_offline(chromium, path)
    try:
        images = page.eval_on_selector_all(
            "img", "els => els.map(e => [e.closest('figure')?.id, e.complete, e.naturalWidth, e.naturalHeight])")
        assert [i[0] for i in images] == [f"figure-{n}" for n in ("sensitivity", "boxes", "budgets", "best_curves",
                                                                   "curves", "profiles")]
        assert all(complete and width > 100 and height > 100 for _, complete, width, height in images), images
        counts = {t: page.locator(f"#{t} tbody tr").count() for t in ("best-table", "speed-table", "robustness-table",
                                                                        "targets-table", "scores-table",
                                                                        "summary-table", "attention-table")}
        assert counts == {"best-table": 4, "speed-table": 4, "robustness-table": 4, "targets-table": 7,
                          "scores-table": 2, "summary-table": 7, "attention-table": 2}
        for name in FIGURES:
            shot = decode(page.locator(f"#figure-{name} img").screenshot())
            ink = (np.abs(shot - 1.0).max(axis=-1) > 0.05).mean()
            colours = len(np.unique((shot * 255).round().astype(np.uint8).reshape(-1, 3), axis=0))
            assert ink > 0.03 and colours > 16, (name, ink, colours)
        # clicking a numeric header sorts the rows by it, missing values last; again: reversed
        header = page.locator("#summary-table th", has_text="final valid")
        column = "rows => rows.map(r => r.cells[11].dataset.v)"  # ★ problem setting runs … stopped other n metric
        header.click()
        up = page.eval_on_selector_all("#summary-table tbody tr", column)
        header.click()
        down = page.eval_on_selector_all("#summary-table tbody tr", column)
        numbers = [float(v) for v in up if v]
        assert numbers == sorted(numbers) and len(numbers) >= 6 and up[len(numbers):] == [""] * (7 - len(numbers))
        assert [float(v) for v in down if v] == sorted(numbers, reverse=True)
        assert outside == []
    finally:
        page.close()


def test_the_request_recorder_sees_a_page_that_reaches_out(tmp_path, chromium):
    """The check above could fail: an outside image is caught (and aborted; 192.0.2.1 is a documentation address)."""
    path = tmp_path / "leaky.html"
    path.write_text('<!DOCTYPE html><img src="http://192.0.2.1/x.png"><img src="data:image/gif;base64,'
                    'R0lGODlhAQABAAAAACw=">', encoding="utf-8")
    page, outside = open_offline(chromium, path)
    page.close()
    assert outside and all(url == "http://192.0.2.1/x.png" for url in outside)
