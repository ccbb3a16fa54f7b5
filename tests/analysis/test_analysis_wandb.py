"""Reading sweeps from W&B (analysis.wandb_source) and logging the aggregate to W&B (analysis.wandb_summary).

Mock: W&B's servers are not reachable in CI, so reading runs is tested with a fake ``wandb.Api``
(FakeApi below) that serves the demo sweep the way jobs/sinks.py logs it; the real ``wandb.Api``
is only checked to fail fast with a one-sentence error. The summary run uses the real wandb
library in offline mode and is checked on disk.
"""

from __future__ import annotations

import json
import math
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
import pytest
import wandb
from wandb.proto import wandb_internal_pb2

from analysis.collect import collect_sweep
from analysis.labels import setting_labels
from analysis.style import style_of
from analysis.tables import primary_metrics, summary_table
from analysis.wandb_source import (
    WandbError,
    collect_wandb,
    eval_records,
    metrics_table,
    run_state,
    spec_from_config,
    spec_setting_id,
)
from analysis.wandb_summary import headline, log_summary, table_frame
from jobs.spec import flatten, setting_id

matplotlib.use("Agg")
from matplotlib import pyplot as plt  # noqa: E402

GROUP = "sw-0001"
PATH = "ent/optbench"
#: (W&B run state, summary) each run-folder state ends with, as WandbSink.close and W&B leave them.
WANDB_ENDINGS = {
    "completed": ("finished", {"state": "completed", "steps": 30}),
    "diverged": ("finished", {"state": "diverged", "steps": 20}),
    "failed": ("failed", {"state": "failed", "steps": None}),
    "running": ("running", {}),
}


# ----------------------------------------------------------------------------- fake W&B API


@dataclass
class FakeRun:
    id: str
    state: str
    config: dict[str, Any]
    summary: dict[str, Any]
    group: str = GROUP
    job_type: str | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.id

    def scan_history(self, keys: list[str] | None = None) -> list[dict[str, Any]]:
        assert keys is None
        return list(self.rows)


class FakeApi:
    """Serves ``runs`` for ``PATH``; filters by group like W&B; records the queries."""

    def __init__(self, runs: list[FakeRun], error: Exception | None = None):
        self._runs, self.error, self.queries = runs, error, []

    def runs(self, path: str, filters: dict[str, Any] | None = None):
        self.queries.append((path, filters))
        if self.error is not None:
            raise self.error
        if path != PATH:
            raise ValueError(f"Could not find project {path}")
        return iter([r for r in self._runs if not filters or r.group == filters["group"]])


def history_rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What scan_history returns for WandbSink's log_eval/log_step: eval rows (with a merged step/ key) and
    step-only rows in between; internal ``_`` keys; W&B's JSON may spell infinity as text."""
    rows = []
    for record in records:
        row = {"_step": record["step"], "_runtime": 1.5, "_timestamp": 1.7e9, "step/grad_norm": 0.3}
        row.update({k: ("Infinity" if v == math.inf else v) for k, v in record.items() if k != "step"})
        rows.append(row)
        rows.append({"_step": record["step"] + 1, "_runtime": 1.6, "step/loss": 0.25, "step/epoch": 0.1})
    return rows


def read_metrics_lines(path: Path) -> list[dict[str, Any]]:
    records = []
    for line in path.read_text().splitlines(keepends=True):
        if line.endswith("\n"):  # a torn last line never reached W&B
            records.append(json.loads(line))
    return records


def fake_runs(sweep) -> list[FakeRun]:
    """The demo sweep's runs as W&B holds them (a pending run has no W&B run)."""
    runs = []
    for entry in sweep.entries:
        folder = sweep.runs_dir / entry["run_id"]
        if not folder.is_dir():
            continue
        state, summary = WANDB_ENDINGS[json.loads((folder / "status.json").read_text())["state"]]
        config = {"_wandb": {"cli_version": "0.31.0"}, **flatten(entry["spec"])}
        runs.append(FakeRun(entry["run_id"], state, config, dict(summary),
                            rows=history_rows(read_metrics_lines(folder / "metrics.jsonl"))))
    return runs


@pytest.fixture
def fake_api(demo_sweep) -> FakeApi:
    other = json.loads(json.dumps(demo_sweep.entries[0]["spec"]))
    other["seed"] = 99
    extra = [
        FakeRun(f"{GROUP}-summary", "finished", {"sweep_id": GROUP}, {"runs": 21}, job_type="aggregate"),
        FakeRun("notoptbench", "finished", {"lr": 0.1}, {}),
        FakeRun("othersweep01", "finished", flatten(other), {"state": "completed"}, group="sw-0002",
                rows=history_rows([{"epoch": 0, "step": 0, "train_loss": 1.0}])),
    ]
    return FakeApi(fake_runs(demo_sweep) + extra)


