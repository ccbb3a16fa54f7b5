"""Bad input: one sentence naming what to change, exit status 2, nothing written or started."""

from __future__ import annotations

import pytest

BAD_LAUNCHES = {
    "unknown problem": (["problem=imagenet_resnet999"], "problem"),
    "unknown optimizer": (["optimizer=sgdd"], "sgdd"),
    "unknown optimizer in a sweep": (["optimizer=sgd,lyon"], "lyon"),
    "unknown schedule": (["schedule=triangle"], "triangle"),
    "malformed override": (["optimizer.lr=[0.1"], "Malformed override"),
    "override without value": (["optimizer.lr"], "optimizer.lr"),
    "zero learning rate": (["optimizer.lr=0"], "optimizer.lr"),
    "negative learning rate in a grid": (["optimizer.lr=0.1,-0.1"], "optimizer.lr"),
    "momentum of one": (["optimizer=momentum", "optimizer.momentum=1.0"], "optimizer.momentum"),
    "negative momentum": (["optimizer.momentum=-0.5"], "optimizer.momentum"),
    "beta outside [0,1)": (["optimizer=adam", "optimizer.betas=[0.9,1.5]"], "optimizer.betas"),
    "negative epochs": (["train.epochs=-1"], "train.epochs"),
    "string for a number": (["optimizer.lr=fast"], "optimizer.lr"),
    "unknown sweep": (["sweep=nonexistent"], "nonexistent"),
    "misspelled key": (["train.epoch=3"], "train.epoch"),
    "learning-rate schedule on a line search": (["optimizer=pal", "schedule=step"], "schedule=constant"),
    "warm-up on a line search": (["optimizer=pal", "schedule.warmup=0.1"], "without warmup"),
    "dataset problem without a data folder": (["problem=mnist_mlp"], "no data folder is set"),
}


@pytest.mark.parametrize("overrides,needle", BAD_LAUNCHES.values(), ids=BAD_LAUNCHES.keys())
def test_bad_launch_is_one_sentence_and_starts_nothing(optbench, results, overrides, needle):
    status, out, err = optbench("launch", *overrides, "--results", results)
    assert status == 2
    message = err.strip()
    assert message.startswith("optbench: error: ")
    assert needle in message
    assert len(message.splitlines()) == 1 or len(" ".join(message.split())) < 400
    assert "Traceback" not in err
    assert not results.exists(), "a rejected sweep must not write anything"


def test_unwritable_results_folder(optbench, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    status, _, err = optbench("launch", "train.epochs=1", "--results", blocker / "results")
    assert status == 2
    assert "Cannot write to the results folder" in err and "--results" in err


@pytest.mark.parametrize("verb", ["aggregate", "report", "status"])
def test_unknown_sweep_for_results_verbs(optbench, results, verb):
    results.mkdir()
    status, _, err = optbench(verb, "no-such-sweep", "--results", results)
    assert status == 2 and "No sweep 'no-such-sweep'" in err


def test_bad_quantiles(optbench, results):
    status, _, err = optbench("aggregate", "x", "--results", results, "--quantiles", "0.25,1.5")
    assert status == 2 and "--quantiles" in err
