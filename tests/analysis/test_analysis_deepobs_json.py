"""DeepOBS result JSONs: export in DeepOBS's layout, import of DeepOBS 1.1 / 1.2 files, round trip."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.collect import collect_sweep
from analysis.deepobs_json import (
    OPTBENCH_KEY,
    deepobs_optimizer_name,
    export_deepobs,
    float_text,
    import_deepobs,
    optbench_optimizer_name,
    read_deepobs_result,
    setting_folder_name,
)

FILE_NAME = re.compile(r"random_seed__(\d+)__\d{4}-\d{2}-\d{2}-\d{2}-\d{2}-\d{2}\.json")
#: Keys DeepOBS 1.2's analyzer checks in every result (deepobs/analyzer/shared_utils.py).
CHECKED_KEYS = {"num_epochs", "batch_size", "testproblem", "random_seed", "optimizer_name", "optimizer_hyperparams",
                "train_losses", "valid_losses", "test_losses"}
#: Read by DeepOBS 1.2's aggregate_runs besides the metrics.
AGGREGATED_KEYS = {"training_params"}
SHARED = ("step", "time", "train_loss", "valid_loss", "test_loss", "train_accuracy", "valid_accuracy",
          "test_accuracy", "lr", "forward_passes", "backward_passes")


def _exported(demo_sweep, out: Path):
    data = collect_sweep(demo_sweep.sweep_dir, demo_sweep.runs_dir)
    return data, export_deepobs(data.runs, data.metrics, out)


def _write(path: Path, data: dict, indent: int | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=indent))  # Python's json, as DeepOBS: NaN stays NaN
    return path


# ----------------------------------------------------------------------------- names


def test_float_text_and_folder_names_match_published_deepobs_folders():
    assert [float_text(x) for x in (0.1, 0.99, 100.0, 1e-8, 1.5848931925e-4, 0.0, 2.5118864315e-02)] == [
        "1.e-01", "9.9e-01", "1.e+02", "1.e-08", "1.5848931925e-04", "0.e+00", "2.5118864315e-02"]
    # folder names of the published baselines (1.2 format: learning_rate is an optimizer hyperparameter)
    assert setting_folder_name(100, 128, None, {"learning_rate": 0.1}, {}) == \
        "num_epochs__100__batch_size__128__learning_rate__1.e-01"
    assert setting_folder_name(350, 256, None, {"momentum": 0.99, "use_nesterov": False, "lr": 0.01}, {}) == \
        "num_epochs__350__batch_size__256__lr__1.e-02__momentum__9.9e-01__use_nesterov__False"
    assert setting_folder_name(10, 64, 0.002, {"lr": 0.5}, {"lr_sched_epochs": [5], "skip": None}) == \
        "num_epochs__10__batch_size__64__weight_decay__2.e-03__lr__5.e-01__lr_sched_epochs__[5]"


def test_optimizer_names_map_both_ways():
    assert [optbench_optimizer_name(n) for n in ("MomentumOptimizer", "GradientDescentOptimizer", "AdamOptimizer",
                                                 "SGD", "Adam", "RMSprop", "MyFancyOpt")] == [
        "momentum", "sgd", "adam", "sgd", "adam", "rmsprop", "myfancyopt"]
    for name in ("sgd", "adam", "adamw", "adagrad", "rmsprop", "pal", "gols_i"):
        assert optbench_optimizer_name(deepobs_optimizer_name(name)) == name
    assert deepobs_optimizer_name("sgd") == "SGD" and deepobs_optimizer_name("pal") == "pal"


# ----------------------------------------------------------------------------- export


def test_export_writes_deepobs_layout_for_completed_and_diverged_runs_only(demo_sweep, tmp_path):
    data, paths = _exported(demo_sweep, tmp_path / "deepobs")
    runs = data.runs.set_index("run_id")
    assert len(paths) == 19  # 18 completed + 1 diverged; failed, running and pending runs have no result
    assert len(set(paths)) == 19
    for path in paths:
        problem, optimizer, setting, name = path.relative_to(tmp_path / "deepobs").parts
        result = json.loads(path.read_text())
        run = runs.loc[result[OPTBENCH_KEY]["run_id"]]
        assert run["state"] in ("completed", "diverged")
        assert problem == result["testproblem"] == run["problem"]
        assert optimizer == result["optimizer_name"] == {"sgd": "SGD", "adam": "Adam"}[run["optimizer"]]
        assert FILE_NAME.fullmatch(name) and int(FILE_NAME.fullmatch(name)[1]) == run["seed"]
        assert CHECKED_KEYS | AGGREGATED_KEYS <= set(result)
        assert result["num_epochs"] == 3 and result["batch_size"] == 128 and result["weight_decay"] is None
        for key in ("train_losses", "valid_losses", "test_losses"):
            assert len(result[key]) == result["num_epochs"] + 1
        has_accuracy = run["problem"] == "digits_mlp"
        assert ("test_accuracies" in result) == ("train_accuracies" in result) == has_accuracy
        expected = {"lr": run["optimizer.lr"]}
        expected.update({"momentum": 0.0} if run["optimizer"] == "sgd" else {"beta1": 0.9})
        assert result["optimizer_hyperparams"] == expected
        assert result["learning_rate"] == run["optimizer.lr"]
        assert result["training_params"] == {}  # nothing besides the optimizer varies within a problem
        assert setting == setting_folder_name(3, 128, None, expected, {})
    sgd = next(p for p in paths if "__lr__1.e-01__momentum__0.e+00" in str(p))
    assert sgd.parent.name == "num_epochs__3__batch_size__128__lr__1.e-01__momentum__0.e+00"


def test_diverged_run_is_written_as_deepobs_writes_an_aborted_run(demo_sweep, tmp_path):
    # Changed with the export: this test asserted the old export, which kept the diverged point's NaN and
    # Infinity in the lists where DeepOBS's abort routine writes its padding.
    data, paths = _exported(demo_sweep, tmp_path / "deepobs")
    diverged = demo_sweep.entries[18]["run_id"]
    path = next(p for p in paths if json.loads(p.read_text())[OPTBENCH_KEY]["run_id"] == diverged)
    result = json.loads(path.read_text())
    # The run (curve(3, lr=10.0)) evaluated epochs 0 and 1, and epoch 2's losses are NaN, NaN and inf. DeepOBS's
    # runner evaluates at the start of epoch e and, when epoch e's last minibatch loss is NaN/inf, calls
    # _abort_routine, which appends entry 0 of every list num_epochs - e times: here e = 1 (the parameters
    # that gave epoch 2's NaN came out of epoch 1), num_epochs = 3, so entries 0 and 1 as measured, then two
    # copies of entry 0: 4 = num_epochs + 1 entries.
    loss0, loss1 = 2.0 * math.exp(-0.5 * 0) + 0.01, 2.0 * math.exp(-0.5 * 1) + 0.01
    assert result["train_losses"] == [loss0, loss1, loss0, loss0]
    assert result["valid_losses"] == [1.1 * loss0, 1.1 * loss1, 1.1 * loss0, 1.1 * loss0]
    assert result["test_losses"] == [1.2 * loss0, 1.2 * loss1, 1.2 * loss0, 1.2 * loss0]
    assert "train_accuracies" not in result and result["minibatch_train_losses"] == []
    lists = json.dumps({k: v for k, v in result.items() if k != OPTBENCH_KEY})
    assert "NaN" not in lists and "Infinity" not in lists
    # What the padding stands in for stays in optbench's own entry, which DeepOBS ignores.
    own = result[OPTBENCH_KEY]
    assert own["points"] == 3 and own["state"] == "diverged"
    assert set(own["replaced"]) == {"train_loss", "valid_loss", "test_loss"}
    assert math.isnan(own["replaced"]["valid_loss"][0]) and own["replaced"]["test_loss"] == [math.inf]
    # DeepOBS's analyzer averages a setting's lists element-wise: finite, the abort ending at epoch 0's value.
    assert np.isfinite(np.mean([result["valid_losses"]], axis=0)).all()


def test_a_run_that_diverged_inside_an_epoch_is_padded_after_its_last_evaluation(builder, tmp_path):
    from analysis_factory import curve, make_spec

    records = curve(2)  # evaluated at epochs 0 and 1 (all finite), then a NaN minibatch loss in epoch 1
    builder.add(make_spec(seed=0), "diverged", records)
    builder.write()
    data = collect_sweep(builder.sweep_dir, builder.runs_dir)
    (path,) = export_deepobs(data.runs, data.metrics, tmp_path / "out")
    result = json.loads(path.read_text())
    # e = 1, num_epochs = 3: entries 0 and 1, then num_epochs - e = 2 copies of entry 0
    loss0, loss1 = records[0]["valid_loss"], records[1]["valid_loss"]
    assert result["valid_losses"] == [loss0, loss1, loss0, loss0]
    assert result[OPTBENCH_KEY]["points"] == 2 and "replaced" not in result[OPTBENCH_KEY]


def test_import_of_an_export_keeps_a_diverged_run_diverged(demo_sweep, tmp_path):
    data, paths = _exported(demo_sweep, tmp_path / "deepobs")
    diverged = demo_sweep.entries[18]["run_id"]
    back = import_deepobs(tmp_path / "deepobs").runs.set_index("run_id")
    assert back.loc[diverged, "state"] == "diverged" and back.loc[diverged, "points"] == 3
    # Read as DeepOBS's own file (without optbench's entry), the abort padding still marks it diverged.
    path = next(p for p in paths if json.loads(p.read_text())[OPTBENCH_KEY]["run_id"] == diverged)
    plain = {k: v for k, v in json.loads(path.read_text()).items() if k != OPTBENCH_KEY}
    run = read_deepobs_result(_write(tmp_path / "plain" / path.name, plain, indent=4))
    assert run.state == "diverged" and run.points == 2
    assert run.curves["valid_loss"].tolist() == plain["valid_losses"][:2]


def test_export_skips_runs_not_evaluated_every_epoch_and_overwrites_on_a_second_export(builder, tmp_path, caplog):
    from analysis_factory import curve, make_spec

    builder.add(make_spec(seed=0), "completed", curve(4))
    sparse = [r for r in curve(5) if r["epoch"] % 2 == 0]  # eval_every 2
    builder.add(make_spec(seed=1, train={"epochs": 4, "batch_size": 128, "eval_every": 2, "log_every": 0,
                                         "clip_grad_norm": None}), "completed", sparse)
    builder.write()
    data = collect_sweep(builder.sweep_dir, builder.runs_dir)
    with caplog.at_level("WARNING"):
        first = export_deepobs(data.runs, data.metrics, tmp_path / "out")
    assert len(first) == 1 and "every epoch" in caplog.text and builder.entries[1]["run_id"] in caplog.text
    # train.eval_every varies within the problem, so it is part of the setting folder
    assert json.loads(first[0].read_text())["training_params"] == {"train.eval_every": 1}
    assert first[0].parent.name.endswith("__train.eval_every__1")
    second = export_deepobs(data.runs, data.metrics, tmp_path / "out")
    assert second == first
    assert len(list((tmp_path / "out").rglob("*.json"))) == 1


# ----------------------------------------------------------------------------- round trip


def test_round_trip_keeps_identity_values_and_nan(demo_sweep, tmp_path):
    data, paths = _exported(demo_sweep, tmp_path / "deepobs")
    back = import_deepobs(tmp_path / "deepobs")
    exported = data.runs[data.runs["state"].isin(["completed", "diverged"])]
    assert sorted(back.runs["run_id"]) == sorted(exported["run_id"])
    assert back.info == {"sweep_id": "deepobs-deepobs", "name": "deepobs", "source": "deepobs",
                         "path": str(tmp_path / "deepobs"), "runs": 19, "skipped": 0}
    assert back.fingerprint["files"] == 19
    original = exported.set_index("run_id")
    imported = back.runs.set_index("run_id").loc[original.index]
    assert list(back.runs.columns) == list(data.runs.columns)
    for column in data.runs.columns.drop("run_id"):
        pd.testing.assert_series_equal(imported[column], original[column], check_dtype=False, obj=column)
    # metrics: same dtypes, same values per run and epoch, NaN and inf of the diverged run kept
    assert isinstance(back.metrics["run_id"].dtype, pd.CategoricalDtype)
    assert isinstance(back.metrics["setting_id"].dtype, pd.CategoricalDtype)
    assert back.metrics["epoch"].dtype == np.int64
    assert list(back.metrics.columns) == list(data.metrics.columns)
    keys = ["run_id", "epoch"]
    want = data.metrics[data.metrics["run_id"].isin(exported["run_id"])].astype({"run_id": str, "setting_id": str})
    got = back.metrics.astype({"run_id": str, "setting_id": str})
    merged = want.merge(got, on=keys, how="outer", suffixes=("", "_back"), indicator=True)
    assert (merged["_merge"] == "both").all() and len(merged) == len(want) == 18 * 4 + 3
    assert (merged["setting_id"] == merged["setting_id_back"]).all()
    for column in SHARED:
        np.testing.assert_array_equal(merged[f"{column}_back"], merged[column], err_msg=column)
    diverged = got[got["run_id"] == demo_sweep.entries[18]["run_id"]]
    assert back.runs.set_index("run_id").loc[demo_sweep.entries[18]["run_id"], "state"] == "diverged"
    assert len(diverged) == 3 and math.isnan(diverged["valid_loss"].iloc[-1])
    assert math.isinf(diverged["test_loss"].iloc[-1])
    assert back.runs.set_index("run_id").loc[demo_sweep.entries[18]["run_id"], "points"] == 3


# ----------------------------------------------------------------------------- DeepOBS's own files


def _v11_result(seed: int, train: list, test: list, train_acc: list, test_acc: list, **extra) -> dict:
    """A result as DeepOBS 1.1's TensorFlow StandardRunner writes it (the published baselines)."""
    result = {"train_losses": train, "test_losses": test, "minibatch_train_losses": [9.0] * 15,
              "train_accuracies": train_acc, "test_accuracies": test_acc, "optimizer": "MomentumOptimizer",
              "testproblem": "fmnist_2c2d", "weight_decay": None, "batch_size": 128, "num_epochs": 3,
              "learning_rate": 0.01, "lr_sched_epochs": None, "lr_sched_factors": None, "random_seed": seed,
              "train_log_interval": 1, "hyperparams": {"momentum": 0.99, "use_nesterov": False}}
    result.update(extra)
    return result


