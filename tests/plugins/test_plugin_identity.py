"""A plugin's code is part of its runs' identity: an edited optimizer never reuses the old results."""

from __future__ import annotations

import re

import pytest

from jobs.run_folder import read_json

pytestmark = pytest.mark.integration  # runs real jobs

OPTIMIZER = '''import torch


class Halving(torch.optim.Optimizer):
    """Gradient descent whose step halves every step."""

    def __init__(self, params, lr: float = 0.5):
        super().__init__(params, {"lr": lr})

    @torch.no_grad()
    def step(self, closure):
        with torch.enable_grad():
            loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                p.sub_(p.grad, alpha=group["lr"])
            group["lr"] *= SHRINK
        return loss


SHRINK = 0.5
'''
RUN = ("--config-dir", "conf", "optimizer=halving", "problem=quadratic", "train.epochs=1", "logger=disabled",
       "--results", "results")


def test_an_edited_plugin_starts_new_runs_and_old_ones_cannot_be_resumed_or_rerun_as_new(installed, elsewhere):
    (elsewhere / "conf" / "optimizer").mkdir(parents=True)
    (elsewhere / "conf" / "optimizer" / "halving.yaml").write_text("name: halving\ntarget: halving:Halving\n")
    source = elsewhere / "halving.py"  # in the folder the user launches from
    source.write_text(OPTIMIZER)

    first = installed.run("launch", *RUN, cwd=elsewhere)
    assert first.returncode == 0 and "1 to start" in first.stdout, first.stdout + first.stderr
    again = installed.run("launch", *RUN, cwd=elsewhere)
    assert "0 to start" in again.stdout and "every run of this sweep is done" in again.stdout
    (old_run,) = (elsewhere / "results" / "runs").iterdir()
    old_sweep = re.search(r"Sweep (\S+):", first.stdout).group(1)
    old_metrics = (old_run / "metrics.jsonl").read_text()

    source.write_text(OPTIMIZER.replace("SHRINK = 0.5", "SHRINK = 0.9"))  # the user edits their optimizer
    edited = installed.run("launch", *RUN, cwd=elsewhere)
    assert edited.returncode == 0 and "0 already done" in edited.stdout and "1 to start" in edited.stdout
    new_run = next(p for p in (elsewhere / "results" / "runs").iterdir() if p != old_run)
    old_hash = read_json(old_run / "provenance.json")["plugins"][0]["code_hash"]
    new_hash = read_json(new_run / "provenance.json")["plugins"][0]["code_hash"]
    assert old_hash != new_hash and old_hash in (old_run / "spec.yaml").read_text()
    assert (old_run / "metrics.jsonl").read_text() == old_metrics  # the old result is kept, not overwritten
    assert (new_run / "metrics.jsonl").read_text() != old_metrics  # SHRINK changed the trajectory

    resumed = installed.run("resume", old_sweep, "--results", "results", cwd=elsewhere)
    assert resumed.returncode == 2, resumed.stdout
    assert "is not the code this run was launched with" in " ".join(resumed.stderr.split())
    rerun = installed.run("rerun", old_run.name, "--results", "results", cwd=elsewhere)
    assert rerun.returncode == 2 and "cannot be rerun as it ran" in " ".join(rerun.stderr.split())
    assert not (old_run / "reruns").exists()

    source.write_text(OPTIMIZER)  # the old code back: the old run is that code's run again
    rerun = installed.run("rerun", old_run.name, "--results", "results", cwd=elsewhere)
    assert rerun.returncode == 0 and "identical" in rerun.stdout, rerun.stdout + rerun.stderr
