"""Curvature measurements end to end: launch with measure=… → measurements.jsonl → aggregate → report."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest

from jobs.run_folder import MEASUREMENTS, RunFolder

pytestmark = pytest.mark.integration  # runs real jobs

LAUNCH = ("problem=digits_cnn", "measure=hessian_spectrum", "measure.iterations=5", "measure.examples=64",
          "train.epochs=2", "seed=0,1", "logger=disabled")


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    from orchestrator.cli import main

    results = tmp_path_factory.mktemp("measured") / "results"
    statuses = (main(["launch", *LAUNCH, "--results", str(results)]),
                main(["aggregate", "adhoc", "--no-wandb", "--results", str(results)]),
                main(["report", "adhoc", "--results", str(results)]))
    (sweep,) = (results / "sweeps").iterdir()
    return {"results": results, "sweep": sweep, "statuses": statuses}


def test_each_run_measures_every_evaluated_epoch(measured):
    assert measured["statuses"] == (0, 0, 0)
    runs = list((measured["results"] / "runs").iterdir())
    assert len(runs) == 2
    for path in runs:
        folder = RunFolder(path)
        assert folder.state == "completed"
        records = [json.loads(line) for line in folder.path(MEASUREMENTS).read_text().splitlines()]
        assert [r["epoch"] for r in records] == [m["epoch"] for m in folder.metrics()] == [0, 1, 2]
        assert all(r["measurement"] == "hessian_spectrum" and r["examples"] == 64 for r in records)
        assert all(set(r["scalars"]) >= {"eigenvalue_1", "eigenvalue_2", "eigenvalue_3"} for r in records)


def test_the_aggregate_has_the_measurement_tables(measured):
    out = measured["sweep"] / "aggregate"
    assert {"measurements", "measurement_summary"} <= set(json.loads((out / "aggregate.json").read_text())["tables"])
    summary = pd.read_csv(out / "measurement_summary.csv")
    top = summary[summary["quantity"] == "eigenvalue_1"]
    assert list(top["epoch"]) == [0, 1, 2] and set(top["n"]) == {2}
    assert (out / "plots" / "measure_spectrum.png").read_bytes().startswith(b"\x89PNG")


def test_the_report_shows_the_curvature_section_with_its_figure(measured):
    html = (measured["sweep"] / "report.html").read_text()
    assert '<h2 id="measurements">Curvature measurements</h2>' in html
    assert re.search(r'<table id="measure-hessian_spectrum-table"', html)
    assert re.search(r'<figure id="figure-measure_spectrum"[^>]*>\s*<img [^>]*src="data:image/png;base64,', html)