#: 1.1 puts the learning rate last: ``...__<hyperparameters>__lr__<lr>``.
V11_FOLDER = ("fmnist_2c2d/MomentumOptimizer/"
              "num_epochs__3__batch_size__128__momentum__9.9e-01__use_nesterov__False__lr__1.e-02")


def test_import_of_a_deepobs_1_1_momentum_baseline_with_two_seeds(tmp_path):
    root = tmp_path / "baselines"
    curves = {42: ([2.3, 1.0, 0.5, 0.4], [2.31, 1.1, 0.6, 0.5], [0.1, 0.6, 0.8, 0.85], [0.1, 0.55, 0.75, 0.8]),
              43: ([2.2, 0.9, 0.45, 0.41], [2.21, 1.0, 0.55, 0.52], [0.12, 0.62, 0.81, 0.86], [0.1, 0.6, 0.7, 0.79])}
    for seed, lists in curves.items():
        name = f"random_seed__{seed}__2019-02-13-15-0{seed - 40}-00.json"
        _write(root / V11_FOLDER / name, _v11_result(seed, *lists))
    _write(root / "convergence_performance.json", {"fmnist_2c2d": 0.9})  # beside the runs; not a result
    data = import_deepobs(root)
    runs, metrics = data.runs, data.metrics
    assert data.info["sweep_id"] == "deepobs-baselines" and data.info["source"] == "deepobs"
    assert list(runs["seed"]) == [42, 43] and list(runs["state"]) == ["completed", "completed"]
    assert set(runs["problem"]) == {"fmnist_2c2d"} and set(runs["optimizer"]) == {"momentum"}
    assert runs["setting_id"].nunique() == 1 and runs["run_id"].nunique() == 2
    assert all(re.fullmatch(r"[0-9a-f]{12}", i) for i in [*runs["run_id"], *runs["setting_id"]])
    row = runs.iloc[0]
    assert (row["optimizer.lr"], row["optimizer.momentum"], row["optimizer.use_nesterov"]) == (0.01, 0.99, False)
    assert (row["train.epochs"], row["train.batch_size"], row["schedule.name"]) == (3, 128, "constant")
    assert "problem.weight_decay" not in runs.columns  # null: the problem's default
    assert list(runs["points"]) == [4, 4] and list(runs["error"]) == ["", ""]
    assert list(metrics.columns) == ["run_id", "setting_id", "epoch", "step", "train_loss", "test_loss",
                                     "train_accuracy", "test_accuracy", "lr"]  # 1.1 has no validation set
    for (seed, lists), run_id in zip(curves.items(), runs["run_id"], strict=True):
        rows = metrics[metrics["run_id"] == run_id]
        assert list(rows["epoch"]) == [0, 1, 2, 3]
        for column, values in zip(("train_loss", "test_loss", "train_accuracy", "test_accuracy"), lists,
                                  strict=True):
            assert rows[column].tolist() == values, (seed, column)
        assert rows["lr"].tolist() == [0.01] * 4
        assert rows["step"].tolist() == [0, 5, 10, 15]  # 15 logged minibatch losses, every step, 3 epochs
    again = import_deepobs(root)
    assert list(again.runs["run_id"]) == list(runs["run_id"])  # ids are content hashes


