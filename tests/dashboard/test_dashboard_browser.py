"""The real ``optbench dashboard`` in headless Chromium: counts, failures, live curves, nothing from outside."""

from __future__ import annotations

import pytest
from dashboard_support import inside_page, served
from monitor_support import FAILURE

from jobs.run_folder import METRICS, append_jsonl

REFRESH = 0.5


@pytest.fixture
def dashboard(mixed):
    with served(mixed.store.root, "--refresh", str(REFRESH)) as url:
        yield url


PLOT = "document.querySelector('#curves .panel[data-problem=digits_mlp] .plot')"
MEDIANS = f"""() => {PLOT}.data
    .filter(trace => trace.meta?.kind === "median").map(trace => ({{name: trace.name, x: trace.x, y: trace.y,
                                                                   n: trace.customdata}}))"""


def test_the_page_shows_the_sweep_and_follows_its_metrics(mixed, dashboard, chromium):
    with inside_page(chromium, dashboard, 1400, 1000) as page:
        page.goto(dashboard, wait_until="load")
        page.wait_for_selector("#counts .count", timeout=10_000)
        counts = page.eval_on_selector_all(
            "#counts .count", "els => els.map(e => [e.dataset.state, e.querySelector('b').textContent])")
        assert dict(counts) == {"running": "1", "failed": "1", "pending": "1", "completed": "1"}
        assert page.locator("#sweep-done").text_content() == "62 % of 4 runs"
        assert page.locator("#sweeps li.selected code").text_content() == mixed.sweep_dir.name

        failure = page.locator(f'#failures .failure[data-run="{mixed.failed}"]')
        assert FAILURE in failure.locator("pre.log").text_content()
        running = page.locator(f'#runs tr[data-run="{mixed.running}"]')
        assert "running" in running.text_content() and "15/30 steps" in running.text_content()
        assert page.locator("#runs tbody tr").count() == 4

        page.wait_for_function(f"() => {PLOT}?.data?.length === 4")
        medians = {t["name"]: t for t in page.evaluate(MEDIANS)}
        assert set(medians) == {"sgd lr=0.3", "sgd lr=0.1"}
        shared = medians["sgd lr=0.3"]  # the completed and the running run
        assert shared["x"] == [0, 1, 2, 3] and shared["n"] == [2, 2, 1, 1]

        # the running run writes its next evaluation: the curve changes in place within a few refreshes
        page.evaluate("() => { window.notReloaded = true; }")
        completed = {r["epoch"]: r["train_loss"] for r in mixed.folder(mixed.completed).metrics()}
        append_jsonl(mixed.folder(mixed.running).path(METRICS), [{"epoch": 2, "step": 36, "train_loss": 0.125}])
        page.wait_for_function(
            f"() => {PLOT}.data.some(t => t.name === 'sgd lr=0.3' && t.customdata[2] === 2)",
            timeout=10 * REFRESH * 1000)
        shared = {t["name"]: t for t in page.evaluate(MEDIANS)}["sgd lr=0.3"]
        assert shared["n"] == [2, 2, 2, 1] and shared["y"][2] == pytest.approx((completed[2] + 0.125) / 2)
        assert page.evaluate("() => window.notReloaded") is True

        # another metric: the axis and the runs table's last value follow the selector
        page.select_option("#metric", "valid_accuracy")
        page.wait_for_function(f"() => {PLOT}.layout.yaxis.title.text === 'valid_accuracy'")
        assert page.locator("#last-metric").text_content() == "last valid_accuracy"
        accuracy = mixed.folder(mixed.completed).metrics()[-1]["valid_accuracy"]
        cell = page.locator(f'#runs tr[data-run="{mixed.completed}"] td').nth(7).text_content()  # after problem
        assert float(cell) == pytest.approx(accuracy, rel=1e-3)

