"""Any optimizer of the pytorch-optimizer collection, through one registry entry.

    optbench launch optimizer=pytorch_optimizer optimizer.algorithm=adan +optimizer.lr=0.001

``optimizer.algorithm`` names the class as ``pytorch_optimizer.load_optimizer``
does (lower case; ``pytorch_optimizer.get_supported_optimizers()`` lists the
names). Its hyperparameters are its constructor's, read and checked the way
a plugin's are (:func:`jobs.plugins.schema_of`); the config file lists none of
them, so they are set with a leading ``+``. Those a config leaves out take
the class's defaults when the run builds it: the spec, and so the run id,
holds only what was set.

Refused at validation: algorithms built from something other than the
parameters (a model, another optimizer: LOMO, AdaLOMO, Adam-mini, Magma) and
algorithms without a learning rate, which the trainer's schedule needs.
Algorithms that want more than the closure's loss and gradient (AdaHessian's
second backward pass through ``create_graph``, the SAM family's two-pass
step) validate and may fail at their first step; those that keep Python
objects in their state (ScalableShampoo) train but cannot be checkpointed.

Validating such a config imports pytorch-optimizer, and so torch, as a
plugin's does.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Iterable, Mapping
from dataclasses import replace
from functools import cache
from typing import Any

from jobs import plugins
from jobs.schema import Param, SpecError

LISTING = "python -c 'import pytorch_optimizer; print(pytorch_optimizer.get_supported_optimizers())'"


def algorithm_class(name: str) -> type:
    """The class ``optimizer.algorithm`` names; one :class:`SpecError` sentence for a name it is not."""
    try:
        import pytorch_optimizer
    except ImportError:
        raise SpecError("optimizer=pytorch_optimizer needs the pytorch-optimizer package; install it with "
                        "pip install pytorch-optimizer.") from None
    names = pytorch_optimizer.get_supported_optimizers()
    if name not in names:
        close = difflib.get_close_matches(name.lower(), names, n=3)
        hint = f" (did you mean {' or '.join(close)}?)" if close else ""
        raise SpecError(f"optimizer.algorithm {name!r} is not an optimizer of pytorch-optimizer{hint}; list the names "
                        f"with {LISTING}.")
    return pytorch_optimizer.load_optimizer(name)


@cache
def algorithm_params(name: str) -> dict[str, Param]:
    """The hyperparameters of algorithm ``name``, from its constructor's signature."""
    cls = algorithm_class(name)
    first = next(iter(inspect.signature(cls).parameters))
    if first != "params":
        raise SpecError(f"optimizer.algorithm {name!r} is built from {first!r}, not from the model's parameters, "
                        "which the adapter cannot give it; choose another algorithm.")
    params, defaults = plugins.schema_of(cls, (first,), f"pytorch-optimizer's {name}")
    if "lr" not in params:
        raise SpecError(f"optimizer.algorithm {name!r} has no learning rate, which the trainer's schedule sets; "
                        "choose another algorithm.")
    return {key: _narrowed(key, param, defaults.get(key)) for key, param in params.items()}


def _narrowed(key: str, param: Param, default: Any) -> Param:
    """What the signature cannot say: a positive lr, a non-negative decay, as many betas as the default has."""
    if key == "lr":
        return replace(param, low=0.0, low_open=True)
    if key == "weight_decay":
        return replace(param, low=0.0)
    if param.kind == "floats" and param.length is None and isinstance(default, list):
        return replace(param, length=len(default))
    return param


def open_params(fixed: Mapping[str, Any]) -> tuple[str, Mapping[str, Param]]:
    """For the registry: who the hyperparameters belong to, in words, and their schema."""
    return f"pytorch-optimizer's {fixed['algorithm']}", algorithm_params(fixed["algorithm"])


def build(params: Iterable[Any], algorithm: str, **hyperparameters: Any):
    """The algorithm's optimizer over ``params``, with the hyperparameters a validated config set."""
    return algorithm_class(algorithm)(params, **hyperparameters)