# ----------------------------------------------------------------------------- collect_wandb


def test_collect_wandb_gives_the_tables_collect_sweep_gives(demo_sweep, fake_api):
    disk = collect_sweep(demo_sweep.sweep_dir, demo_sweep.runs_dir)
    data = collect_wandb(PATH, GROUP, api=fake_api)

    assert fake_api.queries == [(PATH, {"group": GROUP})]
    on_wandb = disk.runs[disk.runs["state"] != "pending"].reset_index(drop=True)
    assert len(data.runs) == len(on_wandb) == 21
    assert list(data.runs.columns) == list(disk.runs.columns)
    pd.testing.assert_frame_equal(data.runs.drop(columns="error"), on_wandb.drop(columns="error"))
    assert (data.runs["error"] == "").all()  # W&B keeps no error text
    assert data.runs["state"].value_counts().to_dict() == {"completed": 18, "diverged": 1, "failed": 1, "running": 1}
    assert data.runs.groupby("setting_id").size().sort_values().tolist() == [3] * 7
    assert data.runs.loc[data.runs["state"] == "failed", "points"].tolist() == [2]

    expected = disk.metrics[disk.metrics["run_id"].isin(on_wandb["run_id"])].reset_index(drop=True)
    assert len(data.metrics) == len(expected) == 18 * 4 + 3 + 2 + 1
    assert list(data.metrics.columns) == list(disk.metrics.columns)
    assert "grad_norm" not in data.metrics.columns and not any(c.startswith("step/") for c in data.metrics.columns)
    assert list(data.metrics["run_id"].cat.categories) == list(data.runs["run_id"])
    pd.testing.assert_frame_equal(data.metrics.astype({"run_id": str, "setting_id": str}),
                                  expected.astype({"run_id": str, "setting_id": str}))
    diverged = data.metrics[data.metrics["run_id"] == data.runs.loc[data.runs["state"] == "diverged", "run_id"].iloc[0]]
    assert math.isnan(diverged["train_loss"].iloc[-1]) and diverged["test_loss"].iloc[-1] == math.inf
    assert data.info["sweep_id"] == GROUP and data.info["groups"] == [GROUP] and data.info["source"] == "wandb"


def test_collect_wandb_without_a_group_reads_every_sweep_of_the_project(fake_api):
    data = collect_wandb(PATH, api=fake_api)
    assert fake_api.queries == [(PATH, None)]
    assert len(data.runs) == 22 and "othersweep01" in set(data.runs["run_id"])
    assert data.info["groups"] == [GROUP, "sw-0002"] and data.info["sweep_id"] == PATH
    # same spec but the seed: the other sweep's run joins the setting of the run it was copied from
    first = data.runs.iloc[0]
    assert data.runs.set_index("run_id").loc["othersweep01", "setting_id"] == first["setting_id"]


@pytest.mark.parametrize(("wandb_state", "summary", "expected"), [
    ("finished", {"state": "completed"}, "completed"),
    ("finished", {"state": "diverged"}, "diverged"),
    ("finished", {}, "completed"),
    ("failed", {"state": "failed"}, "failed"),
    ("crashed", {}, "failed"),
    ("killed", {}, "cancelled"),
    ("running", {"state": "failed"}, "running"),  # resumed after a failed attempt
    ("Running", {}, "running"),
    ("odd", {}, "unknown"),
])
def test_run_state_prefers_the_state_the_job_wrote(wandb_state, summary, expected):
    assert run_state(FakeRun("r", wandb_state, {}, summary)) == expected


def test_spec_from_config_unflattens_dotted_and_nested_keys_and_drops_wandb_keys():
    config = {"_wandb": {"x": 1}, "optimizer.lr": 0.1, "optimizer.name": "sgd", "problem": {"name": "q", "n": 2},
              "train.clip_grad_norm": None, "train.sizes": [1, 2], "seed": 3}
    assert spec_from_config(config) == {"optimizer": {"lr": 0.1, "name": "sgd"}, "problem": {"name": "q", "n": 2},
                                        "train": {"clip_grad_norm": None, "sizes": [1, 2]}, "seed": 3}