def test_learning_rate_schedule_of_a_deepobs_run_gives_the_lr_column(tmp_path):
    lists = ([2.3, 1.0, 0.5, 0.4], [2.31, 1.1, 0.6, 0.5], [0.1, 0.6, 0.8, 0.85], [0.1, 0.55, 0.75, 0.8])
    _write(tmp_path / "r" / "random_seed__42__2019-02-13-15-00-00.json",
           _v11_result(42, *lists, learning_rate=0.3, lr_sched_epochs=[2], lr_sched_factors=[0.1]))
    data = import_deepobs(tmp_path)
    # evaluation e shows the rate of epoch e-1; epoch 2 (from milestone 2 on) trains with 0.1 * 0.3
    np.testing.assert_allclose(data.metrics["lr"], [0.3, 0.3, 0.3, 0.03])
    row = data.runs.iloc[0]
    assert row["schedule.name"] == "lr_sched" and row["schedule.lr_sched_epochs"] == "[2]"


def test_deepobs_1_2_tensorflow_result_names_its_learning_rate_learning_rate(tmp_path):
    # as the 1.2 fmnist_mlp baselines: no validation lists, no training_params key, TF class name
    result = {"testproblem": "fmnist_mlp", "batch_size": 128, "num_epochs": 2, "random_seed": 42,
              "weight_decay": None, "optimizer_name": "AdamOptimizer", "optimizer_hyperparams": {"learning_rate": 0.1},
              "train_losses": [2.3, 1.97, 1.96], "test_losses": [2.31, 1.98, 1.97], "minibatch_train_losses": [2.3],
              "train_accuracies": [0.1, 0.18, 0.19], "test_accuracies": [0.1, 0.18, 0.2]}
    _write(tmp_path / "fmnist_mlp" / "AdamOptimizer" / "num_epochs__2__batch_size__128__learning_rate__1.e-01"
           / "random_seed__42__2019-06-11-17-59-55.json", result)
    data = import_deepobs(tmp_path)
    row = data.runs.iloc[0]
    assert (row["optimizer"], row["optimizer.lr"], row["state"], row["points"]) == ("adam", 0.1, "completed", 3)
    assert "optimizer.learning_rate" not in data.runs.columns
    assert data.metrics["lr"].tolist() == [0.1] * 3 and "step" not in data.metrics.columns  # interval unknown
    assert data.metrics["test_accuracy"].tolist() == [0.1, 0.18, 0.2]


