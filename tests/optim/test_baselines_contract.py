"""Today's baselines as the trainer uses them: checkpoints that continue bitwise, training that lowers the loss."""

from __future__ import annotations

import copy
import inspect
import io
from pathlib import Path

import pytest
import torch
import yaml
from optim_support import Passes, make_closure
from torch import nn

from jobs.optim.registry import OPTIMIZERS, build_optimizer

CONF = Path(__file__).resolve().parents[2] / "conf" / "optimizer"
#: name -> overrides of its YAML: SOAP's refresh and Shampoo's stale roots fall inside the continued steps.
METHODS = {
    "nadamw": {}, "radam": {}, "adafactor": {}, "muon": {}, "lion": {},
    "soap": {"precondition_frequency": 4}, "shampoo": {"update_every": 3},
    "pytorch_optimizer": {},  # its YAML's algorithm, adan
    "pytorch_optimizer lion": {"algorithm": "lion", "lr": 3e-4},
}
OWN = ("muon", "shampoo")


def config(method: str) -> dict:
    name = method.split()[0]
    return OPTIMIZERS.validate({**yaml.safe_load((CONF / f"{name}.yaml").read_text()), **METHODS[method]})


class Problem:
    """A small tanh MLP (its initial weights from ``seed``) on fixed random batches, one per step index."""

    def __init__(self, method: str, seed: int = 0):
        torch.manual_seed(seed)
        self.model = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 4))
        generator = torch.Generator().manual_seed(1234)
        self.batches = [(torch.randn(32, 8, generator=generator), torch.randint(0, 4, (32,), generator=generator))
                        for _ in range(12)]
        self.optimizer = build_optimizer(config(method), self.model.parameters(), self.model)
        self.passes = Passes()

    def step(self, t: int) -> float:
        x, y = self.batches[t % len(self.batches)]
        params = list(self.model.parameters())
        closure = make_closure(params, lambda: nn.functional.cross_entropy(self.model(x), y), self.passes)
        return float(self.optimizer.step(closure).detach())


def through_a_checkpoint(state: dict) -> dict:
    """What a checkpoint gives back: torch.save, then torch.load with weights_only, as jobs.checkpoint does."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


@pytest.mark.parametrize("method", METHODS)
def test_a_restored_state_continues_bitwise(method):
    unbroken, resumed = Problem(method), Problem(method, seed=5)  # another start: everything must come from the state
    for t in range(6):
        unbroken.step(t)
    saved = through_a_checkpoint({"model": unbroken.model.state_dict(), "optimizer": unbroken.optimizer.state_dict()})
    resumed.model.load_state_dict(saved["model"])
    resumed.optimizer.load_state_dict(saved["optimizer"])
    for t in range(6, 12):
        unbroken.step(t)
        resumed.step(t)
    for a, b in zip(unbroken.model.parameters(), resumed.model.parameters(), strict=True):
        assert torch.equal(a, b)
    assert not torch.equal(saved["model"]["0.weight"], unbroken.model[0].weight)  # the continuation moved


@pytest.mark.parametrize("method", METHODS)
def test_training_with_the_defaults_lowers_the_loss_at_one_pass_per_step(method):
    problem = Problem(method)
    problem.batches = problem.batches[:1]  # full batch: the loss is one function
    losses = [problem.step(t) for t in range(200)]
    assert losses[-1] < 0.97 * losses[0]
    assert (problem.passes.forward, problem.passes.backward) == (200, 200)


@pytest.mark.parametrize("name", OWN)
def test_own_yaml_equals_the_constructor_defaults(name):
    cls = OPTIMIZERS.load(name)
    params = OPTIMIZERS.entry(name).params
    defaults = {k: p.default for k, p in inspect.signature(cls).parameters.items() if k in params}
    raw = yaml.safe_load((CONF / f"{name}.yaml").read_text())
    assert {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items() if k != "name"} == defaults


def test_muon_is_built_from_the_model():
    assert OPTIMIZERS.entry("muon").takes_model
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    with pytest.raises(ValueError, match="pass the model"):
        build_optimizer(config("muon"), model.parameters())
    assert build_optimizer(config("muon"), model.parameters(), copy.deepcopy(model)).parts.keys() == {"muon", "adamw"}
