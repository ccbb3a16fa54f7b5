"""Successive halving and Hyperband: schedules, planted promotions, bitwise continuation, end to end, bad input."""

from __future__ import annotations

import json
import math

import pytest

from analysis.aggregate import load_aggregate
from jobs.entry import run as run_job
from jobs.run_folder import HALVING_FILE, METRICS, RunFolder, read_jsonl, write_json
from orchestrator import halving, rungs
from orchestrator.store import ResultsStore
from orchestrator.sweep import expand

TINY = ("problem=rosenbrock", "problem.steps_per_epoch=5", "logger=disabled")


def test_hyperband_brackets_are_li_et_al_s_table():
    """Hyperband's paper (Li et al. 2017, Table 1): R = 81, η = 3 gives 5 brackets of n = 81, 34, 15, 8, 5."""
    assert rungs.max_rung(81, 1, 3) == 4
    assert rungs.bracket_sizes(81, 1, 3, 5) == [81, 34, 15, 8, 5]
    assert [rungs.budgets(81, 1, 3, b) for b in range(5)] == [
        (1, 3, 9, 27, 81), (3, 9, 27, 81), (9, 27, 81), (27, 81), (81,)]
    n, kept = 81, []  # bracket s = 4: 81 → 27 → 9 → 3 → 1 candidates
    for _ in range(4):
        n = rungs.promoted(n, 3)
        kept.append(n)
    assert kept == [27, 9, 3, 1]


def test_budgets_round_down_to_whole_epochs_and_end_at_the_maximum():
    assert rungs.budgets(10, 1, 3) == (1, 3, 10)  # s_max = 2: ⌊10/9⌋, ⌊10/3⌋, 10
    assert rungs.budgets(100, 2, 2) == (3, 6, 12, 25, 50, 100)  # 2·2^5 = 64 ≤ 100 < 128
    assert rungs.budgets(5, 5, 3) == (5,)  # one rung: nothing to halve
    assert rungs.promoted(2, 3) == 1 and rungs.promoted(9, 2) == 4


def _sweep(*overrides):
    return expand([*TINY, "search=halving", *overrides])


def _plant(store, run_id, state, values, budget=None, accuracy=False):
    """A run folder as a job leaves it: status and one metrics line per epoch 0..len(values)-1."""
    folder = store.run_folder(run_id)
    folder.root.mkdir(parents=True, exist_ok=True)
    write_json(folder.path("status.json"), {"state": state, "run_id": run_id,
                                            **({"budget_epochs": budget} if budget is not None else {})})
    key = "valid_accuracy" if accuracy else "valid_loss"
    folder.path(METRICS).write_text("".join(json.dumps({"epoch": e, key: v}) + "\n" for e, v in enumerate(values)))


