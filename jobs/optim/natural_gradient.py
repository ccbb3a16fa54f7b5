"""Natural gradient descent (Amari 1998; seed 001@45k–60k, ALGORITHMS.md §3).

    θ ← θ − lr · (F + damping·I)⁻¹ ∇L

with ``F`` the Fisher of the step's minibatch, ``(1/N) Σₙ ∇ℓₙ ∇ℓₙᵀ`` at
labels drawn from the model (``fisher="true"``) or at the data's labels
("empirical"; the two differ unless the model is well specified), plus
the regulariser's Hessian (see :class:`jobs.curvature.Fisher`), and
``∇L`` the data-label gradient of the whole objective. The damping keeps
the system solvable: a minibatch Fisher has rank at most N·outputs.

``solver="exact"`` builds ``F`` column by column (one Fisher-vector
product per parameter) and solves with ``torch.linalg.solve``: small
models only. ``solver="cg"`` runs conjugate gradients on Fisher-vector
products from zero, with :func:`jobs.curvature.conjugate_gradient`'s
stopping rules.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch

from jobs.curvature import conjugate_gradient, curvature_operator, unflat
from jobs.curvature.products import FISHER_KINDS
from jobs.optim.protocol import Closure

#: The most parameters ``solver="exact"`` builds the explicit Fisher for.
MAX_EXACT_PARAMETERS = 5000
SOLVERS = ("exact", "cg")


class NaturalGradient(torch.optim.Optimizer):
    """Natural gradient steps with the minibatch's true or empirical Fisher, solved exactly or by CG.

    Defaults: ``lr=1.0`` (the full natural step) with ``damping=0.1`` (a
    minibatch Fisher is rank deficient, and ``1/damping`` bounds the step
    along its null space: on digits_cnn smaller damping diverges),
    ``cg_tolerance=1e-5`` and ``cg_max_iterations=50`` (the CG routine's
    own defaults). The hyperparameters are global: the step solves one
    system over all parameters, so param groups cannot override them.
    Cost per step: one forward pass, a few backward passes that set up
    the Fisher operator, and one Fisher-vector product (two backward-sized
    passes) per parameter (exact) or per CG iteration. The gradient comes
    from the operator's forward pass, not from ``closure()``, so the
    trainer's gradient clipping does not apply.

    ``diagnostics``: ``effective_lr`` (``lr``), ``cg_iterations`` (0 for
    exact), ``curvature_products``, ``evaluations`` (forward passes: 1).
    """

    def __init__(self, params: Iterable[Any], lr: float = 1.0, damping: float = 0.1, fisher: str = "true",
                 solver: str = "exact", cg_tolerance: float = 1e-5, cg_max_iterations: int = 50):
        if not 0.0 < lr < math.inf:
            raise ValueError(f"lr must be a finite number > 0 (got {lr!r}).")
        if not 0.0 < damping < math.inf:
            raise ValueError(f"damping must be a finite number > 0 (got {damping!r}).")
        if fisher not in FISHER_KINDS:
            raise ValueError(f"fisher must be one of {', '.join(FISHER_KINDS)} (got {fisher!r}).")
        if solver not in SOLVERS:
            raise ValueError(f"solver must be one of {', '.join(SOLVERS)} (got {solver!r}).")
        if not 0.0 < cg_tolerance < math.inf or cg_max_iterations < 1:
            raise ValueError(f"cg_tolerance must be > 0 and cg_max_iterations >= 1 (got {cg_tolerance!r}, "
                             f"{cg_max_iterations!r}).")
        defaults = {"lr": lr, "damping": damping, "fisher": fisher, "solver": solver, "cg_tolerance": cg_tolerance,
                    "cg_max_iterations": cg_max_iterations}
        super().__init__(params, defaults)
        size = sum(p.numel() for p in self._params())
        if solver == "exact" and size > MAX_EXACT_PARAMETERS:
            raise ValueError(f"solver=exact builds the explicit {size}x{size} Fisher, which is too large above "
                             f"{MAX_EXACT_PARAMETERS} parameters; use solver=cg.")
        self.diagnostics: dict[str, float | int] = {}

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        for key, default in self.defaults.items():
            if key in param_group and param_group[key] != default:
                raise ValueError(f"NaturalGradient solves one system over all parameters; set {key} in the "
                                 "constructor, not per param group.")
        super().add_param_group(param_group)

    def _params(self) -> list[torch.Tensor]:
        return [p for group in self.param_groups for p in group["params"] if p.requires_grad]

    def step(self, closure: Closure | None = None) -> torch.Tensor:  # type: ignore[override]
        if closure is None or not hasattr(closure, "model_output"):
            raise ValueError("NaturalGradient needs a closure with model_output() (the trainer's, or "
                             "jobs.curvature.SupervisedClosure).")
        hyper, params = self.param_groups[0], self._params()
        operator = curvature_operator(closure, params, "fisher", hyper["fisher"])
        damping = hyper["damping"]
        if hyper["solver"] == "exact":
            matrix = operator.dense()
            matrix.diagonal().add_(damping)
            direction, iterations = torch.linalg.solve(matrix, operator.gradient), 0
        else:
            result = conjugate_gradient(lambda v: operator.matvec(v) + damping * v, operator.gradient,
                                        tolerance=hyper["cg_tolerance"], max_iterations=hyper["cg_max_iterations"])
            direction, iterations = result.solution, result.iterations
        with torch.no_grad():
            torch._foreach_add_(params, unflat(direction, params), alpha=-hyper["lr"])
        self.diagnostics = {"effective_lr": hyper["lr"], "cg_iterations": iterations,
                            "curvature_products": operator.products, "evaluations": 1}
        return operator.loss
