"""Vectorised groups: every member trains as its run alone does, diverges alone, resumes as if never stopped.

The reference is the unvectorised trainer (:func:`jobs.train.train`, :func:`jobs.entry.run`) on the
same spec. Measured on CPU (torch 2.13, AVX-512, one thread): the members' metrics, step records
and summaries equal their runs' bitwise for the MLP in float32 and float64 and for the CNN in
float64. In float32 the CNN's batched convolution (a grouped convolution under vmap) rounds its
weight gradient differently from one convolution, by 1e-7 relative per step: over the runs below
its members' losses differ from their runs' by at most 1.8e-7 relative, accuracies not at all.
CNN_RTOL leaves room for other CPUs; accuracies may differ by one example.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
from jobs_support import Killed, Killer, numbers, spec_for

from jobs import checkpoint
from jobs.entry import run
from jobs.run_folder import CHECKPOINT, RunFolder
from jobs.train import Trainer, train
from jobs.vectorized import can_vectorize, group_runs, run_group
from jobs.vectorized_optim import stacked_optimizer
from jobs.vectorized_train import GroupTooLarge, GroupTrainer

CNN_RTOL = 1e-5
#: The CNN and float64 cases of the equivalence matrix (18 groups of 7) run with the slow tests.
slow = pytest.mark.slow
#: The problems, small: 9 steps an epoch (batch 128 of 1197 images), two epochs.
PROBLEMS = {"mlp": ("problem=digits_mlp", "problem.hidden=16", "problem.weight_decay=0.001"),
            "cnn": ("problem=digits_cnn",)}
TRAIN = ("train.batch_size=128", "train.epochs=2", "train.log_every=4")
SCHEDULES = (("schedule=constant",), ("schedule=step",), ("schedule=linear", "schedule.end=0.5"),
             ("schedule=exponential",), ("schedule=cosine", "schedule.warmup=0.2"), ("schedule=sgdr",),
             ("schedule=inverse_time",))
#: Per optimizer: its overrides, and per member (one per schedule) what it varies besides seed and schedule.
OPTIMIZERS = {
    "sgd": (("optimizer=sgd",), [{"lr": 0.5}, {"lr": 0.2}, {"lr": 0.8}, {"lr": 0.05}, {"lr": 1.0}, {"lr": 0.3},
                                 {"lr": 0.1}]),
    "momentum": (("optimizer=momentum",), [{"lr": 0.1, "momentum": 0.9}, {"lr": 0.05, "momentum": 0.5},
                                           {"lr": 0.2, "momentum": 0.8, "dampening": 0.1}, {"lr": 0.1},
                                           {"lr": 0.01, "momentum": 0.99}, {"lr": 0.1, "dampening": 0.5},
                                           {"lr": 0.3, "momentum": 0.3}]),
    "nesterov": (("optimizer=nesterov",), [{"lr": 0.1}, {"lr": 0.05, "momentum": 0.5}, {"lr": 0.2, "momentum": 0.8},
                                           {"lr": 0.1, "momentum": 0.95}, {"lr": 0.02}, {"lr": 0.1},
                                           {"lr": 0.3, "momentum": 0.3}]),
    "weight_decay": (("optimizer=momentum",), [{"lr": 0.1, "weight_decay": 0.01}, {"lr": 0.1, "weight_decay": 0.0},
                                               {"lr": 0.2, "weight_decay": 0.001}, {"lr": 0.05, "weight_decay": 0.1},
                                               {"lr": 0.1, "weight_decay": 0.01}, {"lr": 0.3, "weight_decay": 0.03},
                                               {"lr": 0.1, "weight_decay": 0.005}]),
    "adam": (("optimizer=adam",), [{"lr": 0.01}, {"lr": 0.003, "betas": [0.8, 0.99]}, {"lr": 0.03, "eps": 1e-6},
                                   {"lr": 0.01, "weight_decay": 0.001}, {"lr": 0.001},
                                   {"lr": 0.01, "betas": [0.5, 0.9]}, {"lr": 0.02, "weight_decay": 0.01}]),
    "adamw": (("optimizer=adamw",), [{"lr": 0.01}, {"lr": 0.003, "weight_decay": 0.0},
                                     {"lr": 0.03, "weight_decay": 0.1}, {"lr": 0.01, "betas": [0.8, 0.99]},
                                     {"lr": 0.001}, {"lr": 0.01, "eps": 1e-4}, {"lr": 0.02, "weight_decay": 0.5}]),
}


pytestmark = pytest.mark.usefixtures("one_thread")


class Records:
    """A sink keeping evaluation and step records, without ``time`` (the one field that differs)."""

    def __init__(self):
        self.evals, self.steps = [], []

    def log_eval(self, record):
        self.evals.append({k: v for k, v in record.items() if k != "time"})

    def log_step(self, record):
        self.steps.append(record)

    def log_measurement(self, record):
        raise AssertionError("no measurements here")

    def log_progress(self, record):
        pass


def same(a, b) -> bool:
    """Equal, tensors bitwise (dtype and shape too), lists and tuples alike (a checkpoint turns one into the other)."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return isinstance(b, list | tuple) and len(a) == len(b) and all(map(same, a, b))
    return a == b