def test_setting_id_is_the_jobs_one_and_stable_for_specs_that_are_not_canonical_json():
    spec = {"problem": {"name": "q"}, "optimizer": {"name": "sgd", "lr": 0.1}, "seed": 0}
    assert spec_setting_id(spec) == setting_id(spec) == setting_id({**spec, "seed": 5})
    odd = {"problem": {"name": "q"}, "optimizer": {"name": "sgd", "lr": math.nan}, "seed": 0}
    assert spec_setting_id(odd) == spec_setting_id({**odd, "seed": 1}) != spec_setting_id(spec)
    assert len(spec_setting_id(odd)) == len(setting_id(spec))


def test_eval_records_keep_rows_with_an_epoch_and_metrics_keep_the_last_repeated_epoch():
    rows = [{"_step": 0, "epoch": 0, "train_loss": 2.0, "flag": True, "note": "x", "step/loss": 9.0},
            {"_step": 5, "step/loss": 1.0},
            {"_step": 10, "epoch": 1, "train_loss": "NaN", "valid_loss": "-Infinity"},
            {"_step": 10, "epoch": 1, "train_loss": 0.5},  # the same point logged again after a resume
            {"_step": 11, "epoch": None, "train_loss": 7.0}]
    records = eval_records(rows)
    assert records[0] == {"step": 0.0, "epoch": 0.0, "train_loss": 2.0}
    assert math.isnan(records[1]["train_loss"]) and records[1]["valid_loss"] == -math.inf
    assert len(records) == 3
    table = metrics_table([records, []], ["a", "b"], ["s", "s"])
    assert list(table.columns) == ["run_id", "setting_id", "epoch", "step", "train_loss", "valid_loss"]
    assert table["epoch"].tolist() == [0, 1] and table["train_loss"].tolist() == [2.0, 0.5]
    assert list(table["run_id"].cat.categories) == ["a", "b"]
    assert np.isnan(table["valid_loss"].iloc[1])  # the kept (last) row logged no valid_loss


def test_unknown_project_names_the_option_to_change(fake_api):
    with pytest.raises(WandbError, match=r"W&B project ent/nope not found; pass --wandb ENTITY/PROJECT"):
        collect_wandb("ent/nope", api=fake_api)


def test_a_group_or_project_without_optbench_runs_says_what_to_pass(fake_api):
    with pytest.raises(WandbError, match=r"^The group 'sw-9999' of W&B project ent/optbench holds no optbench runs; "
                                         r"pass the sweep id"):
        collect_wandb(PATH, "sw-9999", api=fake_api)
    only_others = FakeApi([FakeRun("notoptbench", "finished", {"lr": 0.1}, {})])
    with pytest.raises(WandbError, match=r"^W&B project ent/optbench holds no optbench runs; pass --wandb"):
        collect_wandb(PATH, api=only_others)


@pytest.mark.parametrize("path", ["a/b/c", "", "a b/c", "/"])
def test_a_malformed_path_fails_before_asking_wandb(path, fake_api):
    with pytest.raises(WandbError, match="is not ENTITY/PROJECT or PROJECT"):
        collect_wandb(path, api=fake_api)
    assert fake_api.queries == []


def test_a_failing_server_is_one_sentence(fake_api):
    fake_api.error = wandb.errors.CommError("HTTP 502: bad gateway")
    with pytest.raises(WandbError, match=r"^Reading the runs of W&B project ent/optbench failed \(HTTP 502"):
        collect_wandb(PATH, api=fake_api)


@pytest.fixture
def no_wandb_login(tmp_path, monkeypatch):
    """No API key anywhere and a W&B server address where nothing listens."""
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("WANDB_SILENT", "true")


def test_the_real_api_without_a_key_fails_fast_naming_the_key(no_wandb_login):
    started = time.perf_counter()
    with pytest.raises(WandbError) as caught:
        collect_wandb(PATH, GROUP, timeout=3)
    assert time.perf_counter() - started < 10
    message = str(caught.value)
    assert message.startswith("No W&B API key is configured") and "WANDB_API_KEY" in message
    assert message.count(". ") == 0 and message.endswith(".")


