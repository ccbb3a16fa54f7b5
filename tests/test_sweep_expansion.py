"""Sweep expansion: Hydra's override grammar and sweep files → validated, deduplicated runs."""

from __future__ import annotations

import math

import pytest

from jobs.spec import run_id, validate_spec
from orchestrator.errors import UserError
from orchestrator.sweep import expand, logspace


def test_command_line_grid_is_the_cartesian_product_in_order():
    sweep = expand(["optimizer=sgd,adam", "seed=range(3)"])
    pairs = [(r.spec["optimizer"]["name"], r.spec["seed"]) for r in sweep.runs]
    assert pairs == [("sgd", 0), ("sgd", 1), ("sgd", 2), ("adam", 0), ("adam", 1), ("adam", 2)]
    assert len({r.run_id for r in sweep.runs}) == 6
    # seeds of one optimizer share a setting; optimizers do not
    assert len({r.setting_id for r in sweep.runs}) == 2


def test_smoke_sweep_has_18_runs_over_3_optimizers_2_problems_3_seeds():
    sweep = expand(["sweep=smoke"])
    assert sweep.name == "smoke"
    combos = {(r.spec["problem"]["name"], r.spec["optimizer"]["name"], r.spec["seed"]) for r in sweep.runs}
    assert len(sweep.runs) == len(combos) == 18
    assert {c[1] for c in combos} == {"sgd", "adam", "pal"}
    assert {c[0] for c in combos} == {"quadratic_deep", "digits_mlp"}


def test_problem_file_sets_its_default_training_length():
    digits = expand(["problem=digits_mlp"]).runs[0].spec
    quadratic = expand(["problem=quadratic_deep"]).runs[0].spec
    assert (digits["train"]["batch_size"], digits["train"]["epochs"]) == (64, 20)
    assert (quadratic["train"]["batch_size"], quadratic["train"]["epochs"]) == (128, 100)


def test_interpolations_in_the_spec_resolve_per_run_and_the_data_folder_once(monkeypatch, tmp_path):
    monkeypatch.setenv("OPTBENCH_DATA", str(tmp_path))
    sweep = expand(["optimizer=adamw", "optimizer.lr=0.1,0.01", "optimizer.weight_decay=${optimizer.lr}"])
    assert [(r.spec["optimizer"]["lr"], r.spec["optimizer"]["weight_decay"]) for r in sweep.runs] == [
        (0.1, 0.1), (0.01, 0.01)]
    assert sweep.data_dir == str(tmp_path)


def test_logspace_is_deepobs_grid():
    values = logspace(1e-5, 1e2, 36).list
    assert len(values) == 36
    assert values[0] == pytest.approx(1e-5) and values[-1] == pytest.approx(1e2)
    ratios = [b / a for a, b in zip(values, values[1:], strict=False)]
    assert all(r == pytest.approx(10 ** (7 / 35), rel=1e-9) for r in ratios)


def test_sweep_file_with_log_grid_expands_to_36_learning_rates():
    sweep = expand(["sweep=deepobs_lr_grid"])
    lrs = sorted(r.spec["optimizer"]["lr"] for r in sweep.runs)
    assert len(lrs) == 36
    assert math.isclose(lrs[0], 1e-5) and math.isclose(lrs[-1], 100.0)


def test_log_grid_on_the_command_line_and_overriding_a_sweep_file_key():
    sweep = expand(["sweep=deepobs_lr_grid", "optimizer.lr=logspace(0.001,0.1,3)", "seed=1,2"])
    assert sorted({r.spec["optimizer"]["lr"] for r in sweep.runs}) == pytest.approx([0.001, 0.01, 0.1])
    assert sorted({r.spec["seed"] for r in sweep.runs}) == [1, 2]
    assert len(sweep.runs) == 6


def test_fixed_overrides_apply_to_every_run():
    sweep = expand(["optimizer=momentum", "optimizer.lr=0.05", "train.epochs=3", "seed=0,1"])
    assert all(r.spec["optimizer"]["lr"] == 0.05 and r.spec["train"]["epochs"] == 3 for r in sweep.runs)
    assert all(r.spec["optimizer"]["momentum"] == 0.9 for r in sweep.runs)


def test_run_id_is_a_content_hash_independent_of_number_spelling():
    one = expand(["optimizer.lr=1"]).runs[0]
    same = expand(["optimizer.lr=1.0"]).runs[0]
    assert one.run_id == same.run_id == run_id(validate_spec(one.spec))
    assert one.spec["optimizer"]["lr"] == 1.0 and isinstance(one.spec["optimizer"]["lr"], float)
    assert expand(["optimizer.lr=0.5"]).runs[0].run_id != one.run_id


def test_equal_runs_from_different_overrides_are_one_run():
    sweep = expand(["optimizer.lr=0.1,1e-1,0.10"])
    assert len(sweep.runs) == 1


def test_same_grid_is_the_same_sweep_id():
    assert expand(["seed=0,1"]).sweep_id == expand(["seed=1,0"]).sweep_id
    assert expand(["seed=0,1"]).sweep_id != expand(["seed=0,2"]).sweep_id


def test_launcher_cannot_be_swept():
    with pytest.raises(UserError, match="cannot be swept"):
        expand(["launcher=local,local"])


def test_value_override_of_a_missing_key_names_it():
    with pytest.raises(UserError, match="optimizer.momentum"):
        expand(["optimizer=adam", "optimizer.momentum=0.9,0.5"])
