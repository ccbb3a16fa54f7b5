"""Muon (Jordan et al. 2024) for the hidden layers' weight matrices, AdamW for every other parameter.

Muon: Nesterov momentum on each weight matrix, the update replaced by its
orthogonalisation (≈ U Vᵀ of its SVD U S Vᵀ) from five Newton–Schulz
iterations, scaled by its shape. Both halves are torch's own
(``torch.optim.Muon`` and ``torch.optim.AdamW``); this module only decides
which parameter goes where and makes the pair one optimizer for the trainer.

Which parameters get Muon: every 2-D parameter except

* the parameters of embeddings (``nn.Embedding``, ``nn.EmbeddingBag``), and
* the output layer: the last ``nn.Linear`` in the model's registration order
  (``model.modules()``), weight and bias; a weight tied to an embedding is
  excluded either way.

So hidden ``nn.Linear`` weights, the first layer's included (its output is a
hidden representation), and the weight matrices of recurrent layers
(``nn.LSTM``'s ``weight_ih``/``weight_hh``) take Muon. Everything else takes
AdamW: biases, normalisation gains and shifts, embeddings, the output layer,
and convolution kernels, which are 3-D or 4-D and which ``torch.optim.Muon``
refuses (Keller Jordan's CIFAR-10 code flattens them into matrices instead).
A model with no such matrix is trained by AdamW alone.

The defaults are the Muon README's (KellerJordan/Muon): Muon lr 0.02,
momentum 0.95, Nesterov, 5 Newton–Schulz steps, weight decay 0.01; AdamW lr
3e-4, betas (0.9, 0.95), weight decay 0.01, eps 1e-10 (``MuonWithAuxAdam``).
A learning-rate schedule scales both learning rates by the same factor.

Newton–Schulz is approximate by design: its quintic iteration (coefficients
3.4445, −4.7750, 2.0315, in bfloat16) pushes the singular values towards 1
without reaching it, and leaves those of an ill-conditioned matrix's weak
directions well below. Measured on well-conditioned 16 × 32 gradients
(tests/optim/test_muon.py, 50 seeds): the update is within 0.33 of U Vᵀ in
the spectral norm, its singular values in [0.68, 1.14], and off the
gradient's singular vectors by at most 0.021 (the tests allow 0.35,
[0.65, 1.2] and 0.03).
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import nn

from jobs.optim.protocol import Closure, evaluate


def split_parameters(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """(Muon's, AdamW's) parameters of ``model``, by the rule in the module's docstring."""
    excluded = {id(p) for m in model.modules() if isinstance(m, nn.Embedding | nn.EmbeddingBag)
                for p in m.parameters()}
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if linears:
        excluded |= {id(p) for p in linears[-1].parameters()}
    hidden, other = [], []
    for p in model.parameters():
        (hidden if p.ndim == 2 and id(p) not in excluded else other).append(p)
    return hidden, other


class MuonAdamW(torch.optim.Optimizer):
    """Muon on the hidden weight matrices, AdamW elsewhere (Jordan et al. 2024); one optimizer for the trainer.

    Its ``param_groups`` are the two torch optimizers' own groups (Muon's
    first), so a scheduler reaches both; ``state_dict()`` holds each one's
    state dict under ``"muon"`` and ``"adamw"`` (a part without parameters
    is absent).
    """

    def __init__(self, model: nn.Module, lr: float = 0.02, momentum: float = 0.95, nesterov: bool = True,
                 ns_steps: int = 5, weight_decay: float = 0.01,
                 adjust_lr_fn: Literal["original", "match_rms_adamw"] = "original", adamw_lr: float = 3e-4,
                 adamw_betas: tuple[float, float] = (0.9, 0.95), adamw_eps: float = 1e-10,
                 adamw_weight_decay: float = 0.01):
        hidden, other = split_parameters(model)
        self.parts: dict[str, torch.optim.Optimizer] = {}  # Muon first: the trainer logs the first group's lr
        if hidden:
            self.parts["muon"] = torch.optim.Muon(hidden, lr=lr, weight_decay=weight_decay, momentum=momentum,
                                                  nesterov=nesterov, ns_steps=ns_steps, adjust_lr_fn=adjust_lr_fn)
        if other:
            self.parts["adamw"] = torch.optim.AdamW(other, lr=adamw_lr, betas=adamw_betas, eps=adamw_eps,
                                                    weight_decay=adamw_weight_decay)
        # The parts' group dicts themselves, not copies: what a scheduler writes into them, the parts read.
        super().__init__(self._groups(), {})

    def _groups(self) -> list[dict[str, Any]]:
        return [group for part in self.parts.values() for group in part.param_groups]

    @torch.no_grad()
    def step(self, closure: Closure | None = None) -> torch.Tensor | None:
        loss = None if closure is None else evaluate(closure, backward=True)
        for part in self.parts.values():
            part.step()
        return loss

    def state_dict(self) -> dict[str, Any]:
        return {name: part.state_dict() for name, part in self.parts.items()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if set(state_dict) != set(self.parts):
            raise ValueError(f"the state dict holds the parts {sorted(state_dict)}, this optimizer "
                             f"{sorted(self.parts)}: it comes from another model's split.")
        for name, part in self.parts.items():
            part.load_state_dict(state_dict[name])
        self.param_groups = self._groups()  # loading replaced the parts' group dicts
