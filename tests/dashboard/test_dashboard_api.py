"""The dashboard's JSON API over a sweep with a completed, a running, a failed and a pending run."""

from __future__ import annotations

import json
from collections import Counter, defaultdict

import numpy as np
import pytest
from monitor_support import FAILURE
from starlette.testclient import TestClient

from jobs.run_folder import METRICS, append_jsonl
from orchestrator import monitor as monitor_module
from orchestrator.dashboard import create_app
from orchestrator.dashboard import curves as curves_module
from orchestrator.dashboard import progress as progress_module
from orchestrator.dashboard.progress import ProgressCache
from orchestrator.dashboard.reports import sweep_file
from orchestrator.monitor import sweep_progress
from orchestrator.slurmctl import SlurmUnavailable

pytestmark = pytest.mark.integration  # runs real jobs


@pytest.fixture
def client(mixed) -> TestClient:
    return TestClient(create_app(mixed.store, refresh_seconds=5))


def run_ids(mixed) -> list[str]:
    return [mixed.completed, mixed.running, mixed.failed, mixed.pending]


def test_counts_agree_with_the_run_folders_and_with_status(mixed, client):
    (listed,) = client.get("/api/sweeps").json()["sweeps"]
    on_disk = Counter(mixed.folder(r).state for r in run_ids(mixed))
    assert listed["counts"] == dict(on_disk) == {"completed": 1, "running": 1, "failed": 1, "pending": 1}
    assert (listed["sweep_id"], listed["runs"], listed["active"]) == (mixed.sweep_dir.name, 4, True)
    assert listed["fraction"] == pytest.approx((1 + 1 + 0.5 + 0) / 4)

    sweep = client.get(f"/api/sweeps/{mixed.sweep_dir.name}").json()
    model = sweep_progress(mixed.store, mixed.sweep_dir)
    assert sweep["counts"] == model.counts
    assert [(r["run_id"], r["state"]) for r in sweep["runs"]] == [(r.run_id, r.state) for r in model.runs]
    assert {r["run_id"]: r["state"] for r in sweep["runs"]} == {r: mixed.folder(r).state for r in run_ids(mixed)}
    # a sweep is found by its name too, as optbench status finds it
    assert client.get(f"/api/sweeps/{listed['name']}").json()["sweep_id"] == mixed.sweep_dir.name


def test_the_running_run_shows_its_heartbeat(mixed, client):
    runs = {r["run_id"]: r for r in client.get(f"/api/sweeps/{mixed.sweep_dir.name}").json()["runs"]}
    running = runs[mixed.running]
    assert (running["step"], running["steps"], running["fraction"], running["loss"]) == (15, 30, 0.5, 0.25)
    assert (running["epoch"], running["epochs"], running["stalled"]) == (1, 3, False)
    assert runs[mixed.pending]["fraction"] == 0 and runs[mixed.completed]["fraction"] == 1


def test_failures_come_with_the_end_of_their_job_log(mixed, client):
    sweep = client.get(f"/api/sweeps/{mixed.sweep_dir.name}").json()
    (failure,) = sweep["failures"]
    assert (failure["run_id"], failure["state"]) == (mixed.failed, "failed")
    assert failure["log"].endswith("_0_log.err") and FAILURE in failure["error"]
    assert failure["log_tail"][-1] == FAILURE and len(failure["log_tail"]) <= progress_module.LOG_LINES


def expected_curves(mixed, metric: str) -> dict[str, dict[int, list[float]]]:
    """setting_id → epoch → the seeds' values, read straight from runs.jsonl and each run's metrics.jsonl."""
    values: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for line in (mixed.sweep_dir / "runs.jsonl").read_text().splitlines():
        entry = json.loads(line)
        path = mixed.store.runs_dir / entry["run_id"] / METRICS
        for record in map(json.loads, path.read_text().splitlines() if path.is_file() else []):
            values[entry["setting_id"]][record["epoch"]].append(record[metric])
    return values


