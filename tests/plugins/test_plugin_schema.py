"""A plugin's hyperparameters from its constructor: types, defaults, declared ranges, and the refusals."""

from __future__ import annotations

import inspect
import shutil
import sys

import pytest
import torch

from jobs import plugins
from jobs.optim.registry import OPTIMIZERS
from jobs.problems.registry import PROBLEMS
from jobs.schema import SpecError
from jobs.spec import validate_spec
from orchestrator.cli import main
from orchestrator.config import ConfigTree
from orchestrator.sweep import expand


def optimizer(target: str, **values) -> dict:
    return OPTIMIZERS.validate({"name": "mine", "target": target, **values})


def test_torch_adam_as_a_plugin_gets_the_types_optbench_declares_by_hand_and_torchs_defaults():
    """torch.optim.Adam through the signature path agrees with the hand-written built-in entry."""
    plugin = plugins.load("optimizer", "torch.optim:Adam")
    builtin = OPTIMIZERS.entry("adam").params
    for name, param in builtin.items():
        assert plugin.params[name].kind == param.kind, name
        assert plugin.params[name].length == param.length, name
    signature = inspect.signature(torch.optim.Adam).parameters
    assert plugin.defaults["betas"] == list(signature["betas"].default) == [0.9, 0.999]
    assert plugin.defaults["lr"] == signature["lr"].default
    assert plugin.params["foreach"].kind == "bool" and plugin.params["foreach"].nullable  # Optional[bool]
    config = optimizer("torch.optim:Adam", lr=0.01)
    assert config["lr"] == 0.01 and config["betas"] == [0.9, 0.999] and config["amsgrad"] is False
    assert config["target"] == "torch.optim:Adam" and config["code_hash"] == plugin.code_hash


def test_signature_kinds_and_their_coercions():
    plugin = plugins.load("optimizer", "plugin_classes:Typed")
    kinds = {name: (p.kind, p.nullable, p.choices, p.length) for name, p in plugin.params.items()}
    assert kinds == {
        "lr": ("float", False, None, None), "steps": ("int", False, None, None),
        "mode": ("str", False, ("fast", "slow"), None), "betas": ("floats", False, None, 2),
        "scale": ("float", True, None, None), "shift": ("number", False, None, None),
        "flag": ("bool", False, None, None), "count": ("number", False, None, None),
        "anything": ("scalar", True, None, None),
    }  # callback=print is an object, not a hyperparameter
    assert plugin.params["lr"].help == "step size" and plugin.params["steps"].low == 1
    config = optimizer("plugin_classes:Typed", lr=1, count=0.5, shift=3.0, anything="x", betas=[0, 0.5])
    assert config["lr"] == 1.0 and isinstance(config["lr"], float)
    assert config["count"] == 0.5 and config["shift"] == 3 and isinstance(config["shift"], int)
    assert config["anything"] == "x" and config["betas"] == [0.0, 0.5] and config["scale"] is None


@pytest.mark.parametrize(("values", "sentence"), [
    ({"lr": -1.0}, "optimizer.lr must be > 0 (got -1.0)."),
    ({"lr": "fast"}, "optimizer.lr must be a number (got 'fast')."),
    ({"steps": 1.5}, "optimizer.steps must be a whole number (got 1.5)."),
    ({"steps": 0}, "optimizer.steps must be >= 1 (got 0)."),
    ({"mode": "medium"}, "optimizer.mode must be one of fast, slow (got 'medium')."),
    ({"betas": [0.9]}, "optimizer.betas must be a list of 2 numbers (got 1)."),
    ({"flag": "yes"}, "optimizer.flag must be true or false (got 'yes')."),
    ({"anything": [1, 2]}, "optimizer.anything must be a number, a string or true/false (got [1, 2])."),
    ({"lrr": 0.1}, "optimizer.lrr is not a parameter of optimizer 'mine' (plugin_classes:Typed); its parameters "
                   "are: anything, betas, count, flag, lr, mode, scale, shift, steps."),
])
def test_a_wrong_value_is_one_sentence(values, sentence):
    with pytest.raises(SpecError) as caught:
        optimizer("plugin_classes:Typed", **values)
    assert str(caught.value) == sentence


