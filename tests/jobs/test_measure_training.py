"""Measurements inside training runs: specs and run ids, the config group, untouched training, resume."""

from __future__ import annotations

import contextlib
import json
from types import SimpleNamespace

import pytest
from jobs_support import Killed, Killer, numbers, spec_for

from jobs import checkpoint
from jobs.distributed import World
from jobs.entry import run
from jobs.measure import take as measure_take
from jobs.run_folder import MEASUREMENTS, RunFolder
from jobs.schema import SpecError
from jobs.sinks import FanOut, RunFolderSink, StatusSink, WandbSink
from jobs.spec import REQUIRED_KEYS, canonical_json, run_id, validate_spec
from jobs.train import Trainer
from orchestrator.config import ConfigTree
from orchestrator.errors import UserError
from orchestrator.sweep import expand

pytestmark = pytest.mark.slow  # trains many runs in-process

DIGITS = ("problem=digits_mlp", "problem.hidden=16", "problem.dropout=0.3", "train.log_every=1", "measure.examples=64")


def measurements(run_dir) -> list[dict]:
    """The measurement records without ``seconds``, the one field that depends on the machine."""
    return [{k: v for k, v in m.items() if k != "seconds"} for m in
            map(json.loads, (run_dir / MEASUREMENTS).read_text().splitlines())]


# ----------------------------------------------------------------------------- spec, run id, config group


def test_a_spec_without_measure_keeps_its_run_id():
    config = ConfigTree().compose(("problem=digits_cnn",))
    assert "measure" not in config  # `- measure: null` adds nothing to the composed config
    spec = validate_spec(config)
    assert "measure" not in spec
    before_measurements = {key: spec[key] for key in REQUIRED_KEYS}  # what a spec held before measure existed
    assert canonical_json(spec) == canonical_json(before_measurements)
    assert run_id(spec) == run_id(before_measurements)
    assert validate_spec({**config, "measure": None}) == spec


def test_the_measure_group_composes_and_sweeps():
    (one,) = expand(["measure=hessian_spectrum", "problem=digits_cnn"]).runs
    assert one.spec["measure"] == {"name": "hessian_spectrum", "epochs": None, "examples": 256, "top_k": 3,
                                   "iterations": 20}
    (plain,) = expand(["problem=digits_cnn"]).runs
    assert one.run_id != plain.run_id and {k: v for k, v in one.spec.items() if k != "measure"} == plain.spec
    swept = expand(["measure=hessian_spectrum,taylor", "problem=digits_cnn"])
    assert [r.spec["measure"]["name"] for r in swept.runs] == ["hessian_spectrum", "taylor"]
    for name in ConfigTree().options("measure"):
        (each,) = expand([f"measure={name}", "problem=digits_cnn"]).runs
        assert each.spec["measure"]["name"] == name
    common = expand(["measure=hessian_spectrum,taylor", "measure.examples=64", "problem=digits_cnn"])
    assert [(r.spec["measure"]["name"], r.spec["measure"]["examples"]) for r in common.runs] == [
        ("hessian_spectrum", 64), ("taylor", 64)], "a key every swept option has can be set once for all"


def test_measure_epochs_are_canonical_and_checked_against_the_run_length():
    (listed,) = expand(["measure=taylor", "measure.epochs=[3,0,3]", "train.epochs=3"]).runs
    assert listed.spec["measure"]["epochs"] == [0, 3]
    with pytest.raises(UserError, match=r"measure\.epochs lists epoch 5, but the run trains 3 epochs"):
        expand(["measure=taylor", "measure.epochs=[0,5]", "train.epochs=3"])
    with pytest.raises(SpecError, match=r"measure\.epochs\[0\] must be >= 0 \(got -1\)"):
        validate_spec({**listed.spec, "measure": {**listed.spec["measure"], "epochs": [-1]}})
    with pytest.raises(SpecError, match=r"measure\.top_k is not a parameter of measure 'taylor'"):
        validate_spec({**listed.spec, "measure": {**listed.spec["measure"], "top_k": 3}})


def test_a_measured_run_over_several_ranks_is_refused_at_start():
    spec = spec_for(*DIGITS, "train.epochs=1", "measure=hessian_spectrum")
    with pytest.raises(ValueError, match="Measurements .* run in one process"):
        Trainer(spec, RunFolderSink, World(rank=0, size=2))


# ----------------------------------------------------------------------------- training is untouched


