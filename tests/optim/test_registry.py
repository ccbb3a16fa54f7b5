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


def test_line_searches_have_no_learning_rate():
    assert not OPTIMIZERS.entry("pal").has_lr
    assert OPTIMIZERS.entry("sgd").has_lr and OPTIMIZERS.entry("adam").has_lr


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
    ],
)
def test_bad_values_name_the_key(base, override, key):
    with pytest.raises(SpecError) as error:
        OPTIMIZERS.validate({**load(base), **override})
    assert key in str(error.value)


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
    code = (
        "import sys\n"
        "import jobs.optim\n"
        "from jobs.optim.registry import OPTIMIZERS\n"
        "OPTIMIZERS.validate({'name': 'pal', 'mu': 0.1, 'alpha': 1, 'beta': 0.4, 's_max': 3.16})\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