def member_specs(problem: str, optimizer: str, *extra: str) -> list[dict]:
    """One spec per schedule, each with its seed and hyperparameters; ``extra`` overrides come last and win."""
    overrides, members = OPTIMIZERS[optimizer]
    specs = []
    for seed, (schedule, varied) in enumerate(zip(SCHEDULES, members, strict=True)):
        given = [*PROBLEMS[problem], *TRAIN, *overrides, *schedule, f"seed={seed}",
                 *(f"optimizer.{k}={v}" for k, v in varied.items()), *extra]
        last = dict(override.split("=", 1) for override in given)  # a later value of a key replaces the earlier
        specs.append(spec_for(*(f"{key}={value}" for key, value in last.items())))
    return specs


def alone(spec: dict) -> tuple[Records, dict]:
    records = Records()
    return records, train(spec, records)


def together(specs: list[dict]) -> list[tuple[Records, dict]]:
    sinks = [Records() for _ in specs]
    return list(zip(sinks, GroupTrainer(specs, sinks).run(), strict=True))


def text(*records) -> str:
    """JSON as the run folder holds it: equal text is equal numbers, bitwise (NaN included)."""
    return json.dumps(records, sort_keys=True)


def outcome(summary: dict) -> dict:
    """A summary without its wall times."""
    final = summary["final"] and {k: v for k, v in summary["final"].items() if k != "time"}
    return {**{k: v for k, v in summary.items() if k not in ("train_time", "final")}, "final": final}


def assert_close(got: list[dict], want: list[dict], rtol: float) -> None:
    """Records alike: the same keys and integers, losses within ``rtol``, accuracies within one example."""
    assert len(got) == len(want)
    for mine, theirs in zip(got, want, strict=True):
        assert mine.keys() == theirs.keys()
        for key, value in theirs.items():
            if key.endswith("_accuracy"):
                assert abs(mine[key] - value) <= 1 / 300 + 1e-12, key
            elif isinstance(value, float) and math.isfinite(value):
                assert mine[key] == pytest.approx(value, rel=rtol, abs=0), key
            else:
                assert mine[key] == value or (math.isnan(mine[key]) and math.isnan(value)), key


@pytest.mark.parametrize(("problem", "optimizer", "precision"), [
    pytest.param(problem, optimizer, precision, marks=() if (problem, precision) == ("mlp", "float32") else slow)
    for problem in PROBLEMS for optimizer in OPTIMIZERS for precision in ("float32", "float64")])
def test_every_member_trains_as_its_run_alone(problem, optimizer, precision):
    specs = member_specs(problem, optimizer, f"precision={precision}")
    assert can_vectorize(specs) is None
    for (mine, my_summary), (theirs, their_summary) in zip(together(specs), map(alone, specs), strict=True):
        assert my_summary["state"] == their_summary["state"] == "completed"
        if problem == "mlp" or precision == "float64":
            assert mine.evals == theirs.evals
            assert mine.steps == theirs.steps
            assert outcome(my_summary) == outcome(their_summary)
        else:
            assert_close(mine.evals, theirs.evals, CNN_RTOL)
            assert_close(mine.steps, theirs.steps, CNN_RTOL)
            assert_close([outcome(my_summary)["final"]], [outcome(their_summary)["final"]], CNN_RTOL)


