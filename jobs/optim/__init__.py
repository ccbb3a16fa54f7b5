"""The shared optimizer core: every optimizer is a ``torch.optim.Optimizer``.

The trainer and the optimizers talk through the closure protocol and its
optional hooks (fresh minibatches, the training length, per-step
diagnostics): :mod:`jobs.optim.protocol`. A user's own optimizer follows
the same protocol, as a plugin (see :mod:`jobs.plugins` and the README's
"Benchmark your optimizer").

From torch.optim, through the registry: SGD (momentum, Nesterov), Adam,
AdamW, NAdam (NAdamW), RAdam, Adafactor, AdaGrad, RMSProp; from packages:
Schedule-Free SGD and AdamW (``schedulefree``), Lion, SOAP and the rest of
pytorch-optimizer (:mod:`jobs.library_optimizers`). Our own: PAL, LABPAL,
SLS, GOLSI (GOLS-I), PLS, SGDHD (SGD-HD), ALIG (ALI-G), COCOB
(COCOB-Backprop), MuonAdamW (torch's Muon with AdamW, built from the model),
Shampoo, KFAC (K-FAC, built from the model), NaturalGradient, NewtonCG
(Newton-CG / Hessian-free), Preconditioner, PreconditionedSGD and
AdaptiveSGD (probabilistic preconditioning).
"""

from __future__ import annotations

import importlib
from typing import Any

#: Public name -> defining module; imported on first access.
_EXPORTS = {
    "PAL": "jobs.optim.pal",
    "LABPAL": "jobs.optim.labpal",
    "SLS": "jobs.optim.sls",
    "GOLSI": "jobs.optim.gols",
    "PLS": "jobs.optim.pls",
    "SGDHD": "jobs.optim.sgd_hd",
    "ALIG": "jobs.optim.alig",
    "COCOB": "jobs.optim.cocob",
    "MuonAdamW": "jobs.optim.muon",
    "Shampoo": "jobs.optim.shampoo",
    "NewtonCG": "jobs.optim.newton_cg",
    "KFAC": "jobs.optim.kfac",
    "NaturalGradient": "jobs.optim.natural_gradient",
    "Preconditioner": "jobs.optim.preconditioning",
    "PreconditionedSGD": "jobs.optim.preconditioning",
    "AdaptiveSGD": "jobs.optim.preconditioning",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    # Lazy, so that importing jobs.optim.registry (config validation) never imports torch.
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
