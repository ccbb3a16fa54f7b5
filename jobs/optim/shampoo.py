"""Shampoo (Gupta, Koren & Singer, ICML 2018) on one device, ours.

For a parameter of order k (a matrix: k = 2) with gradient G, one factor per
dimension i, started at ε I and summed over steps (the paper's Algorithm 2;
Algorithm 1 for matrices: L ← L + G Gᵀ, R ← R + Gᵀ G)::

    H_i ← H_i + G_(i) G_(i)ᵀ          G_(i): G unfolded along dimension i (d_i × the rest)
    θ   ← θ − lr · G ×_1 H_1^{−1/2k} ×_2 … ×_k H_k^{−1/2k}

so a matrix moves by lr · L^{−1/4} G R^{−1/4} and a vector (a bias) by
full-matrix AdaGrad's lr · H^{−1/2} g. The roots come from ``eigh``
(eigenvalues clamped at ε against rounding).

Two practical additions (``update_every`` 1 and a ``max_dim`` above every
dimension give the paper's rule): ``update_every`` recomputes the roots
every that many steps (at steps 1, 1 + k, …) and applies the last ones in
between, while the factors still take every gradient; ``max_dim`` leaves a
dimension larger than it unpreconditioned (its root is the identity, its
factor not stored), with the exponent still −1/2k. Decoupled weight decay
θ ← θ − lr · weight_decay · θ is ours too (default 0). Scalars (0-d
parameters) are treated as vectors of length 1.

Why not a library's Shampoo: pytorch-optimizer's ``Shampoo`` starts its
inverse roots at zero, so with an update interval above 1 the parameters
stand still until the first recomputation, which forces an SVD of every
factor at every step (5 s for one 2048-wide factor on a CPU thread), and its
momentum mixes the previous preconditioned step into the gradient and the
statistics, which is no rule of the paper; its ``ScalableShampoo`` keeps
Python objects in the optimizer state, which checkpoints read with
``weights_only`` cannot hold.

Defaults: roots every step, as the paper; ``max_dim`` 1024 as
Distributed Shampoo's ``max_preconditioner_dim`` (which splits larger
dimensions into blocks where this leaves them out). The paper tunes η and ε
per task; ours, lr 0.1 and ε 1e-4, train digits_mlp (5 epochs: lr 0.1 to 1
reach 94–98 % test accuracy, 0.01 barely moves).
"""

from __future__ import annotations

import torch

from jobs.optim.protocol import Closure, evaluate


def _mode_product(tensor: torch.Tensor, matrix: torch.Tensor, dim: int) -> torch.Tensor:
    """``tensor`` with ``matrix`` (d × d, symmetric) applied along dimension ``dim``."""
    moved = tensor.movedim(dim, 0)
    return (matrix @ moved.reshape(moved.shape[0], -1)).reshape(moved.shape).movedim(0, dim)


def _inverse_root(factor: torch.Tensor, power: float, eps: float) -> torch.Tensor:
    """``factor^(−1/power)`` of a symmetric positive definite factor."""
    values, vectors = torch.linalg.eigh(factor)
    return (vectors * values.clamp(min=eps).pow(-1.0 / power)) @ vectors.T


class Shampoo(torch.optim.Optimizer):
    """Shampoo (Gupta et al. 2018): Kronecker-factored full-matrix AdaGrad, one factor per tensor dimension."""

    def __init__(self, params, lr: float = 0.1, eps: float = 1e-4, update_every: int = 1, max_dim: int = 1024,
                 weight_decay: float = 0.0):
        if lr <= 0 or eps <= 0 or weight_decay < 0 or update_every < 1 or max_dim < 1:
            raise ValueError("Shampoo needs lr > 0, eps > 0, weight_decay >= 0, update_every >= 1, max_dim >= 1.")
        super().__init__(params, {"lr": lr, "eps": eps, "update_every": update_every, "max_dim": max_dim,
                                  "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure: Closure | None = None) -> torch.Tensor | None:
        loss = None if closure is None else evaluate(closure, backward=True)
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    self._update(p, group)
        return loss

    def _update(self, p: torch.Tensor, group: dict) -> None:
        grad = p.grad.reshape(p.shape or (1,))
        state = self.state[p]
        if not state:
            state["step"] = 0
            for i, size in enumerate(grad.shape):
                if size <= group["max_dim"]:
                    eye = torch.eye(size, dtype=grad.dtype, device=grad.device)
                    state[f"factor_{i}"] = group["eps"] * eye
                    state[f"root_{i}"] = eye.clone()
        state["step"] += 1
        refresh = (state["step"] - 1) % group["update_every"] == 0
        direction = grad
        for i in range(grad.dim()):
            if f"factor_{i}" not in state:
                continue
            unfolded = grad.movedim(i, 0).reshape(grad.shape[i], -1)
            state[f"factor_{i}"].addmm_(unfolded, unfolded.T)
            if refresh:
                state[f"root_{i}"] = _inverse_root(state[f"factor_{i}"], 2 * grad.dim(), group["eps"])
            direction = _mode_product(direction, state[f"root_{i}"], i)
        if group["weight_decay"]:
            p.mul_(1 - group["lr"] * group["weight_decay"])
        p.add_(direction.reshape(p.shape), alpha=-group["lr"])