@pytest.mark.parametrize("metric", ["train_loss", "valid_accuracy"])
def test_curves_are_the_median_and_quartiles_over_seeds(mixed, client, metric):
    answer = client.get(f"/api/sweeps/{mixed.sweep_dir.name}/curves", params={"metric": metric}).json()
    assert answer["metric"] == metric and answer["quantiles"] == [0.25, 0.75]
    assert {"train_loss", "valid_loss", "valid_accuracy", "test_accuracy"} <= set(answer["metrics"])
    expected = expected_curves(mixed, metric)
    assert {s["setting_id"] for s in answer["settings"]} == set(expected)
    assert {s["label"] for s in answer["settings"]} == {"sgd lr=0.3", "sgd lr=0.1"}
    for setting in answer["settings"]:
        seeds = expected[setting["setting_id"]]
        assert setting["epoch"] == sorted(seeds) == [0, 1, 2, 3]
        assert setting["n"] == [len(seeds[e]) for e in setting["epoch"]]
        for key, q in (("median", 0.5), ("low", 0.25), ("high", 0.75)):
            assert setting[key] == pytest.approx([np.quantile(seeds[e], q) for e in setting["epoch"]], rel=1e-12)
    # the running run (two evaluations) and the completed one share a setting: two seeds where both have a value
    (shared,) = [s for s in answer["settings"] if s["n"][0] == 2]
    assert shared["n"] == [2, 2, 1, 1] and shared["low"][0] < shared["median"][0] < shared["high"][0]


def test_curves_default_to_the_training_loss_and_take_other_quantiles(mixed, client):
    url = f"/api/sweeps/{mixed.sweep_dir.name}/curves"
    assert client.get(url).json()["metric"] == "train_loss"
    wide = client.get(url, params={"quantiles": "0.1,0.9"}).json()
    seeds = expected_curves(mixed, "train_loss")
    for setting in wide["settings"]:
        values = seeds[setting["setting_id"]]
        assert setting["low"] == pytest.approx([np.quantile(values[e], 0.1) for e in setting["epoch"]], rel=1e-12)


def test_curves_are_read_again_only_when_a_metrics_file_grows(mixed, client, monkeypatch):
    reads = []
    original = curves_module.collect_sweep
    monkeypatch.setattr(curves_module, "collect_sweep", lambda *a: reads.append(a) or original(*a))
    url = f"/api/sweeps/{mixed.sweep_dir.name}/curves"
    first = client.get(url).json()
    assert client.get(url).json() == first and len(reads) == 1

    completed = {r["epoch"]: r["train_loss"] for r in mixed.folder(mixed.completed).metrics()}
    append_jsonl(mixed.folder(mixed.running).path(METRICS), [{"epoch": 2, "step": 36, "train_loss": 0.125}])
    after = client.get(url).json()
    assert len(reads) == 2
    (shared,) = [s for s in after["settings"] if s["n"][0] == 2]
    assert shared["n"] == [2, 2, 2, 1]
    assert shared["median"][2] == pytest.approx(np.median([completed[2], 0.125]))


def test_an_ended_sweep_is_computed_again_only_when_its_files_change(mixed, monkeypatch):
    mixed.folder(mixed.running).set_state("completed")
    mixed.folder(mixed.pending).set_state("cancelled")
    computed = []
    monkeypatch.setattr(progress_module, "sweep_progress", lambda *a: computed.append(a) or sweep_progress(*a))
    cache = ProgressCache(mixed.store, max_age=0.0)
    first = cache.sweep(mixed.sweep_dir)
    assert not first["active"] and first["counts"] == {"failed": 1, "cancelled": 1, "completed": 2}
    assert cache.sweep(mixed.sweep_dir) == first and len(computed) == 1
    mixed.folder(mixed.failed).set_state("completed")  # e.g. resumed through another sweep that shares the run
    assert cache.sweep(mixed.sweep_dir)["counts"] == {"completed": 3, "cancelled": 1} and len(computed) == 2


def test_an_active_sweep_is_computed_again_on_each_refresh(mixed, monkeypatch):
    computed = []
    monkeypatch.setattr(progress_module, "sweep_progress", lambda *a: computed.append(a) or sweep_progress(*a))
    cache = ProgressCache(mixed.store, max_age=0.0)
    assert cache.sweep(mixed.sweep_dir)["counts"]["running"] == 1
    mixed.folder(mixed.running).set_state("completed")
    assert cache.sweep(mixed.sweep_dir)["counts"]["completed"] == 2 and len(computed) == 2