def test_diverged_deepobs_runs_are_cut_at_the_first_nan_or_the_abort_padding(tmp_path):
    nan = math.nan
    # 1.1 keeps training after NaN
    _write(tmp_path / "a" / "random_seed__42__2019-02-13-15-00-00.json",
           _v11_result(42, [2.3, 1.0, nan, nan], [2.3, 1.1, nan, nan], [0.1, 0.5, 0.01, 0.01], [0.1, 0.5, 0.01, 0.01],
                       learning_rate=100.0))
    # 1.2 (PyTorch runner) stops and fills the epochs it did not reach with the epoch-0 values
    aborted = {"testproblem": "quadratic_deep", "batch_size": 128, "num_epochs": 4, "random_seed": 42,
               "weight_decay": None, "optimizer_name": "SGD", "optimizer_hyperparams": {"lr": 5.0, "momentum": 0.0},
               "training_params": {}, "train_losses": [90.0, 40.0, 90.0, 90.0, 90.0],
               "valid_losses": [91.0, 41.0, 91.0, 91.0, 91.0], "test_losses": [92.0, 42.0, 92.0, 92.0, 92.0],
               "minibatch_train_losses": [95.0, 1e30, 95.0]}
    _write(tmp_path / "b" / "random_seed__42__2020-01-01-00-00-00.json", aborted, indent=4)
    finished = dict(aborted, random_seed=43, train_losses=[90.0, 40.0, 30.0, 20.0, 10.0],
                    valid_losses=[91.0, 41.0, 31.0, 21.0, 11.0], test_losses=[92.0, 42.0, 32.0, 22.0, 12.0])
    _write(tmp_path / "b" / "random_seed__43__2020-01-01-00-00-00.json", finished, indent=4)
    data = import_deepobs(tmp_path)
    runs = data.runs.set_index("seed")
    assert runs.loc[42, "state"].tolist() == ["diverged", "diverged"]
    assert sorted(runs.loc[42, "points"]) == [2, 3]
    assert runs.loc[43, "state"] == "completed" and runs.loc[43, "points"] == 5
    pytorch = data.runs[data.runs["problem"] == "quadratic_deep"].set_index("seed")
    assert pytorch.loc[42, "optimizer"] == "sgd" and pytorch.loc[42, "optimizer.lr"] == 5.0
    rows = data.metrics[data.metrics["run_id"] == pytorch.loc[42, "run_id"]]
    assert rows["train_loss"].tolist() == [90.0, 40.0] and rows["valid_loss"].tolist() == [91.0, 41.0]
    tf = data.metrics[data.metrics["run_id"] == data.runs[data.runs["problem"] == "fmnist_2c2d"]["run_id"].iloc[0]]
    assert tf["train_loss"].tolist()[:2] == [2.3, 1.0] and math.isnan(tf["train_loss"].iloc[2])