@pytest.mark.parametrize("measure, optimizer", [
    ("hessian_spectrum", "optimizer=momentum"),
    ("taylor", "optimizer=adam"),
    ("update_line", "optimizer=adam"),
    ("update_line", "optimizer=pls"),  # its step draws fresh batches from the trainer
    ("loss_surface", "optimizer=momentum"),
])
def test_a_measured_run_logs_the_metrics_and_steps_of_the_unmeasured_run(tmp_path, measure, optimizer):
    plain = spec_for(*DIGITS[:-1], "train.epochs=2", optimizer)
    measured = spec_for(*DIGITS, "train.epochs=2", optimizer, f"measure={measure}", "measure.epochs=[0,2]",
                        *(["measure.resolution=5"] if measure == "loss_surface" else []))
    summary, measured_summary = run(plain, tmp_path / "plain"), run(measured, tmp_path / "measured")
    assert numbers(tmp_path / "measured") == numbers(tmp_path / "plain")
    assert (tmp_path / "measured" / "steps.jsonl").read_bytes() == (tmp_path / "plain" / "steps.jsonl").read_bytes()
    for key in ("steps", "best", "forward_passes", "backward_passes"):
        assert measured_summary[key] == summary[key]
    records = measurements(tmp_path / "measured")
    assert [(r["epoch"], r["measurement"], r["examples"]) for r in records] == [(e, measure, 64) for e in (0, 2)]
    assert not (tmp_path / "plain" / MEASUREMENTS).exists()


def test_without_restoring_the_state_the_measured_run_would_differ(tmp_path, monkeypatch):
    """The test above can fail: the measurement reseeds the global random stream, which dropout draws from."""
    spec = spec_for(*DIGITS, "train.epochs=2", "optimizer=adam", "measure=taylor", "measure.epochs=[1]")
    run(spec, tmp_path / "restored")
    monkeypatch.setattr(measure_take, "untouched", lambda model, optimizer: contextlib.nullcontext())
    run(spec, tmp_path / "unrestored")
    assert numbers(tmp_path / "unrestored")[:2] == numbers(tmp_path / "restored")[:2]
    assert numbers(tmp_path / "unrestored")[2:] != numbers(tmp_path / "restored")[2:]


def test_null_epochs_measure_at_every_evaluation(tmp_path):
    spec = spec_for(*DIGITS, "train.epochs=3", "train.eval_every=2", "measure=hessian_spectrum",
                    "measure.iterations=2")
    run(spec, tmp_path / "run")
    assert [r["epoch"] for r in measurements(tmp_path / "run")] == [m["epoch"] for m in numbers(tmp_path / "run")]
    assert [r["epoch"] for r in measurements(tmp_path / "run")] == [0, 2, 3]
    scalars = measurements(tmp_path / "run")[0]["scalars"]
    assert {"eigenvalue_1", "eigenvalue_2", "eigenvalue_3", "residual_1", "loss"} <= set(scalars)


# ----------------------------------------------------------------------------- resume


def test_a_measured_run_killed_and_resumed_measures_each_boundary_once(tmp_path, monkeypatch):
    spec = spec_for(*DIGITS, "train.epochs=4", "optimizer=adam", "measure=update_line", "measure.points=8")
    run(spec, tmp_path / "unbroken")

    # After epoch 1's measurement is on disk (before its checkpoint), then after epoch 3's metrics line.
    killer = Killer(monkeypatch, ("measure", 1), ("eval", 3))
    log_measurement = RunFolderSink.log_measurement

    def measure_then_maybe_die(sink, record):
        log_measurement(sink, record)
        killer._maybe_die("measure", record["epoch"])

    monkeypatch.setattr(RunFolderSink, "log_measurement", measure_then_maybe_die)
    broken = tmp_path / "broken"
    resumed_from = []
    while killer.points:
        with pytest.raises(Killed):
            run(spec, broken)
        resumed_from.append(checkpoint.load(RunFolder(broken))["epoch"])
    run(spec, broken)

    assert resumed_from == [0, 2]
    assert [r["epoch"] for r in measurements(broken)] == [0, 1, 2, 3, 4]
    assert measurements(broken) == measurements(tmp_path / "unbroken")
    assert numbers(broken) == numbers(tmp_path / "unbroken")


def test_sinks_log_measurements_to_the_folder_and_their_scalars_to_wandb(tmp_path):
    record = {"epoch": 2, "step": 36, "measurement": "taylor", "examples": 64, "seconds": 0.1,
              "scalars": {"slope_linear": 2.0, "loss": 1.5}, "arrays": {"distances": [0.1, 0.01]}}
    logged = []
    wandb = object.__new__(WandbSink)  # without wandb.init: only its run's log is used
    wandb.run = SimpleNamespace(log=lambda data, step: logged.append((data, step)))
    folder = RunFolder(tmp_path)
    folder.set_state("running")
    sinks = FanOut(RunFolderSink(tmp_path), StatusSink(folder, 4), wandb)
    sinks.log_measurement(record)
    sinks.flush()  # W&B gets a step's row once the step is complete (here: at the checkpoint)
    assert logged == [({"epoch": 2, "measure/taylor/slope_linear": 2.0, "measure/taylor/loss": 1.5}, 36)]
    assert [json.loads(line) for line in (tmp_path / MEASUREMENTS).read_text().splitlines()] == [record]
