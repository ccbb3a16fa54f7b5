"""Newton-CG / Hessian-free: CG on damped curvature products, globalised by a fallback and a step-size rule.

The globalised Newton method of the second-order thesis (seed ``002``, §9.2,
Algorithm 4; the thesis calls it quasi-Newton). Per step, on the step's
minibatch with loss f, gradient g and curvature matrix B (the Hessian or the
generalised Gauss-Newton matrix):

    the first ``pretrain_steps`` steps:  θ ← θ − pretrain_lr · g      (plain gradient descent)
    then:  solve (B + λI) s = −g by CG        (tolerance · √n, iteration cap, stop at pᵀ(B + λI)p ≤ 0)
           s ← −g  if gᵀs > T                 (T < 0: the fallback to a safe descent direction)
           σ = lr (fixed step), or the first σ in {lr, lr·β, lr·β², …} with
               f(θ + σs) ≤ f(θ) + c·σ·gᵀs     (Armijo backtracking on the same minibatch)
           θ ← θ + σ s

The standard Hessian-free additions (Martens 2010, "Deep learning via
Hessian-free optimization"), each a switch:

* ``adapt_damping``: Levenberg–Marquardt adaptation of λ from the reduction
  ratio ρ = (f(θ + σs) − f(θ)) / (q(σs) − q(0)): ρ > ¾ → λ ← ⅔λ, ρ < ¼ → λ ← 3/2·λ.
* ``warm_start``: CG starts from the previous step's last CG iterate times 0.95.
* ``cg_backtracking``: CG keeps its iterates at iterations ⌈1.3ʲ⌉; the step
  goes along the one with the lowest minibatch loss, searched from the last
  iterate backwards while the loss keeps falling.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch

from jobs.curvature import CGResult, CurvatureOperator, conjugate_gradient, curvature_operator, flat, unflat
from jobs.optim.line_search import LineSearchOptimizer
from jobs.optim.protocol import Closure, evaluate
from jobs.optim.vectors import copies, finite, place

STEP_RULES = ("armijo", "fixed")
CURVATURES = ("hessian", "ggn")
#: ``diagnostics["cg_reason"]`` is the index of CG's stopping reason here (-1: no CG in this step).
CG_REASONS = ("converged", "max_iterations", "negative_curvature")
#: Martens 2010: CG starts from the previous solution times this.
WARM_START_DECAY = 0.95
#: Martens 2010: CG-iteration backtracking keeps the iterates at iterations ⌈1.3ʲ⌉.
BACKTRACKING_SPACING = 1.3
#: Martens 2010's Levenberg–Marquardt rule: (ρ below which λ grows, ρ above which it shrinks), and the factors.
RHO_LOW, RHO_HIGH = 0.25, 0.75
DAMPING_GROWTH, DAMPING_SHRINK = 1.5, 2.0 / 3.0


def backtracking_counts(max_iterations: int, spacing: float = BACKTRACKING_SPACING) -> list[int]:
    """The CG iteration counts ⌈spacingʲ⌉ (j = 0, 1, …) up to ``max_iterations``, whose iterates backtracking keeps."""
    counts, power = set(), 1.0
    while math.ceil(power) <= max_iterations:
        counts.add(math.ceil(power))
        power *= spacing
    return sorted(counts)


@dataclass(frozen=True)
class KrylovModel:
    """The undamped quadratic model's change ``q(x) − q(0) = gᵀx + ½ xᵀBx`` at CG's iterates, with no products.

    CG on ``A x = b`` (``A = B + λI``, ``b = −g``) from ``x0`` keeps each
    residual orthogonal to the steps taken so far (the Galerkin condition),
    so every iterate ``x`` has ``φ(x) = φ(x0) − ½ r0ᵀ(x − x0)`` for
    ``φ(x) = ½ xᵀAx − bᵀx``, with ``r0 = b − A x0`` and
    ``φ(x0) = −½ x0ᵀ(b + r0)``; and ``q(x) − q(0) = φ(x) − ½λ‖x‖²``. This
    holds for the iterates CG returns or keeps, not for the ``b`` it
    returns when its first direction has no positive curvature.
    """

    b: torch.Tensor
    x0: torch.Tensor
    r0: torch.Tensor
    damping: float

    @classmethod
    def start(cls, b: torch.Tensor, x0: torch.Tensor | None, damped: Callable[[torch.Tensor], torch.Tensor],
              damping: float) -> KrylovModel:
        """The model of CG's run from ``x0`` (None: 0); a warm start costs one product for ``r0``."""
        if x0 is None:
            return cls(b, torch.zeros_like(b), b, damping)
        return cls(b, x0, b - damped(x0), damping)

    def describes(self, result: CGResult) -> bool:
        """Whether ``result.solution`` is a Krylov iterate (not the ``b`` CG returns when it cannot take a step)."""
        returned_b = result.reason == "negative_curvature" and result.iterations == 0 and not bool(self.x0.any())
        return not returned_b

    def change(self, x: torch.Tensor) -> float:
        """``q(x) − q(0)`` for a CG iterate ``x``."""
        phi_start = -0.5 * float(self.x0 @ (self.b + self.r0))
        phi = phi_start - 0.5 * float(self.r0 @ (x - self.x0))
        return phi - 0.5 * self.damping * float(x @ x)