# ----------------------------------------------------------------------------- bad input


def test_empty_or_missing_folder_is_an_error(tmp_path):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "notes.json").write_text("{}")
    with pytest.raises(ValueError, match=r"No DeepOBS result JSON .* was found under .*empty"):
        import_deepobs(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        import_deepobs(tmp_path / "nowhere")


def test_broken_files_are_skipped_with_a_warning_naming_them(tmp_path, caplog):
    good = _v11_result(42, [2.3, 1.0, 0.5, 0.4], [2.31, 1.1, 0.6, 0.5], [0.1, 0.6, 0.8, 0.85], [0.1, 0.55, 0.7, 0.8])
    _write(tmp_path / "x" / "random_seed__42__2019-01-01-00-00-00.json", good)
    torn = tmp_path / "x" / "random_seed__43__2019-01-01-00-00-00.json"
    torn.write_text(json.dumps(dict(good, random_seed=43))[:200])
    short = _write(tmp_path / "x" / "random_seed__44__2019-01-01-00-00-00.json",
                   dict(good, random_seed=44, test_losses=[2.0, 1.0]))
    keyless = _write(tmp_path / "x" / "random_seed__45__2019-01-01-00-00-00.json",
                     {k: v for k, v in good.items() if k != "num_epochs"})
    with caplog.at_level("WARNING"):
        data = import_deepobs(tmp_path / "x")
    assert list(data.runs["seed"]) == [42] and data.info["skipped"] == 3
    assert data.fingerprint["files"] == 4
    for path in (torn, short, keyless):
        assert str(path) in caplog.text
    with pytest.raises(ValueError, match=r"random_seed__44.*\[2, 4\] entries, but num_epochs 3 needs 4"):
        read_deepobs_result(short)
    with pytest.raises(ValueError, match=r"random_seed__45.* lacks the DeepOBS key\(s\) num_epochs"):
        read_deepobs_result(keyless)
    with pytest.raises(ValueError, match=r"random_seed__43.* is not readable JSON"):
        read_deepobs_result(torn)
    for path in (tmp_path / "x").glob("random_seed__42__*.json"):
        path.unlink()
    with pytest.raises(ValueError, match=r"None of the 3 DeepOBS result files .* could be read"):
        import_deepobs(tmp_path / "x")


def test_the_same_run_twice_keeps_the_later_file(tmp_path, caplog):
    lists = ([2.3, 1.0, 0.5, 0.4], [2.31, 1.1, 0.6, 0.5], [0.1, 0.6, 0.8, 0.85], [0.1, 0.55, 0.75, 0.8])
    _write(tmp_path / "s" / "random_seed__42__2019-01-01-00-00-00.json", _v11_result(42, *lists))
    later = [[v + 1 for v in lists[0]], *lists[1:]]
    _write(tmp_path / "s" / "random_seed__42__2019-01-02-00-00-00.json", _v11_result(42, *later))
    with caplog.at_level("WARNING"):
        data = import_deepobs(tmp_path / "s")
    assert len(data.runs) == 1 and "keeping the later" in caplog.text
    assert data.metrics["train_loss"].tolist() == later[0]