@pytest.mark.parametrize("optimizer", ["momentum", "adam"])
def test_clipped_gradients_too(optimizer):
    specs = member_specs("mlp", optimizer, "train.clip_grad_norm=0.05")[:3]
    results = together(specs)
    for (mine, my_summary), (theirs, their_summary) in zip(results, map(alone, specs), strict=True):
        assert text(mine.evals, mine.steps, outcome(my_summary)) == text(theirs.evals, theirs.steps,
                                                                          outcome(their_summary))
    unclipped = together([{**spec, "train": {**spec["train"], "clip_grad_norm": None}} for spec in specs])
    assert all(mine.evals != free.evals for (mine, _), (free, _) in zip(results, unclipped, strict=True))


@pytest.mark.parametrize(("batch_size", "lr", "diverged_at"), [(128, 1e6, {"epoch": 0, "step": 5}),
                                                             (1197, 1e30, {"epoch": 1, "step": 1})],
                         ids=["at-a-step", "at-an-evaluation"])
def test_a_diverging_member_ends_as_its_run_would_and_the_others_finish_exactly(batch_size, lr, diverged_at):
    specs = member_specs("mlp", "sgd", f"train.batch_size={batch_size}", "train.epochs=3", "train.log_every=1")[:3]
    specs[1] = {**specs[1], "optimizer": {**specs[1]["optimizer"], "lr": lr}}
    results = together(specs)
    for (mine, my_summary), (theirs, their_summary) in zip(results, map(alone, specs), strict=True):
        assert text(mine.evals, mine.steps, outcome(my_summary)) == text(theirs.evals, theirs.steps,
                                                                          outcome(their_summary))
    assert [summary["state"] for _, summary in results] == ["completed", "diverged", "completed"]
    diverged = results[1][1]
    assert diverged["diverged_at"] == diverged_at
    assert diverged["steps"] == diverged["forward_passes"] == diverged_at["step"]


def group_items(tmp_path, specs, budgets=None) -> list[dict]:
    budgets = budgets or [None] * len(specs)
    return [{"spec": spec, "run_dir": tmp_path / f"run{i}", **({"budget": budget} if budget else {})}
            for i, (spec, budget) in enumerate(zip(specs, budgets, strict=True))]


def test_a_group_writes_every_run_folder_as_a_run_alone_does(tmp_path):
    specs = member_specs("mlp", "momentum", "train.log_every=1")[:3]
    specs[2] = {**specs[2], "optimizer": {**specs[2]["optimizer"], "lr": 1e6}}
    summaries = run_group(group_items(tmp_path / "group", specs))
    for i, spec in enumerate(specs):
        mine, theirs = tmp_path / "group" / f"run{i}", tmp_path / "alone" / f"run{i}"
        their_summary = run(spec, theirs)
        assert numbers(mine) == numbers(theirs)
        assert (mine / "steps.jsonl").read_bytes() == (theirs / "steps.jsonl").read_bytes()
        assert outcome(summaries[i]) == outcome(their_summary)
        status = RunFolder(mine).status()
        assert status["state"] == their_summary["state"] and status["attempts"] == 1
        assert status["last"] == RunFolder(theirs).status()["last"]
        assert not (mine / CHECKPOINT).exists()
        assert (mine / "spec.yaml").read_text() == (theirs / "spec.yaml").read_text()
        provenance = RunFolder(mine).path("provenance.json").read_text()
        assert '"members": 3' in provenance
    assert [s["state"] for s in summaries] == ["completed", "completed", "diverged"]


def test_a_group_killed_and_resumed_logs_what_it_would_have_logged(tmp_path, monkeypatch):
    specs = member_specs("mlp", "adam", "train.epochs=3", "train.log_every=1")[:3]
    unbroken = run_group(group_items(tmp_path / "unbroken", specs))
    # After epoch 2's metrics line of the first member (all resume from epoch 1), then mid-epoch 2.
    killer = Killer(monkeypatch, ("eval", 2), ("step", 2 * 9 + 4))
    items = group_items(tmp_path / "broken", specs)
    while killer.points:
        with pytest.raises(Killed):
            run_group(items)
        assert {RunFolder(item["run_dir"]).state for item in items} == {"failed"}
    resumed = run_group(items)
    for item, mine, theirs in zip(items, resumed, unbroken, strict=True):
        folder, reference = item["run_dir"], tmp_path / "unbroken" / item["run_dir"].name
        assert numbers(folder) == numbers(reference)
        assert (folder / "steps.jsonl").read_bytes() == (reference / "steps.jsonl").read_bytes()
        assert outcome(mine) == outcome(theirs)
        assert RunFolder(folder).status()["resumed_from_epoch"] == 2


