"""The optimizer registry, its YAML defaults and its error messages."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from jobs.optim import PAL
from jobs.optim.registry import OPTIMIZERS, build_optimizer
from jobs.schema import SpecError

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "conf" / "optimizer"
YAMLS = sorted(CONF.glob("*.yaml"))


def load(name: str) -> dict:
    return yaml.safe_load((CONF / f"{name}.yaml").read_text())


def test_every_registered_optimizer_has_a_yaml():
    names = {yaml.safe_load(path.read_text())["name"] for path in YAMLS}
    assert names == set(OPTIMIZERS.names())
    assert {path.stem for path in YAMLS} >= set(OPTIMIZERS.names())


@pytest.mark.parametrize("path", YAMLS, ids=lambda p: p.stem)
def test_yaml_defaults_validate_and_build(path):
    text = path.read_text()
    assert text.startswith("# ")
    config = yaml.safe_load(text)
    assert set(config) - {"name"} == set(OPTIMIZERS.entry(config["name"]).params)
    validated = OPTIMIZERS.validate(config)
    assert validated == config  # already canonical: nothing coerced
    if OPTIMIZERS.entry(config["name"]).takes_model:  # hooks into layers (K-FAC): built from a model
        model = torch.nn.Linear(2, 2)
        optimizer = build_optimizer(validated, model.parameters(), model)
    else:
        optimizer = build_optimizer(validated, [torch.zeros(2, requires_grad=True)])
    assert isinstance(optimizer, torch.optim.Optimizer)


@pytest.mark.parametrize("name", OPTIMIZERS.names())
def test_registry_parameters_are_constructor_keywords(name):
    signature = inspect.signature(OPTIMIZERS.load(name))
    assert set(OPTIMIZERS.entry(name).params) <= set(signature.parameters)


def test_pal_yaml_equals_the_constructor_defaults():
    assert OPTIMIZERS.load("pal") is PAL
    signature = inspect.signature(PAL)
    defaults = {k: p.default for k, p in signature.parameters.items() if k != "params"}
    config = load("pal")
    assert set(defaults) == set(OPTIMIZERS.entry("pal").params)
    assert {k: v for k, v in config.items() if k != "name"} == defaults


OWN = {"pal", "labpal", "sls", "gols_i", "pls", "sgd_hd", "alig", "cocob", "newton_cg", "kfac",
       "natural_gradient", "preconditioned_sgd", "adaptive_sgd"}


@pytest.mark.parametrize("name", sorted(OWN))
def test_own_optimizers_yaml_equals_the_constructor_defaults(name):
    cls = OPTIMIZERS.load(name)
    assert cls.__module__.startswith("jobs.optim.")
    signature = inspect.signature(cls)
    defaults = {k: p.default for k, p in signature.parameters.items() if k in OPTIMIZERS.entry(name).params}
    config = {k: tuple(v) if isinstance(v, list) else v for k, v in load(name).items() if k != "name"}
    assert config == defaults


def test_every_optimizer_outside_torch_is_exported_lazily():
    import jobs.optim

    for name in OWN:
        cls = OPTIMIZERS.load(name)
        assert getattr(jobs.optim, cls.__name__) is cls
        assert cls.__name__ in jobs.optim.__all__


def test_methods_that_set_their_own_step_have_no_learning_rate():
    with_lr = {name for name in OPTIMIZERS.names() if OPTIMIZERS.entry(name).has_lr}
    assert with_lr == {"sgd", "adam", "adamw", "adagrad", "rmsprop", "alig", "newton_cg", "natural_gradient", "kfac",
                       "schedulefree_sgd", "schedulefree_adamw",
                       "nadamw", "radam", "adafactor", "muon", "lion", "soap", "shampoo", "pytorch_optimizer"}


@pytest.mark.parametrize(
    ("base", "override", "key"),
    [
        ("sgd", {"lr": -0.1}, "optimizer.lr"),
        ("sgd", {"lr": 0}, "optimizer.lr"),
        ("momentum", {"momentum": 1.0}, "optimizer.momentum"),
        ("momentum", {"momentum": -0.1}, "optimizer.momentum"),
        ("sgd", {"nesterov": "yes"}, "optimizer.nesterov"),
        ("adam", {"betas": [0.9, 1.0]}, "optimizer.betas[1]"),
        ("adam", {"betas": [0.9]}, "optimizer.betas"),
        ("adam", {"eps": 0.0}, "optimizer.eps"),
        ("sgd", {"lr_decay": 0.1}, "optimizer.lr_decay"),
        ("pal", {"mu": 0.0}, "optimizer.mu"),
        ("pal", {"beta": 1.0}, "optimizer.beta"),
        ("pal", {"s_max": -1.0}, "optimizer.s_max"),
        ("adagrad", {"eps": 0.0}, "optimizer.eps"),
        ("rmsprop", {"alpha": 1.0}, "optimizer.alpha"),
        ("adamw", {"weight_decay": -0.01}, "optimizer.weight_decay"),
        ("labpal", {"variant": "adam"}, "optimizer.variant"),
        ("labpal", {"sgd_steps": 0}, "optimizer.sgd_steps"),
        ("labpal", {"approximation_batches": 2.5}, "optimizer.approximation_batches"),
        ("labpal", {"batch_milestones": [0.5, 1.0]}, "optimizer.batch_milestones[1]"),
        ("labpal", {"total_steps": 0}, "optimizer.total_steps"),
        ("sls", {"c": 1.0}, "optimizer.c"),
        ("sls", {"beta": 0.0}, "optimizer.beta"),
        ("sls", {"gamma": 0.5}, "optimizer.gamma"),
        ("sls", {"n_batches_per_epoch": 0}, "optimizer.n_batches_per_epoch"),
        ("gols_i", {"eta": 1.0}, "optimizer.eta"),
        ("gols_i", {"momentum": 1.0}, "optimizer.momentum"),
        ("pls", {"c_w": 1.0}, "optimizer.c_w"),
        ("pls", {"c1": 0.9}, "optimizer.c1"),
        ("pls", {"noise_batches": 1}, "optimizer.noise_batches"),
        ("sgd_hd", {"hypergrad_lr": -1e-3}, "optimizer.hypergrad_lr"),
        ("alig", {"lr": 0.0}, "optimizer.lr"),
        ("cocob", {"alpha": "many"}, "optimizer.alpha"),
    ],
)
def test_bad_values_name_the_key(base, override, key):
    with pytest.raises(SpecError) as error:
        OPTIMIZERS.validate({**load(base), **override})
    message = str(error.value)
    assert key in message
    assert message.endswith(".") and ". " not in message.rstrip(".")  # one sentence


@pytest.mark.parametrize(("base", "override", "sentence"), [
    ("pal", {"mu": 0.0}, "optimizer.mu must be > 0 (got 0.0)."),
    ("sls", {"gamma": 0.5}, "optimizer.gamma must be >= 1 (got 0.5)."),
    ("momentum", {"momentum": 1.0}, "optimizer.momentum must be in [0, 1) (got 1.0)."),
])
def test_a_range_reads_as_a_sentence(base, override, sentence):
    with pytest.raises(SpecError) as error:
        OPTIMIZERS.validate({**load(base), **override})
    assert str(error.value) == sentence


def test_nullable_lengths_come_from_the_trainer_or_the_config():
    assert OPTIMIZERS.validate(load("sls"))["n_batches_per_epoch"] is None
    assert OPTIMIZERS.validate({**load("sls"), "n_batches_per_epoch": 7.0})["n_batches_per_epoch"] == 7


def test_missing_hyperparameter_names_the_key():
    config = load("pal")
    del config["alpha"]
    with pytest.raises(SpecError, match=r"optimizer\.alpha"):
        OPTIMIZERS.validate(config)


def test_unknown_optimizer_lists_the_choices():
    with pytest.raises(SpecError) as error:
        OPTIMIZERS.validate({"name": "lbfgs", "lr": 1.0})
    message = str(error.value)
    assert "lbfgs" in message
    assert all(name in message for name in OPTIMIZERS.names())


def test_validation_does_not_import_torch():
    # pytorch_optimizer.yaml is left out: the adapter reads its algorithm's signature, as a plugin's is read.
    code = (
        "import sys\n"
        "import jobs.optim\n"
        "from jobs.optim.registry import OPTIMIZERS\n"
        "import pathlib, yaml\n"
        "for path in sorted(pathlib.Path('conf/optimizer').glob('*.yaml')):\n"
        "    if path.stem != 'pytorch_optimizer':\n"
        "        OPTIMIZERS.validate(yaml.safe_load(path.read_text()))\n"
        "from jobs.schedules import SCHEDULES, lr_lambda\n"
        "sgdr = {'name': 'sgdr', 'first_period': 0.1, 'period_factor': 2, 'final_factor': 0}\n"
        "lr_lambda(SCHEDULES.validate(sgdr), 9)(3)\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