def test_a_rung_promotes_exactly_the_planted_best_candidates(tmp_path):
    """9 learning rates × 2 seeds, η = 3: the 3 planted best medians go on to rung 1 (3 epochs), no other."""
    lrs = [0.001 * 2 ** i for i in range(9)]
    sweep = _sweep("train.epochs=9", f"optimizer.lr={','.join(map(str, lrs))}", "seed=0,1")
    store = ResultsStore(tmp_path / "results")
    sweep_dir = store.sweep_dir(sweep.sweep_id)
    sweep_dir.mkdir(parents=True)
    first = halving.step(sweep, sweep_dir, store, ask_scheduler=False)
    assert first.to_start == {r.run_id: {"epochs": 1, "rung": 0} for r in sweep.runs} and not first.decided
    (bracket,) = rungs.brackets(sweep.search, sweep.runs)
    assert bracket.budgets == (1, 3, 9) and len(bracket.candidates) == 9

    # Planted valid losses at epoch 1, per candidate and seed; medians: candidate i → 10 - i, except that
    # candidate 8's second seed diverged (median +inf) and candidate 7's failed: the best finite are 6, 5, 4.
    for index, setting in enumerate(bracket.candidates):
        for seed, run_id in enumerate(bracket.runs[setting]):
            value = 10.0 - index + (0.5 if seed else -0.5)
            if index == 8 and seed == 1:
                _plant(store, run_id, "diverged", [1.0, math.nan])
            elif index == 7 and seed == 0:
                _plant(store, run_id, "failed", [1.0])
            else:
                _plant(store, run_id, "stopped", [20.0, value], budget=1)
    halving._mark_started(sweep_dir, first.to_start, sweep)
    second = halving.step(sweep, sweep_dir, store, ask_scheduler=False)
    (decision,) = second.decided
    assert decision["promoted"] == [bracket.candidates[i] for i in (6, 5, 4)]
    assert decision["values"][bracket.candidates[0]] == 10.0 and decision["values"][bracket.candidates[8]] is None
    assert decision["metric"] == "valid_loss"
    promoted_runs = {r for i in (6, 5, 4) for r in bracket.runs[bracket.candidates[i]]}
    assert second.to_start == {r: {"epochs": 3, "rung": 1} for r in promoted_runs}

    # The decision is final: a later step reads it back and neither decides rung 0 again nor restarts it.
    halving._mark_started(sweep_dir, second.to_start, sweep)
    for run_id in second.to_start:
        _plant(store, run_id, "stopped", [20.0, 1.0, 1.0, 1.0], budget=3)
    third = halving.step(sweep, sweep_dir, store, ask_scheduler=False)
    assert [d["rung"] for d in third.decided] == [1]
    assert third.decided[0]["promoted"] == [bracket.candidates[6]]  # ties go to sweep order
    assert set(third.to_start) == set(bracket.runs[bracket.candidates[6]])
    events = [e["event"] for e in read_jsonl(sweep_dir / HALVING_FILE)]
    assert events == ["started", "decided", "started", "decided"]


def test_accuracy_is_maximised_and_a_run_missing_the_rung_s_evaluation_is_worst(tmp_path):
    sweep = _sweep("train.epochs=3", "optimizer.lr=0.1,0.2,0.3", "seed=0")
    store = ResultsStore(tmp_path / "results")
    sweep_dir = store.sweep_dir(sweep.sweep_id)
    sweep_dir.mkdir(parents=True)
    (bracket,) = rungs.brackets(sweep.search, sweep.runs)
    for setting, accuracy in zip(bracket.candidates, (0.5, 0.9, None), strict=True):
        (run_id,) = bracket.runs[setting]
        _plant(store, run_id, "stopped", [0.1] + ([accuracy] if accuracy is not None else []), budget=1,
               accuracy=True)
    halving._mark_started(sweep_dir, {r.run_id: {"epochs": 1, "rung": 0} for r in sweep.runs}, sweep)
    (decision,) = halving.step(sweep, sweep_dir, store, ask_scheduler=False).decided
    assert decision["promoted"] == [bracket.candidates[1]]
    assert decision["values"][bracket.candidates[1]] == 0.9 and decision["values"][bracket.candidates[2]] is None
    assert decision["metric"] == "valid_accuracy"


def test_a_stopped_run_continues_bitwise_as_the_uninterrupted_run(tmp_path):
    """Rung budgets 1 then 3, then to the end: the same metrics as one run straight through (time aside)."""
    (run,) = expand([*TINY, "train.epochs=5", "optimizer.lr=0.001"]).runs
    straight = tmp_path / "straight" / run.run_id
    halved = tmp_path / "halved" / run.run_id
    assert run_job(run.spec, straight)["state"] == "completed"
    for rung, epochs in enumerate((1, 3)):
        summary = run_job(run.spec, halved, budget={"epochs": epochs, "rung": rung})
        assert summary["state"] == "stopped" and summary["budget_epochs"] == epochs
        status = RunFolder(halved).status()
        assert (status["state"], status["rung"], status["budget_epochs"]) == ("stopped", rung, epochs)
        assert (halved / "checkpoint.pt").is_file()
        assert [r["epoch"] for r in read_jsonl(halved / METRICS)] == list(range(epochs + 1))
    assert run_job(run.spec, halved, budget={"epochs": 3, "rung": 1}) is None  # stopped there already: nothing
    assert run_job(run.spec, halved, budget={"epochs": 5, "rung": 2})["state"] == "completed"
    status = RunFolder(halved).status()
    assert status["rung"] == 2 and status["budget_epochs"] is None and status["resumed_from_epoch"] == 3
    assert not (halved / "checkpoint.pt").exists()

    def without_time(folder):
        return [{k: v for k, v in r.items() if k != "time"} for r in read_jsonl(folder / METRICS)]

    assert without_time(halved) == without_time(straight)  # == on floats: bitwise
    assert len(without_time(halved)) == 6