@pytest.mark.parametrize(("target", "fragment"), [
    ("plugin_classes:Required", "optimizer.lr is missing; set it with optimizer.lr=VALUE."),
    ("plugin_classes:ReservedName", "takes a parameter 'target', which optbench's config uses for itself"),
    ("plugin_classes:UntypedRequired", "parameter 'rule' has no default and no type optbench can set"),
    ("plugin_classes:DeclaresUnknown", "DeclaresUnknown.hyperparameters names 'lrr', which its constructor does not"),
    ("plugin_classes:DeclaresBadSetting", "has an unknown setting 'minimum'; use low, high"),
    ("plugin_classes:not_a_class", "is a function, not a class; name the class."),
    ("plugin_classes:Missing", "module plugin_classes has no Missing; check the class name."),
    ("no_such_module_anywhere:Thing", "does not import (ModuleNotFoundError: No module named "
                                      "'no_such_module_anywhere'); install the package"),
    ("collections:OrderedDict", "is not a torch.optim.Optimizer subclass"),
    ("jobs.problems.digits:DigitsMLP", "is not a torch.optim.Optimizer subclass"),
    ("plugin_classes.PlainSGD", "must look like 'package.module:Class'"),
])
def test_what_cannot_be_an_optimizer_is_refused_in_one_sentence(target, fragment):
    with pytest.raises(SpecError) as caught:
        optimizer(target)
    message = str(caught.value)
    assert fragment in message and message.endswith(".") and "\n" not in message


def test_a_problem_plugin_must_be_a_problem():
    with pytest.raises(SpecError, match="is not a jobs.problems.base.Problem subclass"):
        PROBLEMS.validate({"name": "mine", "target": "torch.optim:SGD"})


def test_a_plugin_cannot_take_a_built_in_name():
    with pytest.raises(SpecError, match="'sgd' is one of optbench's own, so a plugin cannot use that name"):
        OPTIMIZERS.validate({"name": "sgd", "target": "plugin_classes:PlainSGD"})


def test_schedules_apply_only_to_a_plugin_that_takes_a_learning_rate():
    base = {"problem": {"name": "quadratic", "dim": 2, "condition_number": 2.0, "rotate": False,
                        "steps_per_epoch": 2},
            "schedule": {"name": "cosine", "final_factor": 0.0},
            "train": {"epochs": 1, "batch_size": 1, "eval_every": 1, "log_every": 0, "clip_grad_norm": None},
            "seed": 0, "device": "cpu", "precision": "float64"}
    validate_spec({**base, "optimizer": {"name": "plain", "target": "plugin_classes:PlainSGD"}})
    with pytest.raises(SpecError, match="optimizer 'own' chooses its own step; use schedule=constant"):
        validate_spec({**base, "optimizer": {"name": "own", "target": "plugin_classes:NoLearningRate"}})


def test_the_code_hash_follows_the_code_and_a_spec_of_other_code_is_refused(tmp_path, monkeypatch):
    package = tmp_path / "mine"
    package.mkdir()
    shutil.copy(plugins.code_files(plugins.load("optimizer", "plugin_classes:PlainSGD").cls)[1][0].parent /
                "plugin_classes.py", package / "classes.py")
    (package / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    plugin = plugins.load("optimizer", "mine.classes:PlainSGD")
    folder, files = plugins.code_files(plugin.cls)
    assert folder == package and [f.name for f in files] == ["__init__.py", "classes.py"]
    spec = optimizer("mine.classes:PlainSGD")
    assert spec["code_hash"] == plugins.code_hash(plugin.cls)

    (package / "helpers.py").write_text("SCALE = 2\n")  # any file of the package counts
    changed = plugins.code_hash(plugin.cls)
    assert changed != spec["code_hash"]
    with pytest.raises(SpecError) as caught:
        plugins.check_code(plugins.Plugin(**{**plugin.__dict__, "code_hash": changed}), spec["code_hash"])
    assert f"(code_hash {spec['code_hash']} then, {changed} here); launch the sweep again" in str(caught.value)


def test_a_source_folder_plugin_is_found_from_the_folder_optbench_runs_in(tmp_path, monkeypatch):
    """`optbench launch` imports targets as `python -m` would: this folder last on the path."""
    (tmp_path / "conf" / "optimizer").mkdir(parents=True)
    (tmp_path / "local_sgd.py").write_text(
        "import torch\n\nclass LocalSGD(torch.optim.SGD):\n    def __init__(self, params, lr: float = 0.1):\n"
        "        super().__init__(params, lr=lr)\n")
    (tmp_path / "conf" / "optimizer" / "local.yaml").write_text("name: local\ntarget: local_sgd:LocalSGD\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))  # main() adds this folder; the next test must not see it
    assert main(["launch", "--config-dir", "conf", "optimizer=local", "--dry-run", "--results", "r"]) == 0
    (run,) = expand(["optimizer=local"], ConfigTree(user_dirs=[tmp_path / "conf"])).runs
    plugin = plugins.load("optimizer", "local_sgd:LocalSGD")
    assert run.spec["optimizer"] == {"name": "local", "target": "local_sgd:LocalSGD", "lr": 0.1,
                                     "code_hash": plugins.code_hash(plugin.cls)}
    assert plugins.source_root(plugin.cls) == tmp_path
    assert not (tmp_path / "r").exists()  # a dry run writes nothing
