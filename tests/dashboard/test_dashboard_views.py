"""The dashboard's views in headless Chromium over two planted sweeps of two problems and imported DeepOBS
baselines: one panel per problem, one colour per optimizer, filters, a setting's runs, comparison, the URL."""

from __future__ import annotations

from pathlib import Path

import pytest
from analysis_factory import BASE_SPEC, SweepBuilder, curve, make_spec
from dashboard_support import inside_page, served

from analysis.collect import collect_sweep
from analysis.deepobs_json import export_deepobs
from analysis.style import style_of

#: Problem → (loss scale, accuracy): quadratic_deep's losses lie in 100–500, digits_mlp's in 0.1–2.
PROBLEMS = {"quadratic_deep": (250.0, False), "digits_mlp": (1.0, True)}
MINE = {("sgd", 0.1): 1.0, ("sgd", 0.01): 0.9, ("adam", 0.001): 0.8, ("signum", 0.01): 0.6}
BASE = {("sgd", 0.1): 1.1, ("adam", 0.001): 0.85}
SEEDS = 2
TRAIN = {**BASE_SPEC["train"], "epochs": 4}  # evaluated at epochs 0 … 4, as DeepOBS's files need


def plant(sweep: SweepBuilder, settings: dict, failed: tuple | None = None) -> None:
    for problem, (size, accuracy) in PROBLEMS.items():
        for (optimizer, lr), scale in settings.items():
            for seed in range(SEEDS):
                spec = make_spec({"name": problem}, {"name": optimizer, "lr": lr}, seed, train=TRAIN)
                metrics = curve(5, rate=0.3, scale=size * scale * (1 + 0.03 * seed), accuracy=accuracy)
                if (problem, optimizer, lr, seed) == failed:
                    sweep.add(spec, "failed", metrics[:2], error="RuntimeError: boom")
                else:
                    sweep.add(spec, "completed", metrics)
    sweep.write()


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> Path:
    """``mine`` (sgd at two learning rates, adam and signum, one digits_mlp run failed), the newer sweep, and
    ``base`` (sgd and adam); ``base`` is also exported as DeepOBS JSONs, as published baselines come."""
    results = tmp_path_factory.mktemp("views") / "results"
    plant(SweepBuilder(results, "mine", sweep_id="mine-0001", created=1.8e9), MINE, ("digits_mlp", "sgd", 0.01, 1))
    base = SweepBuilder(results, "base", sweep_id="base-0001", created=1.7e9)
    plant(base, BASE)
    data = collect_sweep(base.sweep_dir, base.runs_dir)
    export_deepobs(data.runs, data.metrics, results.parent / "published")
    return results


@pytest.fixture(scope="module")
def dashboard(planted):
    """``optbench dashboard --deepobs published`` over the planted results."""
    with served(planted, "--refresh", "1", "--deepobs", str(planted.parent / "published")) as url:
        yield url


@pytest.fixture
def page(dashboard, chromium):
    with inside_page(chromium, dashboard, 1500, 1100) as page:
        yield page


def panels(page) -> dict[str, dict]:
    """Problem → its panel's medians (name, source, optimizer, colour, dash, y), y-range and axis type."""
    return page.evaluate("""() => Object.fromEntries([...document.querySelectorAll('#curves .panel')].map(panel => {
        const plot = panel.querySelector('.plot');
        return [panel.dataset.problem, {
          medians: plot.data.filter(t => t.meta?.kind === 'median').map(t => ({name: t.name, source: t.meta.source,
            optimizer: t.meta.optimizer, colour: t.line.color, dash: t.line.dash, y: t.y})),
          runs: plot.data.filter(t => t.meta?.kind === 'run').length,
          range: plot._fullLayout.yaxis.range, type: plot._fullLayout.yaxis.type}];
      }))""")


def rows(page) -> list[dict]:
    return page.eval_on_selector_all("#runs tbody tr", """rows => rows.map(r => ({problem: r.cells[1].textContent,
        setting: r.cells[2].textContent, state: r.cells[4].textContent}))""")


