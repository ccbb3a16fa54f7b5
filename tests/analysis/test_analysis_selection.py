"""DeepOBS's selection, tuning robustness, speed per epoch and several sweeps aggregated together."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from analysis_factory import SweepBuilder, curve, make_spec

from analysis.collect import collect_sweep, combine
from analysis.labels import setting_labels
from analysis.selection import robustness, select_best
from analysis.speed import speed_table
from analysis.tables import summary_table

LRS = (1e-3, 1e-2, 1e-1, 1.0)


def _grid(builder: SweepBuilder, planted: dict[tuple[str, float], float], seeds: int = 3,
          diverged: tuple[str, float] | None = None) -> pd.DataFrame:
    """sgd and adam over LRS on quadratic_deep; the final valid loss of (optimizer, lr) is planted[...] + noise."""
    rng = np.random.default_rng(0)
    for optimizer in ("sgd", "adam"):
        for lr in LRS:
            for seed in range(seeds):
                records = curve(3, lr=lr)
                if (optimizer, lr) == diverged:
                    records[-1]["valid_loss"] = math.nan
                    state = "diverged"
                else:
                    records[-1]["valid_loss"] = planted[(optimizer, lr)] + rng.uniform(-0.01, 0.01)
                    state = "completed"
                builder.add(make_spec(optimizer={"name": optimizer, "lr": lr}, seed=seed), state, records)
    builder.write()
    data = collect_sweep(builder.sweep_dir, builder.runs_dir)
    return summary_table(data.runs, data.metrics, setting_labels(data.runs))


def _planted(best_sgd: float, best_adam: float) -> dict[tuple[str, float], float]:
    return {(o, lr): (0.2 if lr == best else 1.0 + lr) for o, best in (("sgd", best_sgd), ("adam", best_adam))
            for lr in LRS}


def test_selection_picks_the_planted_best_setting_per_optimizer(builder):
    summary = _grid(builder, _planted(best_sgd=1e-1, best_adam=1e-3))
    best = select_best(summary, "final_valid").set_index("optimizer")
    assert sorted(best.index) == ["adam", "sgd"]
    assert best["label"].to_dict() == {"sgd": "sgd lr=0.1", "adam": "adam lr=0.001"}
    assert best.loc["sgd", "score"] == pytest.approx(0.2, abs=0.011)
    assert (best["settings"] == len(LRS)).all() and (best["criterion"] == "final_valid").all()


def test_a_diverged_setting_is_never_selected_and_counts_as_worst(builder):
    # sgd's "best" learning rate diverges on every seed: the next best must win.
    planted = _planted(best_sgd=1.0, best_adam=1e-3)
    planted[("sgd", 1e-1)] = 0.5
    summary = _grid(builder, planted, diverged=("sgd", 1.0))
    best = select_best(summary).set_index("optimizer")
    assert best.loc["sgd", "label"] == "sgd lr=0.1"
    grid = robustness(summary).set_index("optimizer")
    assert grid.loc["sgd", "diverged_settings"] == 1 and grid.loc["sgd", "scored"] == 3
    assert grid.loc["adam", "diverged_settings"] == 0 and grid.loc["adam", "scored"] == 4


def test_robustness_against_hand_computed_grid_statistics(builder):
    summary = _grid(builder, _planted(best_sgd=1e-1, best_adam=1e-3))
    grid = robustness(summary).set_index("optimizer")
    for optimizer in ("sgd", "adam"):
        scores = summary.loc[summary["optimizer"] == optimizer, "final_valid_median"].to_numpy()
        row = grid.loc[optimizer]
        assert row["settings"] == 4
        assert row["best_score"] == pytest.approx(scores.min())
        assert row["grid_median"] == pytest.approx(np.median(scores))
        assert row["grid_q25"] == pytest.approx(np.quantile(scores, 0.25))
        assert row["grid_q75"] == pytest.approx(np.quantile(scores, 0.75))
        assert row["near_best"] == pytest.approx(np.mean(scores <= scores.min() * 1.05))


def test_accuracy_is_maximised_and_best_valid_is_a_criterion(builder):
    for lr, final, peak in ((0.1, 0.80, 0.95), (0.01, 0.90, 0.91)):
        for seed in range(3):
            records = curve(3, accuracy=True, lr=lr)
            records[1]["valid_accuracy"], records[2]["valid_accuracy"] = peak, final
            builder.add(make_spec({"name": "digits_mlp"}, {"name": "sgd", "lr": lr}, seed), "completed", records)
    builder.write()
    data = collect_sweep(builder.sweep_dir, builder.runs_dir)
    summary = summary_table(data.runs, data.metrics, setting_labels(data.runs))
    assert select_best(summary, "final_valid")["label"].tolist() == ["sgd lr=0.01"]
    assert select_best(summary, "best_valid")["label"].tolist() == ["sgd lr=0.1"]
    with pytest.raises(ValueError, match="criterion must be one of"):
        select_best(summary, "final_test")


def test_seconds_per_epoch_and_ratio_to_sgd(builder):
    for optimizer, seconds in (("sgd", 2.0), ("adam", 3.0), ("pal", 5.0)):
        for seed, jitter in enumerate((0.9, 1.0, 1.2)):
            records = curve(4)
            for r in records:
                r["time"] = r["epoch"] * seconds * jitter
            builder.add(make_spec(optimizer={"name": optimizer, "lr": 0.1}, seed=seed), "completed", records)
    builder.add(make_spec(optimizer={"name": "sgd", "lr": 0.1}, seed=9), "failed", curve(2))  # not counted
    builder.write()
    data = collect_sweep(builder.sweep_dir, builder.runs_dir)
    speed = speed_table(data.runs, data.metrics).set_index("optimizer")
    assert speed.loc["sgd", "runs"] == 3
    assert speed.loc["sgd", "seconds_per_epoch_median"] == pytest.approx(2.0)
    assert speed.loc["pal", "seconds_per_epoch_q75"] == pytest.approx(np.quantile([4.5, 5.0, 6.0], 0.75))
    assert speed["relative_to_sgd"].to_dict() == pytest.approx({"sgd": 1.0, "adam": 1.5, "pal": 2.5})


def test_two_sweeps_sharing_a_run_count_it_once(tmp_path):
    first, second = SweepBuilder(tmp_path / "r"), SweepBuilder(tmp_path / "r")
    shared = make_spec(optimizer={"name": "sgd", "lr": 0.1}, seed=0)
    first.add(shared, "completed", curve(3))
    first.add(make_spec(optimizer={"name": "sgd", "lr": 0.1}, seed=1), "completed", curve(3, rate=1.0))
    first.write()
    moved = (tmp_path / "r" / "sweeps" / "sw-0001").rename(tmp_path / "r" / "sweeps" / "first")
    info = json.loads((moved / "sweep.json").read_text())
    (moved / "sweep.json").write_text(json.dumps({**info, "sweep_id": "first"}))
    second.add(shared, "completed", curve(3))
    second.add(make_spec(optimizer={"name": "adam", "lr": 0.01}, seed=0), "diverged", curve(2))
    second.write()
    data = combine([collect_sweep(tmp_path / "r" / "sweeps" / "first", second.runs_dir),
                    collect_sweep(second.sweep_dir, second.runs_dir)])
    assert len(data.runs) == 3
    assert data.runs["sweep_id"].tolist() == ["first", "first", "sw-0001"]
    assert data.metrics.groupby("run_id", observed=True).size().tolist() == [3, 3, 2]
    assert list(data.metrics["run_id"].cat.categories) == data.runs["run_id"].tolist()
    assert data.info["sweep_id"] == "first+sw-0001" and len(data.info["sweeps"]) == 2


def _deepobs_run(folder, lr: float, seed: int, valid: list[float]) -> None:
    """A DeepOBS 1.2 PyTorch result of quadratic_deep (4 epochs) with the given valid losses."""
    result = {"testproblem": "quadratic_deep", "batch_size": 128, "num_epochs": 4, "random_seed": seed,
              "weight_decay": None, "optimizer_name": "SGD", "optimizer_hyperparams": {"lr": lr, "momentum": 0.0},
              "training_params": {}, "train_losses": [v - 1 for v in valid], "valid_losses": valid,
              "test_losses": [v + 1 for v in valid], "minibatch_train_losses": [95.0]}
    path = folder / "quadratic_deep" / "SGD" / f"lr_{lr}" / f"random_seed__{seed}__2020-01-01-00-00-00.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=4))


@pytest.mark.parametrize("criterion", ["final_valid", "best_valid"])
def test_an_aborted_deepobs_run_ranks_worst_in_every_selection(tmp_path, criterion):
    from analysis.deepobs_json import import_deepobs

    # DeepOBS's abort routine: after a NaN in epoch 1, entries 0 and 1 as measured, then entry 0 three times.
    # Each aborted run measured 0.01 at epoch 1, better than anything that finished.
    for seed in range(3):
        _deepobs_run(tmp_path, 5.0, seed, [91.0, 0.01, 91.0, 91.0, 91.0])  # every seed aborted
        _deepobs_run(tmp_path, 2.0, seed, [91.0, 0.02, 91.0, 91.0, 91.0] if seed < 2  # two of three aborted
                     else [91.0, 40.0, 10.0, 5.0, 0.4])
        # one of three aborted; the two that finished beat every seed of lr=0.1
        _deepobs_run(tmp_path, 1.0, seed, [91.0, 0.03, 91.0, 91.0, 91.0] if seed == 0
                     else [91.0, 40.0, 10.0, 5.0, 0.3 + seed / 100])
        _deepobs_run(tmp_path, 0.1, seed, [91.0, 41.0, 21.0, 11.0, 0.5 + seed / 100])  # finished
    data = import_deepobs(tmp_path)
    assert sorted(data.runs["state"]) == ["completed"] * 6 + ["diverged"] * 6
    summary = summary_table(data.runs, data.metrics, setting_labels(data.runs))
    by_lr = summary.set_index("label")
    # Counted by what they measured before the abort, lr=5, 2 and 1 would win; ranked worst, their seeds are +inf.
    assert by_lr.loc["sgd lr=5", f"{criterion}_median"] == math.inf
    assert by_lr.loc["sgd lr=2", f"{criterion}_median"] == math.inf
    assert by_lr.loc["sgd lr=1", f"{criterion}_median"] == pytest.approx(0.32)  # median of 0.31, 0.32, +inf
    best = select_best(summary, criterion)
    assert best["label"].tolist() == ["sgd lr=1"] and best["score"].iloc[0] == pytest.approx(0.32)
    grid = robustness(summary, criterion).iloc[0]
    assert (grid["settings"], grid["scored"], grid["diverged_settings"]) == (4, 2, 3)  # any seed diverged
    assert grid["grid_median"] == math.inf
