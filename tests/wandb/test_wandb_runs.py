"""A job's W&B run, read back from its offline record log with wandb's own reader.

W&B is the real library in offline mode; ``wandb leet inspect --json`` (W&B's
Go reader) is the reference for what a log holds.
"""

from __future__ import annotations

import json

import pytest
import wandb
import yaml
from wandb_support import (
    Killed,
    history,
    kill_after_eval,
    missing_from,
    of_type,
    offline_logs,
    records,
    summary,
)

from jobs.entry import run
from jobs.run_folder import RunFolder
from jobs.sinks import WandbSink
from jobs.spec import flatten, setting_id
from jobs.wandb_records import last_history_step, read_records
from orchestrator.store import ResultsStore
from orchestrator.sweep import expand

pytestmark = pytest.mark.integration  # runs real jobs


def test_offline_run_holds_what_the_job_logged(offline_sweep):
    store = ResultsStore(offline_sweep)
    (sweep_dir,) = store.sweeps_dir.iterdir()
    entries = store.sweep_runs(sweep_dir)
    assert len(entries) == 2
    for entry in entries:
        folder = store.run_folder(entry["run_id"])
        (log,) = offline_logs(folder.root)
        log_records = records(log)
        (run_record,) = of_type(log_records, "run")
        assert run_record["run_id"] == run_record["display_name"] == folder.run_id
        assert run_record["run_group"] == sweep_dir.name
        assert run_record["job_type"] == "digits_mlp"
        assert set(run_record["tags"]) == {"digits_mlp", "sgd", "nightly"}

        config = run_record["config"]["update"]
        spec = yaml.safe_load(folder.path("spec.yaml").read_text())
        assert config["optimizer.lr"] == spec["optimizer"]["lr"] and config["train.batch_size"] == 64
        assert {k: config[k] for k in flatten(spec)} == flatten(spec), "every hyperparameter as a dotted key"
        assert (config["sweep_id"], config["run_id"], config["setting_id"]) == (
            sweep_dir.name, folder.run_id, setting_id(spec))

        rows = history(log_records)
        metrics = folder.metrics()
        assert [m["epoch"] for m in metrics] == [0, 1, 2]
        for record in metrics:
            assert not missing_from(rows, record), (record["epoch"], missing_from(rows, record))
        steps = [json.loads(line) for line in folder.path("steps.jsonl").read_text().splitlines()]
        assert steps and all(not missing_from(rows, s, prefix="step/") for s in steps)
        assert sorted(rows) == sorted({m["step"] for m in metrics} | {s["step"] for s in steps})
        assert summary(log_records)["state"] == "completed" and summary(log_records)["attempt"] == 1
        assert last_history_step([log]) == max(rows), "the job's own reader agrees with wandb's"
        assert RunFolder(folder.root).status()["wandb"]["dir"] == str(log.parent)


def test_a_resumed_run_continues_the_same_wandb_run_without_logging_a_step_twice(resumed_sweep):
    """Killed once epoch 2's metrics line is on disk, after W&B got steps 20-32; resumed from step 18."""
    store = ResultsStore(resumed_sweep)
    (sweep_dir,) = store.sweeps_dir.iterdir()
    (entry,) = store.sweep_runs(sweep_dir)
    run_dir = store.run_folder(entry["run_id"]).root
    folder = RunFolder(run_dir)
    assert folder.status()["resumed_from_epoch"] == 1 and folder.state == "completed"
    first, second = (records(log) for log in offline_logs(run_dir))
    assert [r["run_id"] for r in of_type(first + second, "run")] == [entry["run_id"]] * 2
    assert {r["run_group"] for r in of_type(first + second, "run")} == {sweep_dir.name}
    assert {(r["config"]["update"]["sweep_id"], r["config"]["update"]["sweep_name"])
            for r in of_type(first + second, "run")} == {(sweep_dir.name, "adhoc")}
    assert (summary(second)["attempt"], summary(second)["resumed_from_epoch"]) == (2, 1)

    before, after = history(first), history(second)
    assert max(before) < min(after), f"steps {sorted(set(before) & set(after))} logged by both attempts"
    assert max(before) == 32 and min(after) == 36, "the killed attempt's complete rows stay, the rest is relogged"
    rows = {**before, **after}
    for record in folder.metrics():
        assert not missing_from(rows, record), (record["epoch"], missing_from(rows, record))
    steps = [json.loads(line) for line in folder.path("steps.jsonl").read_text().splitlines()]
    assert sorted(rows) == sorted({m["step"] for m in folder.metrics()} | {s["step"] for s in steps})
    assert last_history_step(offline_logs(run_dir)) == 54