def settle(page, check: str) -> None:
    page.wait_for_function(check, timeout=10_000)


def test_one_panel_per_problem_in_its_own_range_one_colour_per_optimizer(page, dashboard):
    page.goto(dashboard, wait_until="load")
    settle(page, "() => document.querySelectorAll('#curves .panel .plot').length === 2 && "  # 4 medians, 4 bands:
                 "[...document.querySelectorAll('#curves .panel .plot')].every(p => p.data?.length === 8)")
    shown = panels(page)
    assert set(shown) == set(PROBLEMS)
    quadratic, digits = shown["quadratic_deep"], shown["digits_mlp"]
    # each panel holds its own problem's curves, and its axis spans their values, not the other problem's
    for panel in (quadratic, digits):
        values = [y for m in panel["medians"] for y in m["y"]]
        low, high = min(values), max(values)
        margin = 0.15 * (high - low)
        assert low - margin <= panel["range"][0] <= low and high <= panel["range"][1] <= high + margin, panel["range"]
    assert min(y for m in quadratic["medians"] for y in m["y"]) > 80 > 3 > max(y for m in digits["medians"]
                                                                               for y in m["y"])
    # one colour per optimizer in every panel: its own (analysis.style), shades of it for sgd's two settings
    colours = [{m["name"]: m["colour"] for m in panel["medians"]} for panel in (quadratic, digits)]
    assert colours[0] == colours[1]
    assert [m["name"] for m in quadratic["medians"]] == [m["name"] for m in digits["medians"]] == [
        "signum lr=0.01", "sgd lr=0.01", "sgd lr=0.1", "adam lr=0.001"]  # one legend order: the user's first
    for name in ("signum lr=0.01", "adam lr=0.001"):
        assert colours[0][name] == style_of(name.split()[0]).colour
    assert colours[0]["sgd lr=0.01"] != colours[0]["sgd lr=0.1"]
    assert page.evaluate("location.hash") == "#sweep=mine-0001&metric=train_loss"
    # a problem column; labels without the problem in them
    table = rows(page)
    assert len(table) == len(PROBLEMS) * len(MINE) * SEEDS
    assert {r["problem"] for r in table} == set(PROBLEMS) and not any("·" in r["setting"] for r in table)
    # log scale and smoothing: toggled in place and kept in the URL
    page.check("#log")
    page.select_option("#smooth", "0.8")
    settle(page, "() => document.querySelector('#curves .panel .plot')._fullLayout.yaxis.type === 'log'")
    assert panels(page)["digits_mlp"]["medians"][0]["y"] != digits["medians"][0]["y"]  # smoothed
    assert page.evaluate("location.hash") == "#sweep=mine-0001&metric=train_loss&log=1&smooth=0.8"


def test_filters_change_the_rows_and_curves_and_a_link_shows_the_same(page, dashboard, chromium):
    page.goto(dashboard, wait_until="load")
    settle(page, "() => document.querySelectorAll('#runs tbody tr').length === 16")
    page.select_option('select[data-filter="problem"]', "digits_mlp")
    settle(page, "() => document.querySelectorAll('#curves .panel').length === 1")
    assert {r["problem"] for r in rows(page)} == {"digits_mlp"} and len(rows(page)) == 8
    page.select_option('select[data-filter="state"]', "failed")
    assert [(r["setting"], r["state"]) for r in rows(page)] == [("sgd lr=0.01", "failed")]
    page.select_option('select[data-filter="state"]', "")
    page.select_option('select[data-filter="optimizer"]', "sgd")
    page.select_option('select[data-filter="p.lr"]', "0.01")
    assert [r["setting"] for r in rows(page)] == ["sgd lr=0.01", "sgd lr=0.01"]
    assert page.locator("#runs-shown").text_content() == "2 of 16 runs"
    (panel,) = panels(page).values()
    assert [m["name"] for m in panel["medians"]] == ["sgd lr=0.01"]
    link = page.evaluate("location.href")
    assert link.endswith("#sweep=mine-0001&metric=train_loss&problem=digits_mlp&optimizer=sgd&p.lr=0.01")
    # a colleague opening the link sees the same rows, curves and choices
    other = chromium.new_page(viewport={"width": 1500, "height": 1100})
    try:
        other.goto(link, wait_until="load")
        settle(other, "() => document.querySelectorAll('#runs tbody tr').length === 2 && "
                      "document.querySelector('#curves .panel .plot')?.data?.length === 2")
        assert rows(other) == rows(page)
        assert panels(other) == panels(page)
        assert other.eval_on_selector_all("#filters select", "s => s.map(x => [x.dataset.filter, x.value])") == \
            page.eval_on_selector_all("#filters select", "s => s.map(x => [x.dataset.filter, x.value])")
    finally:
        other.close()