@pytest.mark.integration
def test_halving_end_to_end_keeps_the_best_and_stops_the_rest(optbench, results):
    status, out, err = optbench("launch", *TINY, "train.epochs=3", "search=halving", "search.eta=3",
                                "optimizer.lr=0.00001,0.0001,0.001", "seed=0,1", "--results", results)
    assert status == 0, err
    store = ResultsStore(results)
    sweep_dir = store.find_sweep("adhoc")
    sweep = store.load_sweep(sweep_dir)
    states = {r.run_id: RunFolder(results / "runs" / r.run_id).status() for r in sweep.runs}
    decisions = [e for e in read_jsonl(sweep_dir / HALVING_FILE) if e["event"] == "decided"]
    assert [(d["rung"], d["budget"], len(d["promoted"])) for d in decisions] == [(0, 1, 1), (1, 3, 0)]
    (winner,) = decisions[0]["promoted"]
    assert decisions[1]["best"] == winner
    # Rosenbrock from its start: the largest stable learning rate descends furthest in one epoch.
    assert sweep.labels[winner] == "sgd lr=0.001"
    for run in sweep.runs:
        expected = ("completed", 1) if run.setting_id == winner else ("stopped", 0)
        assert (states[run.run_id]["state"], states[run.run_id]["rung"]) == expected
    assert "Rung 0 (1 epochs) of rosenbrock · sgd, bracket 0: 1 of 3 promoted." in " ".join(out.split())

    # Launching again takes nothing: every rung is decided, every run where its rung left it.
    status, out, _ = optbench("launch", *TINY, "train.epochs=3", "search=halving", "search.eta=3",
                              "optimizer.lr=0.00001,0.0001,0.001", "seed=0,1", "--results", results)
    assert status == 0 and "is over" in out
    assert len([e for e in read_jsonl(sweep_dir / HALVING_FILE) if e["event"] == "started"]) == 2

    # Status and the report count stopped runs as stopped, not failed; the report shows the rungs.
    status, out, _ = optbench("status", "adhoc", "--results", results)
    assert status == 0 and "stopped" in out
    status, _, err = optbench("report", "adhoc", "--results", results)
    assert status == 0, err
    aggregate = load_aggregate(sweep_dir / "aggregate")
    counts = aggregate.summary.set_index("label")[["completed", "stopped", "failed", "diverged", "other"]]
    assert counts.loc["sgd lr=0.001"].tolist() == [2, 0, 0, 0, 0]
    assert counts.loc["sgd lr=1e-05"].tolist() == [0, 2, 0, 0, 0]
    rungs = aggregate.rungs
    assert rungs[["rung", "epochs", "candidates", "promoted"]].values.tolist() == [[0, 1, 3, 1], [1, 3, 1, 0]]
    assert rungs["best"].tolist() == ["sgd lr=0.001"] * 2 and set(rungs["metric"]) == {"valid_loss"}
    html = (sweep_dir / "report.html").read_text()
    assert 'id="halving"' in html and 'id="rungs-table"' in html and "<th class=\"num\">stopped</th>" in html


