"""Bad plugins and bad plugin settings: one sentence naming what to change, exit status 2, nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest
from plugin_support import TOYS, USERCONF


def one_sentence(stderr: str) -> str:
    text = " ".join(stderr.split())
    assert text.startswith("optbench: error: ") and text.endswith(".") and text.count("optbench: error") == 1, text
    return text


@pytest.mark.parametrize(("overrides", "fragment"), [
    (("optimizer=broken",), "The entry point 'broken' of optbench-toys (optbench_toys.broken:Broken) cannot be "
                            "used: optimizer.target optbench_toys.broken:Broken does not import (ModuleNotFoundError: "
                            "No module named 'optbench_toys_missing_dependency')"),
    (("optimizer=signsgd", "optimizer.momentum=0.9"), "Cannot set optimizer.momentum"),
    (("optimizer=signsgd", "+optimizer.momentum=0.9"), "optimizer.momentum is not a parameter of optimizer "
                                                       "'signsgd' (optbench_toys.signsgd:SignSGD); its parameters "
                                                       "are: lr, weight_decay."),
    (("optimizer=signsgd", "optimizer.lr=fast"), "optimizer.lr must be a number (got 'fast')."),
    (("optimizer=signsgd", "optimizer.lr=0,0.1"), "optimizer.lr must be > 0 (got 0.0)."),  # its declared range
    (("optimizer=signsgd", "problem=toy_regression", "problem.dim=2.5"),
     "problem.dim must be a whole number (got 2.5)."),
])
def test_entry_point_plugins_refuse_bad_input(installed, elsewhere, overrides, fragment):
    done = installed.run("launch", *overrides, "--results", "results", cwd=elsewhere)
    assert done.returncode == 2 and fragment in one_sentence(done.stderr), done.stderr
    assert not (elsewhere / "results").exists()


def test_a_user_file_cannot_take_an_entry_points_name(installed, elsewhere):
    (elsewhere / "conf" / "optimizer").mkdir(parents=True)
    (elsewhere / "conf" / "optimizer" / "signsgd.yaml").write_text("name: signsgd\ntarget: signum:Signum\n")
    done = installed.run("launch", "--config-dir", "conf", "optimizer=signsgd", "--results", "results", cwd=elsewhere)
    assert done.returncode == 2, done.stderr
    assert "is both" in one_sentence(done.stderr) and "entry point 'signsgd' of optbench-toys" in done.stderr
    assert not (elsewhere / "results").exists()


def write_config(folder: Path, group: str, name: str, text: str) -> Path:
    (folder / group).mkdir(parents=True, exist_ok=True)
    (folder / group / f"{name}.yaml").write_text(text)
    return folder


@pytest.mark.parametrize(("group", "text", "fragment"), [
    ("optimizer", "name: ghost\ntarget: ghost_module:Ghost\n",
     "optimizer.target ghost_module:Ghost does not import (ModuleNotFoundError: No module named 'ghost_module'); "
     "install the package that has it, or put its folder on PYTHONPATH or in the folder you launch from."),
    ("optimizer", "name: ghost\ntarget: optbench_toys.signsgd:Nope\n",
     "module optbench_toys.signsgd has no Nope; check the class name."),
    ("optimizer", "name: ghost\ntarget: optbench_toys.regression:LinearRegression\n",
     "optimizer.target optbench_toys.regression:LinearRegression is not a torch.optim.Optimizer subclass"),
    ("problem", "# @package _global_\nproblem:\n  name: ghost\n  target: optbench_toys.signsgd:SignSGD\n",
     "problem.target optbench_toys.signsgd:SignSGD is not a jobs.problems.base.Problem subclass"),
    ("optimizer", "name: ghost\ntarget: optbench_toys.signsgd:SignSGD\nlr: 0.1\nbeta: 0.9\n",
     "optimizer.beta is not a parameter of optimizer 'ghost' (optbench_toys.signsgd:SignSGD)"),
    ("optimizer", "name: sgd\ntarget: optbench_toys.signsgd:SignSGD\n",
     "optimizer 'sgd' is one of optbench's own, so a plugin cannot use that name"),
])
def test_config_file_plugins_refuse_bad_input(optbench, tmp_path, monkeypatch, group, text, fragment):
    monkeypatch.syspath_prepend(str(TOYS))
    conf = write_config(tmp_path / "conf", group, "ghost", text)
    status, _, err = optbench("launch", "--config-dir", conf, f"{group}=ghost", "--results", tmp_path / "results")
    assert status == 2 and fragment in one_sentence(err), err
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize(("make", "fragment"), [
    (lambda conf: None, "does not exist; check --config-dir and OPTBENCH_CONFIG_PATH."),
    (lambda conf: write_config(conf, "optimizer", "sgd", "name: sgd\nlr: 0.5\n"),
     "defines the optimizer 'sgd', which"),
    (lambda conf: (conf.mkdir(), (conf / "config.yaml").write_text("seed: 1\n")),
     "would replace optbench's root config"),
    (lambda conf: (conf / "optimizers").mkdir(parents=True), "is not a config group; the groups are"),
])
def test_config_folders_that_would_mislead_are_refused(optbench, tmp_path, make, fragment):
    conf = tmp_path / "conf"
    make(conf)
    status, _, err = optbench("launch", "--config-dir", conf, "--results", tmp_path / "results")
    assert status == 2 and fragment in one_sentence(err), err
    assert not (tmp_path / "results").exists()


def test_the_config_path_variable_stacks_folders_like_the_option(optbench, tmp_path, monkeypatch):
    """OPTBENCH_CONFIG_PATH=A:B is --config-dir A --config-dir B: Signum's file and a sweep of one's own."""
    monkeypatch.syspath_prepend(str(USERCONF.parent / "source"))
    extra = write_config(tmp_path / "mine", "sweep", "signum_lrs", "params:\n  optimizer: signum\n"
                                                                    "  optimizer.lr: 0.1,0.01\n")
    monkeypatch.setenv("OPTBENCH_CONFIG_PATH", f"{USERCONF}:{extra}")
    status, out, err = optbench("launch", "sweep=signum_lrs", "--dry-run", "--results", tmp_path / "results")
    assert status == 0, err
    assert "quadratic_deep · signum lr=0.1 · seed=42" in out and "would start 2 of 2 runs" in out


def test_an_image_plugin_must_be_a_folder_pip_can_install(optbench, tmp_path):
    (tmp_path / "not_a_package").mkdir()
    output = tmp_path / "images" / "with-plugin.sif"
    status, _, err = optbench("image", "build", "cpu", "--plugin", tmp_path / "not_a_package", "--output", output)
    assert status == 2 and "is not a folder pip can install (no pyproject.toml or setup.py" in one_sentence(err)
    assert not output.parent.exists()


def test_an_installed_optbench_cannot_build_an_image(installed, elsewhere):
    done = installed.run("image", "build", "cpu", "--output", "img.sif", cwd=elsewhere)
    assert done.returncode == 2 and "run it from a clone of optbench" in one_sentence(done.stderr)
    assert list(elsewhere.iterdir()) == []


def test_a_plugin_problems_files_are_checked_before_anything_runs(optbench, tmp_path):
    """Its ``dataset_files`` are looked for in the data folder, as a built-in problem's are."""
    conf = write_config(tmp_path / "conf", "problem", "from_files",
                        "# @package _global_\nproblem:\n  name: from_files\n  target: plugin_classes:FromFiles\n")
    (tmp_path / "data" / "toy").mkdir(parents=True)
    (tmp_path / "data" / "toy" / "train.npy").write_bytes(b"")
    status, _, err = optbench("launch", "--config-dir", conf, "problem=from_files", f"data_dir={tmp_path / 'data'}",
                              "--results", tmp_path / "results")
    sentence = one_sentence(err)
    assert status == 2 and f"Problem from_files needs Toy data in {tmp_path / 'data' / 'toy'}" in sentence
    assert "missing test.npy; get the toy generator's output." in sentence
    assert not (tmp_path / "results").exists()
