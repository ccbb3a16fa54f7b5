"""A user's own optimizers and problem beside the built-ins, from a wheel install, in a folder of the user's.

SignSGD and LinearRegression come from a real package installed by pip (entry points); Signum from a plain
source folder named by a user config folder. Every command runs the installed ``optbench`` as a subprocess.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import yaml
from plugin_support import REPO, SOURCE, USERCONF

from jobs.run_folder import read_json

#: The user config folder's sweep `toys`, one seed: 2 problems × (2 plugins + 2 built-ins).
TOYS_SWEEP = ("--config-dir", USERCONF, "sweep=toys", "seed=0", "launcher.max_parallel=2")


def test_a_wheel_install_runs_from_any_folder(installed, elsewhere):
    where = subprocess.run([installed.python, "-c", "import orchestrator.config as c; print(c.__file__); "
                            "print(c.default_conf_dir())"], capture_output=True, text=True, check=True, cwd=elsewhere)
    module, conf = where.stdout.split()
    assert module.startswith(str(installed.root)) and conf.startswith(str(installed.root))  # not the clone's
    done = installed.run("launch", "sweep=smoke", "--dry-run", "--results", "results", cwd=elsewhere)
    assert done.returncode == 0, done.stderr
    assert "would start 18 of 18 runs" in done.stdout and not (elsewhere / "results").exists()


def test_an_entry_point_optimizer_takes_grids_and_the_tuning_protocol_like_a_built_in(installed, elsewhere):
    done = installed.run("launch", "optimizer=signsgd", "problem=toy_regression", "optimizer.lr=logspace(1e-3,1e-1,3)",
                         "--dry-run", cwd=elsewhere)
    assert done.returncode == 0, done.stderr
    assert [f"toy_regression · signsgd lr={lr} · seed=42" in done.stdout for lr in (0.001, 0.01, 0.1)] == [True] * 3
    assert "Plugin optimizer signsgd: optbench_toys.signsgd:SignSGD from an installed package" in done.stdout
    assert "Plugin problem toy_regression: optbench_toys.regression:LinearRegression" in done.stdout
    done = installed.run("tune", "optimizer=signsgd,sgd", "problem=toy_regression", "--dry-run", cwd=elsewhere)
    assert done.returncode == 0 and "would start 72 of 72 runs" in done.stdout, done.stderr  # DeepOBS's 36 lrs each


def test_plugins_run_beside_the_built_ins_and_show_in_the_aggregate_and_report(installed, elsewhere):
    done = installed.run("launch", *TOYS_SWEEP, "--results", "results", cwd=elsewhere,
                         env={"PYTHONPATH": str(SOURCE)})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Finished: 8 completed." in done.stdout
    results = elsewhere / "results"
    runs = {read_json(p / "status.json")["state"] for p in (results / "runs").iterdir()}
    assert runs == {"completed"}
    trained = {(spec["problem"]["name"], spec["train"]["batch_size"], spec["train"]["epochs"])
               for spec in (yaml.safe_load((p / "spec.yaml").read_text()) for p in (results / "runs").iterdir())}
    assert trained == {("toy_regression", 32, 2), ("digits_mlp", 64, 2)}  # the problems' defaults, the sweep's epochs

    done = installed.run("aggregate", "toys", "--results", "results", cwd=elsewhere)
    assert done.returncode == 0, done.stderr
    (sweep_dir,) = (results / "sweeps").iterdir()
    summary = pd.read_csv(sweep_dir / "aggregate" / "summary.csv")
    assert sorted(zip(summary["problem"], summary["optimizer"], strict=True)) == sorted(
        (problem, optimizer) for problem in ("digits_mlp", "toy_regression")
        for optimizer in ("adam", "sgd", "signsgd", "signum"))
    labels = set(summary["label"])
    assert {"signsgd lr=0.01", "signum lr=0.001 momentum=0.9"} <= labels  # no target or code hash in labels
    done = installed.run("report", "toys", "--results", "results", cwd=elsewhere)
    assert done.returncode == 0, done.stderr
    html = (sweep_dir / "report.html").read_text()
    assert all(name in html for name in ("signsgd", "signum", "toy_regression", "adam"))

    provenances = [read_json(p / "provenance.json") for p in (results / "runs").iterdir()]
    recorded = {plugin["target"]: plugin for p in provenances for plugin in p["plugins"]}
    signsgd, signum = recorded["optbench_toys.signsgd:SignSGD"], recorded["signum:Signum"]
    assert (signsgd["distribution"], signsgd["version"], signsgd["editable"]) == ("optbench-toys", "0.3.0", False)
    assert "source" not in signsgd  # an installed package: its version says what it is
    assert signum["distribution"] is None and signum["source"] == str(SOURCE)
    head = subprocess.run(["git", "-C", REPO, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert signum["git"]["commit"] == head and isinstance(signum["git"]["dirty"], bool)
    regression = recorded["optbench_toys.regression:LinearRegression"]
    assert regression["kind"] == "problem" and regression["code_hash"] == signsgd["code_hash"]  # one package

    # W&B (offline) has the plugin run like any other: its hyperparameters, target and code hash as config keys
    signsgd_run = next(p for p in (results / "runs").iterdir()
                       if read_json(p / "status.json").get("state") and "signsgd" in (p / "spec.yaml").read_text())
    (log,) = signsgd_run.glob("wandb/offline-run-*/run-*.wandb")
    out = subprocess.run([sys.executable, "-m", "wandb", "leet", "inspect", "--json", str(log)],
                         capture_output=True, text=True, check=True).stdout
    run_record = next(json.loads(line)["run"] for line in out.splitlines() if json.loads(line)["type"] == "run")
    config = run_record["config"]["update"]
    assert config["optimizer.target"] == "optbench_toys.signsgd:SignSGD" and config["optimizer.lr"] == 0.01
    assert config["optimizer.code_hash"] == signsgd["code_hash"] and "signsgd" in run_record["tags"]
