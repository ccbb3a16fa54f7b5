"""optimizer=pytorch_optimizer: any algorithm of the collection, its hyperparameters from its signature."""

from __future__ import annotations

import pytest
import pytorch_optimizer
import torch

from jobs.optim.registry import OPTIMIZERS, build_optimizer
from jobs.schema import SpecError

C = torch.tensor([1.0, 3.0, 10.0, 0.5], dtype=torch.float64)


def adapter(algorithm: str, **hyperparameters) -> dict:
    return OPTIMIZERS.validate({"name": "pytorch_optimizer", "algorithm": algorithm, **hyperparameters})


def trajectory(config: dict, steps: int = 4) -> list[torch.Tensor]:
    x = torch.tensor([1.0, -0.7, 0.3, 2.0], dtype=torch.float64, requires_grad=True)
    optimizer = build_optimizer(config, [x])
    out = []
    for _ in range(steps):
        optimizer.zero_grad()
        (0.5 * (C * x * x).sum()).backward()
        optimizer.step()
        out.append(x.detach().clone())
    return out


def test_adan_takes_the_hyperparameters_set_and_its_defaults_for_the_rest():
    config = adapter("adan", lr=0.01, weight_decay=0.02)
    assert config == {"name": "pytorch_optimizer", "algorithm": "adan", "lr": 0.01, "weight_decay": 0.02}
    optimizer = build_optimizer(config, [torch.zeros(3, requires_grad=True)])
    assert isinstance(optimizer, pytorch_optimizer.Adan)
    group = optimizer.param_groups[0]
    assert (group["lr"], group["weight_decay"]) == (0.01, 0.02)
    assert tuple(group["betas"]) == (0.98, 0.92, 0.99)  # Adan's three betas, its default


def test_lion_through_the_adapter_is_the_registered_lion():
    hyperparameters = {"lr": 0.01, "betas": [0.9, 0.99], "weight_decay": 0.1}
    via_adapter = trajectory(adapter("lion", **hyperparameters))
    registered = trajectory(OPTIMIZERS.validate({"name": "lion", **hyperparameters}))
    assert all(torch.equal(a, b) for a, b in zip(via_adapter, registered, strict=True))
    assert not torch.equal(via_adapter[0], via_adapter[1])


def test_the_number_of_betas_is_the_algorithms():
    assert adapter("adan", betas=[0.9, 0.9, 0.9])["betas"] == [0.9, 0.9, 0.9]
    with pytest.raises(SpecError, match=r"^optimizer\.betas must be a list of 2 numbers \(got 3\)\.$"):
        adapter("lion", betas=[0.9, 0.99, 0.5])


@pytest.mark.parametrize(("config", "fragments"), [
    ({"algorithm": "lino"}, ["optimizer.algorithm 'lino'", "did you mean lion", "get_supported_optimizers()"]),
    ({"algorithm": "no_such_method"}, ["optimizer.algorithm 'no_such_method'", "get_supported_optimizers()"]),
    ({"algorithm": "lion", "momentum": 0.9}, ["optimizer.momentum is not a parameter of pytorch-optimizer's lion",
                                              "betas", "lr", "weight_decay"]),
    ({"algorithm": "lion", "lr": "fast"}, ["optimizer.lr must be a number"]),
    ({"algorithm": "lion", "lr": 0.0}, ["optimizer.lr must be > 0"]),
    ({"algorithm": "lomo"}, ["optimizer.algorithm 'lomo' is built from 'model'"]),
    ({"algorithm": "alig"}, ["optimizer.algorithm 'alig' has no learning rate"]),
    ({}, ["optimizer.algorithm is missing"]),
    ({"algorithm": ""}, ["optimizer.algorithm must not be empty"]),
])
def test_bad_input_is_one_sentence_naming_what_to_change(config, fragments):
    with pytest.raises(SpecError) as error:
        OPTIMIZERS.validate({"name": "pytorch_optimizer", **config})
    message = str(error.value)
    assert all(fragment in message for fragment in fragments), message
    assert message.endswith(".") and ". " not in message.replace("e.g. ", "")