def test_a_members_checkpoint_resumes_alone_and_a_runs_checkpoint_in_a_group(tmp_path, monkeypatch):
    specs = member_specs("mlp", "nesterov", "train.epochs=3")[:2]
    unbroken = [run(spec, tmp_path / "unbroken" / f"run{i}") for i, spec in enumerate(specs)]
    Killer(monkeypatch, ("eval", 2))
    items = group_items(tmp_path / "broken", specs)
    with pytest.raises(Killed):
        run_group(items)
    monkeypatch.undo()
    # The group's checkpoint is the one a run alone would have written at that boundary.
    state = checkpoint.load(RunFolder(items[0]["run_dir"]))
    trainer = Trainer(specs[0], Records())
    trainer.run(until=1)
    expected = trainer.state_dict()
    assert state.keys() - {"run_id", "lines"} == expected.keys()
    for key in expected.keys() - {"train_time", "best", "last"}:
        assert same(state[key], expected[key]), key
    assert outcome({"final": state["last"]}) == outcome({"final": expected["last"]})
    # Run 0 resumes alone; run 1 is killed alone, then both resume in a group (run 0 is done already).
    summary = run(specs[0], items[0]["run_dir"])
    assert outcome(summary) == outcome(unbroken[0])
    assert numbers(items[0]["run_dir"]) == numbers(tmp_path / "unbroken" / "run0")
    resumed = run_group(items)
    assert len(resumed) == 1 and outcome(resumed[0]) == outcome(unbroken[1])
    assert numbers(items[1]["run_dir"]) == numbers(tmp_path / "unbroken" / "run1")


def test_budgets_stop_members_at_their_rung_and_a_later_group_continues_them(tmp_path):
    specs = member_specs("mlp", "sgd", "train.epochs=3")[:3]
    unbroken = run_group(group_items(tmp_path / "unbroken", specs))
    items = group_items(tmp_path / "halving", specs, [{"epochs": 1, "rung": 0}, None, {"epochs": 2, "rung": 1}])
    first = run_group(items)
    assert [s["state"] for s in first] == ["stopped", "completed", "stopped"]
    assert [s.get("budget_epochs") for s in first] == [1, None, 2]
    status = RunFolder(items[2]["run_dir"]).status()
    assert status["state"] == "stopped" and status["rung"] == 1 and (items[2]["run_dir"] / CHECKPOINT).exists()
    promoted = [{k: v for k, v in item.items() if k != "budget"} for item in (items[0], items[2])]
    later = run_group(promoted)  # resumed from epochs 1 and 2: one group after the other
    assert [s["state"] for s in later] == ["completed", "completed"]
    for item, mine, theirs in zip(promoted, later, [unbroken[0], unbroken[2]], strict=True):
        assert numbers(item["run_dir"]) == numbers(tmp_path / "unbroken" / item["run_dir"].name)
        assert outcome(mine) == outcome(theirs)