def test_an_online_run_resumed_after_a_kill_holds_every_evaluation_once(tmp_path, monkeypatch, fake_wandb):
    """Online, W&B resumes the run after the last step its server holds and drops rows at steps before it.

    The server is a fake (a mock, see fake_wandb.py) that answers as W&B's does. The killed attempt's last
    row (step 36, which lacked epoch 2's evaluation) must not reach W&B, or the evaluation would be lost.
    """
    (only,) = expand(["problem=digits_mlp", "problem.hidden=8", "train.epochs=3", "train.log_every=4"]).runs
    run_dir = tmp_path / "runs" / only.run_id
    runtime = {"logger": {"mode": "online", "project": "optbench", "group": "sw-online", "tags": []}}
    kill_after_eval(monkeypatch, epoch=2)
    with pytest.raises(Killed):
        run(only.spec, run_dir, runtime)
    wandb.teardown()  # as at the end of the killed job's process
    assert [row["_step"] for row in fake_wandb.runs[only.run_id].history][-1] == 32
    run(only.spec, run_dir, runtime)
    wandb.teardown()

    uploaded = fake_wandb.runs[only.run_id]
    steps = [row["_step"] for row in uploaded.history]
    assert steps == sorted(set(steps)), "each step once, in order"
    rows = {row["_step"]: row for row in uploaded.history}
    for record in RunFolder(run_dir).metrics():
        assert not missing_from(rows, record), (record["epoch"], missing_from(rows, record))
    assert (uploaded.summary["attempt"], uploaded.summary["resumed_from_epoch"]) == (2, 1)


def test_a_torn_record_log_is_read_up_to_its_last_whole_record(offline_sweep, tmp_path):
    (log,) = offline_logs(next((offline_sweep / "runs").iterdir()))
    whole = list(read_records(log))
    torn = tmp_path / log.name
    torn.write_bytes(log.read_bytes()[:-5])  # a job killed while W&B wrote its exit record
    assert [r.num for r in read_records(torn)] == [r.num for r in whole[:-1]]
    assert whole[-1].WhichOneof("record_type") == "exit"
    other = tmp_path / "other.wandb"
    other.write_text('{"epoch": 0}\n')
    with pytest.raises(ValueError, match="not a W&B record log"):
        list(read_records(other))


def test_the_jobs_reader_agrees_with_wandbs_on_a_log_of_many_blocks(tmp_path):
    """Records of every size, one of them larger than a 32 KiB block, so chunks straddle block boundaries."""
    run = wandb.init(project="optbench", id="many", dir=tmp_path, mode="offline")
    for step in range(1500):
        run.log({"x": step, "pad": "y" * (step % 97)}, step=step)
    run.log({"big": "z" * 70_000}, step=1500)
    run.finish()
    wandb.teardown()
    (log,) = tmp_path.glob("wandb/offline-run-*/run-many.wandb")
    assert log.stat().st_size > 5 * 32768
    assert [r.num for r in read_records(log)] == [r["num"] for r in records(log)]
    assert last_history_step([log]) == 1500 and sorted(history(records(log))) == list(range(1501))


def test_config_read_back_from_wandb_leaves_out_the_run_keys():
    from analysis.wandb_source import spec_from_config

    spec = {"optimizer": {"name": "sgd", "lr": 0.1}, "seed": 3}
    config = {**flatten(spec), "sweep_id": "sw", "run_id": "r", "setting_id": setting_id(spec), "sweep_name": "n"}
    assert set(WandbSink.RUN_KEYS) <= set(config)
    assert spec_from_config(config) == spec


def test_online_mode_without_an_api_key_is_one_sentence_and_writes_nothing(optbench, results):
    status, out, err = optbench("launch", "problem=digits_mlp", "train.epochs=1", "logger=online",
                                "--results", results)
    assert status == 2
    assert " ".join(err.split()) == ("optbench: error: W&B online mode needs an API key; set WANDB_API_KEY or "
                                     "run 'wandb login', or use logger=offline.")
    assert "Traceback" not in err and not results.exists()


def test_the_logger_settings_carry_the_sweep_name_when_given():
    from orchestrator.wandb_mode import resolve

    assert resolve({"mode": "offline"}, "sw-1", sweep_name="smoke") == {"mode": "offline", "group": "sw-1",
                                                                       "sweep_name": "smoke"}
    assert "sweep_name" not in resolve({"mode": "offline"}, "sw-1")