def test_a_sweep_whose_scheduler_does_not_answer_shows_the_run_folders_and_says_why(mixed, client, monkeypatch):
    """Slurm not answering is mocked here (the mixed sweep ran locally); tests/reliability stops the real one."""
    reconcile = monitor_module.reconcile

    def without_slurm(store, sweep_dir, run_ids, ask_scheduler=True):
        if ask_scheduler:
            raise SlurmUnavailable("Slurm is not reachable (connection refused); start it or use launcher=local.")
        return reconcile(store, sweep_dir, run_ids, ask_scheduler=False)

    monkeypatch.setattr(monitor_module, "reconcile", without_slurm)
    (listed,) = client.get("/api/sweeps").json()["sweeps"]
    assert listed["counts"] == {"running": 1, "failed": 1, "pending": 1, "completed": 1}
    answer = client.get(f"/api/sweeps/{mixed.sweep_dir.name}")
    assert answer.status_code == 200 and "Slurm does not answer now" in answer.json()["warning"]
    assert "connection refused" in answer.json()["warning"]


def test_the_report_and_its_figures_are_served_once_written(mixed, client):
    sweep_id = mixed.sweep_dir.name
    assert client.get(f"/api/sweeps/{sweep_id}").json()["report"] is None
    assert client.get(f"/sweeps/{sweep_id}/report.html").status_code == 404

    figures = mixed.sweep_dir / "aggregate" / "figures"
    figures.mkdir(parents=True)
    (figures / "curves.png").write_bytes(b"\x89PNG fake")
    (mixed.sweep_dir / "aggregate" / "report.html").write_text("<h1>aggregate's report</h1>")
    assert client.get(f"/api/sweeps/{sweep_id}").json()["report"] == f"sweeps/{sweep_id}/aggregate/report.html"
    (mixed.sweep_dir / "report.html").write_text("<h1>demo report</h1>")  # where optbench report writes it
    (listed,) = client.get("/api/sweeps").json()["sweeps"]
    assert listed["report"] == f"sweeps/{sweep_id}/report.html"
    page = client.get(f"/{listed['report']}")
    assert page.status_code == 200 and page.text == "<h1>demo report</h1>"
    assert "text/html" in page.headers["content-type"]
    assert client.get(f"/sweeps/{sweep_id}/aggregate/figures/curves.png").content == b"\x89PNG fake"
    # nothing else of the sweep or the results folder is served
    for other in ("runs.jsonl", "sweep.json", "aggregate/../runs.jsonl", "aggregate/../../../runs"):
        assert sweep_file(mixed.sweep_dir, other) is None, other
    assert client.get(f"/sweeps/{sweep_id}/runs.jsonl").status_code == 404
    assert client.get(f"/sweeps/{sweep_id}/aggregate/%2E%2E/runs.jsonl").status_code == 404


def test_unknown_sweeps_and_bad_queries_are_answered_in_one_sentence(mixed, client):
    for path in ("/api/sweeps/nope", "/api/sweeps/nope/curves", "/sweeps/nope/report.html"):
        answer = client.get(path)
        assert answer.status_code == 404, path
        error = answer.json()["error"]
        assert "'nope'" in error and str(mixed.store.root) in error and error.endswith(".") and "\n" not in error
    curves = f"/api/sweeps/{mixed.sweep_dir.name}/curves"
    bad_metric = client.get(curves, params={"metric": "accuracy"})
    assert bad_metric.status_code == 400 and "no metric 'accuracy'" in bad_metric.json()["error"]
    bad_quantiles = client.get(curves, params={"quantiles": "0.25,1.5"})
    assert bad_quantiles.status_code == 400 and "1.5" in bad_quantiles.json()["error"]


def test_the_page_and_its_scripts_come_from_this_server(mixed, client):
    page = client.get("/").text
    assert '<script src="plotly.min.js">' in page and '<script src="static/dashboard.js"' in page
    assert "http://" not in page and "https://" not in page
    plotly = client.get("/plotly.min.js")
    assert plotly.status_code == 200 and "javascript" in plotly.headers["content-type"] and len(plotly.content) > 1e6
    assert "Plotly.react" in client.get("/static/dashboard.js").text
    assert client.get("/api/config").json() == {"results": str(mixed.store.root), "refresh_seconds": 5}