@pytest.mark.parametrize(("overrides", "fragment"), [
    (("search.eta=1",), "search.eta must be >= 2"),
    (("search.min_epochs=5",), "search.min_epochs=5 is more than rosenbrock's train.epochs=3"),
    (("train.epochs=0",), "trains for train.epochs=0"),
    (("search.brackets=3",), "search.brackets=3 is more than the 2 brackets"),
    (("search.brackets=2",), "draws each bracket's candidates"),
    (("train.eval_every=2",), "The rung at epoch 1 is not evaluated"),
    (("train.epochs=3,4",), "cannot search train.epochs"),
    (("--protocol-deepobs",), "does not run successive halving"),
])
def test_bad_halving_input_is_one_sentence(optbench, results, overrides, fragment):
    verb = "tune" if overrides == ("--protocol-deepobs",) else "launch"
    given = () if verb == "tune" else overrides
    epochs = () if any(o.startswith("train.epochs=") for o in given) else ("train.epochs=3",)
    status, out, err = optbench(verb, *TINY, *epochs, "search=halving", "optimizer.lr=0.1,0.2", *given,
                                "--results", results)
    assert status == 2, out + err
    message = " ".join(err.split())
    assert fragment in message and message.count(". ") <= 1, message
    assert not results.exists()


def test_a_dry_run_shows_hyperband_s_rungs_and_starts_nothing(optbench, results):
    status, out, err = optbench("launch", *TINY, "train.epochs=9", "search=halving", "search.brackets=2",
                                "optimizer.lr=tag(log,interval(1e-5,1e-3))", "seed=0,1", "--dry-run",
                                "--results", results)
    assert status == 0, err
    rows = [[cell.strip() for cell in line.split("│")] for line in out.splitlines() if line.count("│") == 3]
    # R = 9, η = 3: s_max = 2; bracket 0 starts 9 candidates at 1 epoch, bracket 1 ⌈3/2 · 3⌉ = 5 at 3 epochs.
    assert rows == [["rosenbrock · sgd, bracket 0", "0", "1", "9"], ["", "1", "3", "3"], ["", "2", "9", "1"],
                    ["rosenbrock · sgd, bracket 1", "0", "3", "5"], ["", "1", "9", "1"]]
    assert "28 runs" in out and not results.exists()
    sweep = expand([*TINY, "train.epochs=9", "search=halving", "search.brackets=2",
                    "optimizer.lr=tag(log,interval(1e-5,1e-3))", "seed=0,1"])
    assert sweep.search["bracket_trials"] == [9, 5]
    assert sorted({r.trial for r in sweep.runs}) == list(range(14))


@pytest.mark.integration
def test_hyperband_runs_each_bracket_on_its_own_draws(optbench, results):
    """R = 3, η = 3: bracket 0 starts ⌈2/2 · 3⌉ = 3 points at 1 epoch, bracket 1 ⌈2/1 · 1⌉ = 2 at 3 epochs."""
    status, _, err = optbench("launch", *TINY, "train.epochs=3", "search=halving", "search.brackets=2",
                              "optimizer.lr=tag(log,interval(1e-5,1e-3))", "seed=0", "--results", results)
    assert status == 0, err
    store = ResultsStore(results)
    sweep_dir = store.find_sweep("adhoc")
    sweep = store.load_sweep(sweep_dir)
    decided = [e for e in read_jsonl(sweep_dir / HALVING_FILE) if e["event"] == "decided"]
    shape = sorted((d["bracket"], d["rung"], d["budget"], len(d["values"]), len(d["promoted"])) for d in decided)
    assert shape == [("0/0", 0, 1, 3, 1), ("0/0", 1, 3, 1, 0), ("0/1", 0, 3, 2, 0)]
    by_trial = {r.trial: RunFolder(results / "runs" / r.run_id).state for r in sweep.runs}
    assert [by_trial[t] for t in (3, 4)] == ["completed", "completed"]  # bracket 1: its one rung is the last
    assert sorted(by_trial[t] for t in (0, 1, 2)) == ["completed", "stopped", "stopped"]