def test_the_real_api_with_an_unreachable_server_fails_within_the_timeout(no_wandb_login, monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", "0" * 40)
    started = time.perf_counter()
    with pytest.raises(WandbError, match=r"W&B cannot be reached or refused the API key .*WANDB_BASE_URL"):
        collect_wandb(PATH, GROUP, timeout=2)
    assert time.perf_counter() - started < 12


# ----------------------------------------------------------------------------- log_summary


def make_png(path: Path, height: float) -> Path:
    figure = plt.figure(figsize=(2, 1.5), dpi=50)
    figure.gca().plot([0, 1], [0, height])
    figure.savefig(path)
    plt.close(figure)
    return path


@pytest.fixture
def demo_aggregate(demo_sweep, tmp_path) -> SimpleNamespace:
    """The demo sweep's runs and summary with small hand-made best/robustness/speed/targets/scores tables."""
    data = collect_sweep(demo_sweep.sweep_dir, demo_sweep.runs_dir)
    labels = setting_labels(data.runs)
    runs = data.runs.assign(label=data.runs["setting_id"].map(labels))
    quantiles = (0.25, 0.75)
    summary = summary_table(data.runs, data.metrics, labels, quantiles)
    best = pd.DataFrame({"problem": ["quadratic_deep", "digits_mlp"], "optimizer": ["sgd", "sgd"],
                         "setting_id": ["a", "b"], "label": ["sgd lr=0.1", "sgd lr=0.1"],
                         "criterion": "final_valid", "score": [0.02, 0.9], "settings": [3, 2],
                         "optimizer.momentum": [0.0, None], "schedule.warmup": [np.int64(3), "linear"]})
    robustness = pd.DataFrame({"problem": ["quadratic_deep"], "optimizer": ["sgd"], "settings": [3], "scored": [2],
                               "diverged_settings": [1], "best_score": [0.02], "grid_median": [0.5],
                               "grid_q25": [0.1], "grid_q75": [1.0], "near_best": [1 / 3]})
    speed = pd.DataFrame({"problem": ["quadratic_deep", "quadratic_deep"], "optimizer": ["adam", "sgd"],
                          "runs": [3, 9], "seconds_per_epoch_median": [0.5, 0.4], "seconds_per_epoch_q25": [0.4, 0.3],
                          "seconds_per_epoch_q75": [0.6, 0.5], "relative_to_sgd": [1.25, 1.0]})
    targets = pd.DataFrame({"problem": ["quadratic_deep"] * 2, "optimizer": ["sgd", "adam"], "setting_id": ["a", "c"],
                            "label": ["sgd", "adam"], "metric": "valid_loss", "target": [0.1, 0.1], "n": [3, 3],
                            "reached": [3, 0], "steps_to_target_median": [20.0, math.inf],
                            "time_to_target_median": [1.0, math.inf]})
    figures = {"curves": make_png(tmp_path / "curves.png", 1.0), "boxes": make_png(tmp_path / "boxes.png", 2.0)}
    return SimpleNamespace(
        info={"sweep_id": GROUP, "name": "demo", "overrides": ["seed=range(3)"], "path": tmp_path},
        runs=runs, curves=pd.DataFrame(), summary=summary, best=best, robustness=robustness, speed=speed,
        targets=targets, profiles=None, scores=None, quantiles=quantiles,
        primary=primary_metrics(data.runs, data.metrics), figures=figures, files=[], out_dir=tmp_path / "aggregate",
    )


@pytest.fixture
def offline_wandb(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb-dir"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("WANDB_DATA_DIR", str(tmp_path / "data"))


def wandb_records(path: Path) -> list[wandb_internal_pb2.Record]:
    """The records of a ``.wandb`` transaction log (W&B's LevelDB-style log of 32 KiB blocks)."""
    data, block = path.read_bytes(), 32768
    assert data[:7] == b":W&B\xe1\xbe\x00"  # magic, 0xBEE1, version 0
    records, position, pending = [], 7, b""
    while position + 7 <= len(data):
        left = block - position % block
        if left < 7:
            position += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[position:position + 7])
        if length == 0 and kind == 0:
            position += left
            continue
        pending += data[position + 7:position + 7 + length]
        position += 7 + length
        if kind in (1, 4):  # a full record or the last piece of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


def test_log_summary_writes_an_offline_run_with_tables_images_and_headline(demo_aggregate, offline_wandb, tmp_path):
    directory = tmp_path / "aggregate"
    logger = {"mode": "offline", "project": "bench", "entity": None, "tags": ["nightly"], "group": GROUP}
    where = log_summary(demo_aggregate, logger, GROUP, directory)
    wandb.teardown()  # as at process exit: W&B's service may write the .wandb log after run.finish() returns

    folders = list((directory / "wandb").glob("offline-run-*"))
    assert len(folders) == 1 and Path(where) == folders[0]
    files = folders[0] / "files"
    tables = {}
    for path in (files / "media" / "table").rglob("*.table.json"):
        tables[path.name.split("_0_")[0] if "_0_" in path.name else path.name] = json.loads(path.read_text())
    assert set(tables) == {"summary", "best", "robustness", "speed", "targets"}
    for name, logged in tables.items():
        frame = getattr(demo_aggregate, name)
        assert logged["columns"] == [str(c) for c in frame.columns], name
        assert len(logged["data"]) == len(frame), name
    summary = pd.DataFrame(tables["summary"]["data"], columns=tables["summary"]["columns"])
    assert summary["runs"].tolist() == demo_aggregate.summary["runs"].tolist()
    assert summary["setting_id"].tolist() == demo_aggregate.summary["setting_id"].tolist()
    best = dict(zip(tables["best"]["columns"], zip(*tables["best"]["data"], strict=True), strict=True))
    assert best["schedule.warmup"] == ("3", "linear")  # a mixed column logged as text
    assert best["optimizer.momentum"][0] == 0.0 and math.isnan(best["optimizer.momentum"][1])
    targets = dict(zip(tables["targets"]["columns"], zip(*tables["targets"]["data"], strict=True), strict=True))
    assert targets["time_to_target_median"] == (1.0, math.inf)

    images = sorted((files / "media" / "images").rglob("*.png"))
    assert len(images) == 2
    logged_bytes = {p.read_bytes() for p in images}
    assert logged_bytes == {p.read_bytes() for p in demo_aggregate.figures.values()}

    records = wandb_records(next(folders[0].glob("*.wandb")))
    run = next(r.run for r in records if r.WhichOneof("record_type") == "run")
    assert (run.run_group, run.job_type, run.display_name, run.project) == (GROUP, "aggregate", f"{GROUP}-summary",
                                                                          "bench")
    assert list(run.tags) == ["nightly"]
    config = {item.key: json.loads(item.value_json) for item in run.config.update}
    assert config["sweep_id"] == GROUP and config["quantiles"] == [0.25, 0.75]
    assert config["sweep"]["path"] == str(tmp_path) and config["primary"] == demo_aggregate.primary
    # each optimizer's colour and marker, the figures' (analysis.style), in legend order
    assert list(config["styles"]) == ["sgd", "adam"]
    assert {name: (s["colour"], s["marker"]) for name, s in config["styles"].items()} == {
        name: (style_of(name).colour, style_of(name).marker) for name in ("sgd", "adam")}
    written = {}
    for record in records:
        if record.WhichOneof("record_type") == "summary":
            written.update({item.key: json.loads(item.value_json) for item in record.summary.update if item.key})
    assert {k: written[k] for k in ("runs", "settings", "problems", "optimizers")} == {
        "runs": 22, "settings": 7, "problems": 2, "optimizers": 2}
    assert {k: written[f"runs_{k}"] for k in ("completed", "diverged", "failed", "running", "pending", "timeout")} == {
        "completed": 18, "diverged": 1, "failed": 1, "running": 1, "pending": 1, "timeout": 0}


def test_log_summary_does_nothing_when_wandb_is_disabled(demo_aggregate, tmp_path):
    assert log_summary(demo_aggregate, {"mode": "disabled"}, GROUP, tmp_path / "out") == ""
    assert not (tmp_path / "out").exists()
    with pytest.raises(WandbError, match=r"logger.mode must be one of offline, online, disabled"):
        log_summary(demo_aggregate, {"mode": "auto"}, GROUP, tmp_path / "out")


def test_headline_counts_every_state(demo_aggregate):
    numbers = headline(demo_aggregate)
    assert numbers["runs"] == 22 and numbers["settings"] == 7
    assert sum(v for k, v in numbers.items() if k.startswith("runs_")) == 22
    assert numbers["runs_cancelled"] == 0 and numbers["runs_submitted"] == 0


def test_table_frame_gives_each_column_one_type():
    frame = pd.DataFrame({"n": [1, 2, 3], "x": [0.5, np.nan, np.inf], "ok": [True, False, True],
                          "ints": pd.Series([np.int64(1), None, 2.5], dtype=object),
                          "mixed": pd.Series([1, "a", None], dtype=object),
                          "label": pd.Categorical(["a", "b", "a"]), 7: ["p", "q", "r"]})
    out = table_frame(frame)
    assert list(out.columns) == ["n", "x", "ok", "ints", "mixed", "label", "7"]
    assert out["n"].tolist() == [1, 2, 3] and out["ok"].tolist() == [True, False, True]
    assert out["ints"].dtype == np.float64 and out["ints"].tolist()[::2] == [1.0, 2.5] and np.isnan(out["ints"][1])
    assert out["mixed"].tolist() == ["1", "a", None]
    assert out["label"].tolist() == ["a", "b", "a"]
    wandb.Table(dataframe=out)  # accepted without a type error
