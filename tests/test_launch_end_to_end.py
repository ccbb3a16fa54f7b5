"""The spine end to end: launch → run folders (+ W&B offline) → aggregate → report."""

from __future__ import annotations

import base64
import json
import re

import pandas as pd
import pytest

from jobs.run_folder import RunFolder
from orchestrator.ledger import Ledger
from orchestrator.store import ResultsStore

pytestmark = pytest.mark.integration  # runs real jobs


def test_dry_run_lists_the_18_smoke_runs_and_writes_nothing(optbench, results):
    status, out, _ = optbench("launch", "sweep=smoke", "--dry-run", "--results", results)
    assert status == 0
    assert len(re.findall(r"^│ [0-9a-f]{12} ", out, flags=re.M)) == 18
    assert "would start 18 of 18 runs" in " ".join(out.split())
    assert not results.exists()


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """The smoke sweep, shortened to 2 epochs, launched twice, then aggregated and reported."""
    from orchestrator.cli import main

    results = tmp_path_factory.mktemp("smoke") / "results"
    args = ["sweep=smoke", "train.epochs=2", "--results", str(results)]
    first = main(["launch", *args])
    runs_after_first = {p.name: RunFolder(p).status()["updated"] for p in (results / "runs").iterdir()}
    second = main(["launch", *args])
    aggregate = main(["aggregate", "smoke", "--results", str(results)])
    report = main(["report", "smoke", "--results", str(results)])
    return {"results": results, "status": (first, second, aggregate, report), "first": runs_after_first}


def test_launch_runs_18_then_0(smoke, capsys):
    assert smoke["status"] == (0, 0, 0, 0)
    store = ResultsStore(smoke["results"])
    assert len(smoke["first"]) == 18
    # the second launch touched no run
    assert {p.name: RunFolder(p).status()["updated"] for p in store.runs_dir.iterdir()} == smoke["first"]
    (sweep_dir,) = store.sweeps_dir.iterdir()
    assignments, unresolved = Ledger(sweep_dir).read()
    assert sorted(assignments) == sorted(smoke["first"]) and not unresolved
    assert len({a.job_id for a in assignments.values()}) == 18  # a job per run (warm workers run several each)
    assert json.loads((sweep_dir / "sweep.json").read_text())["launches"] == 2


def test_every_run_folder_holds_the_contract(smoke):
    for path in (smoke["results"] / "runs").iterdir():
        folder = RunFolder(path)
        assert folder.state in ("completed", "diverged")
        assert [m["epoch"] for m in folder.metrics()] == [0, 1, 2]
        summary = folder.summary()
        assert summary["run_id"] == path.name and summary["state"] == folder.state
        provenance = json.loads(folder.path("provenance.json").read_text())
        assert provenance["packages"]["torch"].startswith("2.") and provenance["python"].startswith("3.")
        assert "commit" in provenance["code"]


def test_wandb_offline_run_is_grouped_by_sweep_and_holds_the_metrics(smoke):
    store = ResultsStore(smoke["results"])
    (sweep_dir,) = store.sweeps_dir.iterdir()
    for path in store.runs_dir.iterdir():
        (record_log,) = path.glob(f"wandb/offline-run-*-{path.name}/run-{path.name}.wandb")
        raw = record_log.read_bytes()
        # The record log is binary protobuf; names and strings are stored verbatim.
        for needle in (path.name, sweep_dir.name, "valid_loss", "test_loss", "optimizer.name"):
            assert needle.encode() in raw


def test_aggregate_writes_tables_and_plots(smoke):
    store = ResultsStore(smoke["results"])
    (sweep_dir,) = store.sweeps_dir.iterdir()
    summary = pd.read_csv(sweep_dir / "aggregate" / "summary.csv")
    assert len(summary) == 6, "3 optimizers x 2 problems settings"
    assert set(summary["runs"]) == {3}
    png = (sweep_dir / "aggregate" / "plots" / "curves.png").read_bytes()
    assert png.startswith(b"\x89PNG")


def test_report_is_self_contained_html_with_the_plots(smoke):
    store = ResultsStore(smoke["results"])
    (sweep_dir,) = store.sweeps_dir.iterdir()
    html = (sweep_dir / "report.html").read_text()
    images = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", html)
    assert images and all(base64.b64decode(i).startswith(b"\x89PNG") for i in images)
    assert not re.search(r"""(src|href)=["'](?!data:|#)""", html), "no external assets"
    for optimizer in ("sgd", "adam", "pal"):
        assert optimizer in html