def test_the_stacked_optimizers_step_and_save_as_torch_optim_does():
    """Random gradients, members with their own hyperparameters and learning rates every step."""
    torch.manual_seed(0)
    shapes = [torch.Size([5, 3]), torch.Size([3]), torch.Size([7])]
    cases = [
        ("sgd", [dict(lr=0.1, momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.0),
                 dict(lr=0.2, momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.01)]),
        ("sgd", [dict(lr=0.1, momentum=0.9, dampening=0.0, nesterov=False, weight_decay=0.0),
                 dict(lr=0.2, momentum=0.5, dampening=0.1, nesterov=False, weight_decay=0.01)]),
        ("sgd", [dict(lr=0.1, momentum=0.9, dampening=0.0, nesterov=True, weight_decay=0.001),
                 dict(lr=0.2, momentum=0.5, dampening=0.0, nesterov=True, weight_decay=0.01)]),
        ("adam", [dict(lr=0.1, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False),
                  dict(lr=0.01, betas=(0.5, 0.9), eps=1e-3, weight_decay=0.1, amsgrad=False)]),
        ("adamw", [dict(lr=0.1, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01, amsgrad=False),
                   dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.0, amsgrad=False)]),
    ]
    classes = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}
    for name, configs in cases:
        start = [[torch.randn(shape) for shape in shapes] for _ in configs]
        params = [[torch.nn.Parameter(p.clone()) for p in member] for member in start]
        torch_optimizers = [classes[name](member, foreach=False, **config)
                            for member, config in zip(params, configs, strict=True)]
        stacked = stacked_optimizer([{"name": name, **c} for c in configs],
                                    [o.state_dict()["param_groups"] for o in torch_optimizers])
        flat = torch.stack([torch.cat([p.reshape(-1) for p in member]) for member in start])
        for step in range(6):
            grads = [[torch.randn(shape) for shape in shapes] for _ in configs]
            lrs = [c["lr"] / (1 + step) for c in configs]
            for member, optimizer, grad, lr in zip(params, torch_optimizers, grads, lrs, strict=True):
                optimizer.param_groups[0]["lr"] = lr
                for p, g in zip(member, grad, strict=True):
                    p.grad = g.clone()
                optimizer.step()
            stacked.step(flat, torch.stack([torch.cat([g.reshape(-1) for g in grad]) for grad in grads]), lrs)
            assert torch.equal(flat, torch.stack([torch.cat([p.detach().reshape(-1) for p in m]) for m in params]))
        for row, optimizer in enumerate(torch_optimizers):
            mine = stacked.member_state(row, lrs[row], [s.numel() for s in shapes], shapes)
            theirs = optimizer.state_dict()
            assert same(mine, theirs)


def test_what_can_train_together_and_why_not():
    base = member_specs("mlp", "momentum")[:2]
    assert can_vectorize(base) is None
    longer = {**base[0], "train": {**base[0]["train"], "epochs": 3}}
    assert can_vectorize([base[0], longer]).startswith("the runs differ in train.epochs (2 and 3)")
    zero = {**base[1], "optimizer": {**base[1]["optimizer"], "momentum": 0.0}}
    assert "momentum_is_zero" in can_vectorize([base[0], zero])
    reasons = {
        "optimizer=pal": "line searches call the closure several times per step",
        "optimizer=kfac": "curvature methods",
        "optimizer=rmsprop": "no stacked update",
        "optimizer.amsgrad=true": "AMSGrad",
        "problem.dropout=0.5": "dropout",
        "measure=hessian_spectrum": "a measure section",
    }
    for override, reason in reasons.items():
        extra = ("optimizer=adam",) if override.startswith("optimizer.amsgrad") else ()
        spec = spec_for(*PROBLEMS["mlp"], *extra, override)
        assert reason in can_vectorize([spec]), override
    assert "problem quadratic_deep" in can_vectorize([spec_for("problem=quadratic_deep")])
    assert "problem cifar10_resnet20" in can_vectorize([spec_for("problem=cifar10_resnet20")])


def test_group_runs_puts_runs_that_can_train_together_in_groups_of_at_most_the_limit():
    class Run:
        def __init__(self, spec):
            self.spec = spec

    grid = [Run(s) for s in member_specs("mlp", "sgd")]  # 7 runs: seeds, lrs and schedules
    other = [Run(s) for s in member_specs("cnn", "sgd")[:2]]
    pal = Run(spec_for(*PROBLEMS["mlp"], "optimizer=pal"))
    groups = group_runs([*grid[:3], pal, *other, *grid[3:]], limit=3)
    assert [len(g) for g in groups] == [3, 2, 2, 1, 2]
    assert [r for g in groups[:3] for r in g] == grid and groups[3] == [pal] and groups[4] == other
    assert group_runs(grid, limit=10) == [grid]


def test_a_group_too_large_for_memory_says_what_to_lower(monkeypatch):
    import jobs.vectorized_train as vectorized_train

    specs = member_specs("mlp", "adam")
    monkeypatch.setattr(vectorized_train, "free_bytes", lambda device: 2**20)
    sentence = (r"^A vectorised group of 7 digits_mlp runs needs about .* MiB per run.* more than the 1.0 MiB free "
                r"on cpu; lower launcher.vectorize to 2 or less\.$")
    with pytest.raises(GroupTooLarge, match=sentence):
        GroupTrainer(specs, [Records() for _ in specs])
    monkeypatch.setattr(vectorized_train, "free_bytes", lambda device: 1000)
    with pytest.raises(GroupTooLarge, match=r"run it without vectorising \(launcher.vectorize=1\)\.$"):
        GroupTrainer(specs, [Records() for _ in specs])