class _Line:
    """The minibatch loss at ``θ + σ d`` from the step's start ``θ``, each point evaluated once (one forward pass).

    A non-finite loss reads as ``inf``, so comparisons treat it as worse than any finite one.
    """

    def __init__(self, closure: Closure, params: list[torch.Tensor]):
        self.closure, self.params, self.origin = closure, params, copies(params)
        self.evaluations = 0
        self.direction: list[torch.Tensor] = []
        self.known: dict[float, float] = {}

    def along(self, direction: torch.Tensor, known: dict[float, float] | None = None) -> None:
        """Look along the flat ``direction`` from now on; ``known``: losses already measured on it, by σ."""
        self.direction, self.known = unflat(direction, self.params), dict(known or {})

    def loss(self, sigma: float) -> float:
        if sigma not in self.known:
            place(self.params, self.origin, self.direction, sigma)
            value = evaluate(self.closure, backward=False).item()
            self.evaluations += 1
            self.known[sigma] = value if math.isfinite(value) else math.inf
        return self.known[sigma]

    def move(self, sigma: float) -> None:
        """Leave the parameters at ``θ + σ d`` (at ``θ`` for σ = 0)."""
        place(self.params, self.origin, self.direction, sigma)


class NewtonCG(LineSearchOptimizer):
    """Newton-CG / Hessian-free optimization; needs a closure with the curvature protocol (:mod:`jobs.curvature`).

    With ``curvature="hessian"`` the closure must offer ``loss_with_graph()``,
    with ``"ggn"`` ``model_output()``; the trainer's closure and
    :class:`jobs.curvature.SupervisedClosure` offer both. One forward pass
    with its graph gives the loss, the gradient and every curvature product
    of the step; the line search, the damping adaptation and CG-iteration
    backtracking add one forward pass per point they measure.

    Defaults: ``lr=1`` (the Newton step), Armijo with ``c=1e-4`` and halving
    (Nocedal & Wright's usual choices; the thesis fixes no values), at most
    20 reductions; the thesis's Hessian with a small Tikhonov damping
    ``1e-3`` (its §7.2) and no adaptation; CG to a residual of ``1e-5·√n``
    or 50 iterations; ``T = −1e-10`` (the thesis asks only for T < 0:
    directions that do not clearly descend fall back to −g); no
    pre-training (``pretrain_lr=0.01`` is SGD's default here).
    ``conf/optimizer/hessian_free.yaml`` switches the Martens additions on.

    Choices where the sources leave room:

    * When no σ satisfies the Armijo condition within ``max_backtracks``
      reductions, θ stays where it was (no step; ``effective_lr`` 0).
    * ρ uses the undamped model ``q(p) = f + gᵀp + ½pᵀBp`` and the step
      actually taken, σs. Its denominator comes from CG's own iterates
      (:class:`KrylovModel`), so it costs no product, except one for a warm
      start. The damping grows by 3/2 also when no model step was taken:
      no σ accepted, the fallback to −g, or CG's first direction already
      without positive curvature (the damping was too small to make the
      system positive definite). A zero damping cannot be scaled, so
      ``adapt_damping`` needs ``damping > 0``.
    * CG warm-starts from its previous *last* iterate, not the one
      backtracking chose (Martens 2010), and from 0 on the first Newton step.
    * CG-iteration backtracking measures the last iterate first; with
      ``lr=1`` the Armijo search reuses that measurement.
    * A non-finite loss or gradient at θ takes no step.
    * The gradient is the operator's, from the closure's curvature
      evaluation: a trainer's gradient clipping (applied in
      ``closure()``) does not reach it. Curvature products are not forward
      or backward passes of the closure; ``curvature_products`` counts
      them (each costs about one backward pass).
    * The hyperparameters are global (one system over all parameters);
      ``lr`` lives in the param groups, so learning-rate schedules scale it.
      Parameters with ``requires_grad=False`` take no part.

    State (in ``state_dict()``): the step count, the current damping and, with
    ``warm_start``, the last CG solution. ``diagnostics``: ``loss``,
    ``grad_norm``, ``effective_lr`` (σ), ``step_norm`` (‖σs‖), ``slope``
    (gᵀs), ``cg_iterations``, ``cg_residual``, ``cg_reason`` (index into
    :data:`CG_REASONS`), ``cg_iterate`` (the CG iteration the step came
    from), ``damping`` (the λ of this step's system), ``rho`` (NaN when not
    measured), ``fallback`` (1 when the step went along −g),
    ``backtracks``, ``curvature_products``, ``evaluations`` (forward
    passes) and ``pretraining`` (1 for a gradient-descent step).
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1.0,
        step: str = "armijo",
        armijo_c: float = 1e-4,
        armijo_shrink: float = 0.5,
        max_backtracks: int = 20,
        curvature: str = "hessian",
        damping: float = 1e-3,
        adapt_damping: bool = False,
        cg_tolerance: float = 1e-5,
        cg_max_iterations: int = 50,
        warm_start: bool = False,
        cg_backtracking: bool = False,
        descent_threshold: float = -1e-10,
        pretrain_steps: int = 0,
        pretrain_lr: float = 0.01,
    ):
        if not 0.0 < lr < math.inf:
            raise ValueError(f"lr must be a finite number > 0 (got {lr!r}).")
        if step not in STEP_RULES:
            raise ValueError(f"step must be one of {', '.join(STEP_RULES)} (got {step!r}).")
        if not 0.0 < armijo_c < 1.0:
            raise ValueError(f"armijo_c must be in (0, 1) (got {armijo_c!r}).")
        if not 0.0 < armijo_shrink < 1.0:
            raise ValueError(f"armijo_shrink must be in (0, 1) (got {armijo_shrink!r}).")
        if max_backtracks < 0:
            raise ValueError(f"max_backtracks must be >= 0 (got {max_backtracks!r}).")
        if curvature not in CURVATURES:
            raise ValueError(f"curvature must be one of {', '.join(CURVATURES)} (got {curvature!r}).")
        if not 0.0 <= damping < math.inf:
            raise ValueError(f"damping must be a finite number >= 0 (got {damping!r}).")
        if adapt_damping and damping == 0.0:
            raise ValueError("adapt_damping needs damping > 0, since the adaptation multiplies it (got damping=0).")
        if not cg_tolerance > 0.0:
            raise ValueError(f"cg_tolerance must be > 0 (got {cg_tolerance!r}).")
        if cg_max_iterations < 1:
            raise ValueError(f"cg_max_iterations must be >= 1 (got {cg_max_iterations!r}).")
        if not descent_threshold < 0.0:
            raise ValueError(f"descent_threshold must be < 0 (got {descent_threshold!r}).")
        if pretrain_steps < 0:
            raise ValueError(f"pretrain_steps must be >= 0 (got {pretrain_steps!r}).")
        if not 0.0 < pretrain_lr < math.inf:
            raise ValueError(f"pretrain_lr must be a finite number > 0 (got {pretrain_lr!r}).")
        defaults = {
            "lr": lr, "step": step, "armijo_c": armijo_c, "armijo_shrink": armijo_shrink,
            "max_backtracks": max_backtracks, "curvature": curvature, "damping": damping,
            "adapt_damping": adapt_damping, "cg_tolerance": cg_tolerance, "cg_max_iterations": cg_max_iterations,
            "warm_start": warm_start, "cg_backtracking": cg_backtracking, "descent_threshold": descent_threshold,
            "pretrain_steps": pretrain_steps, "pretrain_lr": pretrain_lr,
        }
        super().__init__(params, defaults)

    @property
    def damping(self) -> float:
        """The λ the next Newton step solves with (adapted, with ``adapt_damping``)."""
        return self.global_state.get("damping", self.hyper["damping"])

    def step(self, closure: Closure | None = None) -> torch.Tensor:  # type: ignore[override]
        closure = self.require(closure)
        state = self.global_state
        state["step"] = state.get("step", 0) + 1
        if state["step"] <= self.hyper["pretrain_steps"]:
            return self._gradient_descent_step(closure)
        return self._newton_step(closure)

    # -- the two kinds of step ------------------------------------------------------------------
    def _gradient_descent_step(self, closure: Closure) -> torch.Tensor:
        """Pre-training: ``θ ← θ − pretrain_lr · g``, the update of ``torch.optim.SGD`` without momentum."""
        lr = self.hyper["pretrain_lr"]
        loss = evaluate(closure, backward=True)
        params = self.params_with_grad()
        gradients = [p.grad for p in params]
        with torch.no_grad():
            torch._foreach_add_(params, gradients, alpha=-lr)
        grad_norm = float(flat(gradients).norm()) if params else 0.0
        self._report(loss=loss.item(), grad_norm=grad_norm, effective_lr=lr, step_norm=lr * grad_norm,
                     slope=-grad_norm**2, evaluations=1, pretraining=1)
        return loss

    def _newton_step(self, closure: Closure) -> torch.Tensor:
        h = self.hyper
        params = [p for p in self.all_params() if p.requires_grad]
        operator = self._operator(closure, params)
        loss, gradient = operator.loss, operator.gradient
        f0, gg = loss.item(), float(gradient @ gradient)
        damping = self.damping
        if not finite(f0, gg):
            self._report(loss=f0, grad_norm=math.sqrt(gg) if gg >= 0 else math.nan, damping=damping, evaluations=1)
            return loss

        b = gradient.neg()
        result, model = self._solve(operator, params, b, damping)
        line = _Line(closure, params)
        direction, iterate = result.solution, result.iterations
        if h["cg_backtracking"]:
            direction, iterate = self._backtrack_cg(result, line)
        else:
            line.along(direction)
        slope = float(gradient @ direction)
        fallback = not slope <= h["descent_threshold"]  # NaN falls back too
        if fallback:
            direction, slope = b, -gg
            line.along(direction)

        if h["step"] == "fixed":
            sigma, backtracks = h["lr"], 0
        else:
            sigma, backtracks = self._armijo(line, f0, slope)

        rho = math.nan
        if model is not None:
            if sigma > 0.0 and not fallback and model.describes(result):
                rho = self._reduction_ratio(model, direction, slope, sigma, line.loss(sigma) - f0)
            self.global_state["damping"] = damping * self._damping_factor(rho)
        line.move(sigma)

        self._report(
            loss=f0, grad_norm=math.sqrt(gg), effective_lr=sigma, step_norm=sigma * float(direction.norm()),
            slope=slope, cg_iterations=result.iterations, cg_residual=result.residual_norm,
            cg_reason=CG_REASONS.index(result.reason), cg_iterate=0 if fallback else iterate, damping=damping,
            rho=rho, fallback=int(fallback), backtracks=backtracks, curvature_products=operator.products,
            evaluations=1 + line.evaluations,
        )
        return loss

    # -- pieces of a Newton step ----------------------------------------------------------------
    def _operator(self, closure: Closure, params: list[torch.Tensor]) -> CurvatureOperator:
        kind = self.hyper["curvature"]
        needed = "loss_with_graph" if kind == "hessian" else "model_output"
        if not callable(getattr(closure, needed, None)):
            raise ValueError(f"NewtonCG with curvature={kind!r} needs a closure with {needed}(), such as the "
                             "trainer's or jobs.curvature.SupervisedClosure.")
        return curvature_operator(closure, params, kind)

    def _solve(self, operator: CurvatureOperator, params: list[torch.Tensor], b: torch.Tensor,
               damping: float) -> tuple[CGResult, KrylovModel | None]:
        """CG on ``(B + λI) s = b``, remembering its solution for a warm start; the model when LM needs it."""
        h = self.hyper

        def damped(vector: torch.Tensor) -> torch.Tensor:
            return operator.matvec(vector).add_(vector, alpha=damping)

        x0 = self._warm_start(params) if h["warm_start"] else None
        model = KrylovModel.start(b, x0, damped, damping) if h["adapt_damping"] else None
        keep = backtracking_counts(h["cg_max_iterations"]) if h["cg_backtracking"] else ()
        result = conjugate_gradient(damped, b, x0, tolerance=h["cg_tolerance"], max_iterations=h["cg_max_iterations"],
                                    keep=keep)
        if h["warm_start"]:
            for p, piece in zip(params, unflat(result.solution, params), strict=True):
                self.state[p]["cg_solution"] = piece.clone()
        return result, model

    def _warm_start(self, params: list[torch.Tensor]) -> torch.Tensor | None:
        """The previous CG solution times :data:`WARM_START_DECAY`; None (start from 0) before the first."""
        pieces = [self.state[p].get("cg_solution") for p in params]
        if any(piece is None for piece in pieces):
            return None
        return flat(pieces).mul_(WARM_START_DECAY)

    @staticmethod
    def _backtrack_cg(result: CGResult, line: _Line) -> tuple[torch.Tensor, int]:
        """Martens 2010: from CG's last iterate back through the kept ones, while the minibatch loss keeps falling.

        Leaves ``line`` along the chosen iterate, with its measured loss at σ = 1.
        """
        best, best_iteration = result.solution, result.iterations
        line.along(best)
        best_loss = line.loss(1.0)
        for iteration in sorted((k for k in result.iterates if k < result.iterations), reverse=True):
            line.along(result.iterates[iteration])
            candidate_loss = line.loss(1.0)
            if not candidate_loss < best_loss:
                break
            best, best_iteration, best_loss = result.iterates[iteration], iteration, candidate_loss
        line.along(best, known={1.0: best_loss})
        return best, best_iteration

    def _armijo(self, line: _Line, f0: float, slope: float) -> tuple[float, int]:
        """The first ``σ = lr·βᵏ`` with ``f(θ + σs) ≤ f(θ) + c·σ·gᵀs``, and k; ``(0, max_backtracks)`` if none."""
        h = self.hyper
        sigma = h["lr"]
        for backtracks in range(h["max_backtracks"] + 1):
            if backtracks:
                sigma *= h["armijo_shrink"]
            if line.loss(sigma) <= f0 + h["armijo_c"] * sigma * slope:
                return sigma, backtracks
        return 0.0, h["max_backtracks"]

    @staticmethod
    def _reduction_ratio(model: KrylovModel, direction: torch.Tensor, slope: float, sigma: float,
                         actual: float) -> float:
        """ρ = actual change / the undamped model's change ``σ gᵀs + ½σ² sᵀBs`` (NaN unless the model descends)."""
        curvature = 2.0 * (model.change(direction) - slope)  # sᵀBs
        predicted = sigma * slope + 0.5 * sigma**2 * curvature
        return actual / predicted if predicted < 0.0 else math.nan

    @staticmethod
    def _damping_factor(rho: float) -> float:
        """Martens 2010's Levenberg–Marquardt rule; an unmeasured ρ (NaN) counts as a failed step."""
        if rho > RHO_HIGH:
            return DAMPING_SHRINK
        if rho >= RHO_LOW:
            return 1.0
        return DAMPING_GROWTH

    def _report(self, *, loss: float, grad_norm: float, effective_lr: float = 0.0, step_norm: float = 0.0,
                slope: float = 0.0, cg_iterations: int = 0, cg_residual: float = 0.0, cg_reason: int = -1,
                cg_iterate: int = 0, damping: float | None = None, rho: float = math.nan, fallback: int = 0,
                backtracks: int = 0, curvature_products: int = 0, evaluations: int = 0,
                pretraining: int = 0) -> None:
        self.diagnostics = {
            "loss": loss,
            "grad_norm": grad_norm,
            "effective_lr": effective_lr,
            "step_norm": step_norm,
            "slope": slope,
            "cg_iterations": cg_iterations,
            "cg_residual": cg_residual,
            "cg_reason": cg_reason,
            "cg_iterate": cg_iterate,
            "damping": self.damping if damping is None else damping,
            "rho": rho,
            "fallback": fallback,
            "backtracks": backtracks,
            "curvature_products": curvature_products,
            "evaluations": evaluations,
            "pretraining": pretraining,
        }