def test_a_chosen_setting_shows_all_its_runs(page, dashboard):
    page.goto(dashboard, wait_until="load")
    settle(page, "() => document.querySelectorAll('#runs tbody tr').length === 16")
    page.locator("#runs tbody tr", has_text="quadratic_deep").filter(has_text="adam lr=0.001").first \
        .locator("a.setting").click()
    settle(page, "() => document.querySelectorAll('#runs tbody tr').length === 2")
    assert {(r["problem"], r["setting"]) for r in rows(page)} == {("quadratic_deep", "adam lr=0.001")}
    settle(page, "() => document.querySelectorAll('#curves .panel').length === 1 && "
                 "document.querySelector('#curves .panel .plot').data.some(t => t.meta?.kind === 'run')")
    (panel,) = panels(page).values()
    assert [m["name"] for m in panel["medians"]] == ["adam lr=0.001"] and panel["runs"] == SEEDS
    assert "setting=" in page.evaluate("location.hash")
    assert page.locator("#chosen-label").text_content() == "quadratic_deep · adam lr=0.001"
    page.click("#chosen-clear")
    settle(page, "() => document.querySelectorAll('#runs tbody tr').length === 16")
    assert "setting=" not in page.evaluate("location.hash")


def test_compare_draws_a_baseline_sweep_and_deepobs_baselines_in_the_same_panels(page, dashboard):
    page.goto(dashboard, wait_until="load")
    settle(page, "() => document.querySelectorAll('#sweeps li').length === 2")
    page.check('input[data-compare="base-0001"]')
    page.check('input[data-compare="baseline:published"]')
    settle(page, "() => [...document.querySelectorAll('#curves .panel .plot')].every(p => "
                 "new Set(p.data.map(t => t.meta?.source).filter(Boolean)).size === 3)")
    for problem, panel in panels(page).items():
        by_source = {}
        for median in panel["medians"]:
            by_source.setdefault(median["source"], {})[median["optimizer"]] = (median["colour"], median["dash"])
        assert set(by_source) == {"mine-0001", "base-0001", "baseline:published"}, problem
        assert set(by_source["base-0001"]) == set(by_source["baseline:published"]) == {"sgd", "adam"}
        # the same optimizer in the same colour whatever sweep it comes from; each source in its own dash
        adam = {source: drawn["adam"] for source, drawn in by_source.items()}
        assert {colour for colour, _ in adam.values()} == {style_of("adam").colour}
        assert {source: dash for source, (_, dash) in adam.items()} == {
            "mine-0001": "solid", "base-0001": "dash", "baseline:published": "dot"}
        names = [m["name"] for m in panel["medians"]]
        assert "base-0001: adam lr=0.001" in names and "baseline:published: sgd lr=0.1" in names
    assert page.evaluate("location.hash").endswith("compare=base-0001%2Cbaseline%3Apublished")
    note = page.locator("#compare-note").text_content()
    assert "solid: mine-0001 (selected)" in note and "dot: baseline:published" in note
