"""Probabilistic preconditioning (de Roos & Hennig, AISTATS 2019, arXiv:1902.07557), as seed ``000`` uses it.

Every so often the optimizer infers a low-rank estimate of the Hessian B
from a few noisy Hessian-vector products on training minibatches, sets the
inner optimizer's learning rate from the estimate and preconditions the
gradients with its inverse. Seed 000 (Bald's thesis, §3.2, §4.1) wraps
the method around ``torch.optim.SGD`` as ``PreconditionedSGD`` and, with
the preconditioner switched off, ``AdaptiveSGD``; its defaults are
``num_observations=10``, ``prior_iterations=5``, ``est_rank=2``.

One estimate, on the step closures' consecutive minibatches (one
observation each, as seed 000 gathers them):

1. Prior (``prior_iterations`` = P steps). On each batch i a product
   ``yᵢ = Hᵢ u`` along one probe ``u``, the first batch's normalised
   gradient. The prior over the symmetric Hessian is the matrix normal
   ``N(B; β I, W ⊛ W)`` with ``W = w I``: ``β = Σ‖yᵢ‖² / |Σ uᵀyᵢ|``, the
   curvature scale whose inverse ``α = 1/β = Σ uᵀyᵢ / Σ‖yᵢ‖²`` (the step
   that best maps ``yᵢ`` back to ``u``) is the learning rate, as in seed
   000's code; ``w = |Σ uᵀyᵢ| / P``, the mean Rayleigh quotient. The
   products' spread gives the observation noise ``ν = Σ‖yᵢ − ȳ‖² / (n (P − 1))``
   per coordinate of a product along a unit vector (0 when P = 1). The
   first observation is ``(u, ȳ)``, with noise ``ν / P``.
2. Active observations (``num_observations − 1`` steps). On batch k the
   direction is the estimated inverse applied to that batch's gradient,
   ``s ∝ P̂⁻¹ gₖ`` (the paper's choice, like a linear solver's), then
   orthogonalised against the directions already observed and normalised,
   and ``yₖ = Hₖ s``.
3. Posterior mean. With the observations ``Y = B S + E``, ``S``'s columns
   the unit directions and ``E``'s column k noise ``N(0, νₖ I)``, the
   posterior mean of B is (MAP = mean, since everything is Gaussian)

       B̂ = argmin over symmetric X of  ‖X − βI‖²_F / w² + Σₖ ‖X sₖ − yₖ‖² / νₖ,

   in closed form ``B̂ = β I + w² sym(Z Sᵀ)``, Z (n × m) solving
   ``(w²/2)(Z SᵀS + S ZᵀS) + Z diag(ν) = Y − βS`` (the Gram matrix of
   ``W ⊛ W`` applied to Z, plus the noise). With ``S = QR`` the part of Z
   orthogonal to S is ``(I − QQᵀ)(Y − βS) ((w²/2) SᵀS + diag ν)⁻¹`` and the
   rest an m²-dimensional linear system. Noise-free (ν = 0) this is
   Hennig's (2015) symmetric posterior mean: ``B̂ S = Y`` exactly.
4. Low rank. ``B̂ − βI`` has rank ≤ 2m; its eigen-decomposition is taken in
   the span of ``[S, Z]`` and the ``est_rank`` largest eigenvalues λᵢ with
   their eigenvectors uᵢ are kept. Outside them the estimate is β.
5. Preconditioner, "identity scaled outside the estimated subspace":

       P̂⁻¹ = Σᵢ uᵢuᵢᵀ / max(λᵢ, β) + α (I − Σᵢ uᵢuᵢᵀ),

   applied as the inner optimizer's gradient ``g̃ = P̂⁻¹g / α = g + Σᵢ (β/max(λᵢ, β) − 1)(uᵢᵀg) uᵢ``
   with learning rate α, so an SGD step is ``−P̂⁻¹g``.

Choices where the sources leave room (seed 000's code is internally
inconsistent here, the paper is terse):

* The prior mean is ``βI``, the matrix whose inverse is the learning
  rate, so that the estimate, the learning rate and the preconditioner
  agree outside the observed subspace.
* All prior products go along one probe (seed 000 takes each batch's own
  gradient): the spread of products along a common direction is the
  noise estimate, and their mean is a consistent first observation.
* The noise is independent per observation (seed 000 keeps only the
  diagonal of ``SᵀΛS`` too), so near-parallel directions with differing
  products are read as noise, not as steep curvature.
* Directions are orthogonalised (as in Lanczos/CG): each adds a new
  dimension, and in the noise-free case S spans the Krylov space of the
  gradient, whose top Ritz values converge fast. A direction with
  nothing new in it (the subspace is invariant) ends the estimate early.
* Eigenvalues below β (and negative ones) keep the step α: the
  preconditioner only shortens steps along the steep directions, so
  noise in a flat estimate cannot lengthen a step beyond α.
* While an estimate is gathered the parameters keep training with the
  previous estimate (learning rate and preconditioner). Before the first
  estimate there is none: with ``lr`` given, plain inner steps with it;
  with ``lr=None`` (the default) the parameters hold still, as in seed
  000, where no step is taken while estimating.
* On estimation steps the gradient is the one of the forward pass that
  gives the Hessian products (``closure.loss_with_graph()``, one forward
  pass per step as elsewhere; trainer-side gradient clipping does not
  apply to it).

Re-estimation (``update``): ``"epoch"`` (seed 000's, the default) starts
an estimate at every epoch start, ``"steps"`` every ``update_every``
steps, ``"auto"`` when a quality check fails. The check runs every
``update_every`` steps: one product ``y = H u`` along the step's
normalised gradient gives the same statistic the prior is made of,
``‖y‖² / |uᵀy|``, on a fresh batch and direction; when it differs from the
estimate's β by more than ``check_factor`` either way, the estimate is out
of date and a new one starts, with this product as its first prior
iteration. (Like with like: for a unit u, ``uᵀHu ≤ ‖Hu‖² / uᵀHu``, and for
a gradient spread over the spectrum the Rayleigh quotient lies far below
β, so comparing it with the estimate would flag even a fresh one.)
``update_every=None`` means one epoch, from :meth:`set_training_length`.
A schedule that falls due while an estimate is still being gathered
waits for the next due step.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from jobs.curvature import CurvatureOperator, Hessian, unflat
from jobs.optim.protocol import Closure, evaluate

log = logging.getLogger(__name__)

UPDATES = ("epoch", "steps", "auto")


# -- inference: pure functions on flat vectors ----------------------------------------------------------------------
@dataclass(frozen=True)
class Spectrum:
    """The symmetric ``scale · I + Σᵢ (valuesᵢ − scale) vectorsᵢ vectorsᵢᵀ``; orthonormal vectors, values descending."""

    scale: float
    values: torch.Tensor  # (k,)
    vectors: torch.Tensor  # (n, k)

    def top(self, rank: int) -> Spectrum:
        return Spectrum(self.scale, self.values[:rank], self.vectors[:, :rank])

    def shrink_factors(self) -> torch.Tensor:
        """``β / max(λᵢ, β)``: how much the preconditioner shortens the step along each eigenvector."""
        return self.scale / self.values.clamp(min=self.scale)

    def precondition(self, vector: torch.Tensor) -> torch.Tensor:
        """``β P̂⁻¹ v = v + Σᵢ (β / max(λᵢ, β) − 1)(uᵢᵀv) uᵢ``: the identity outside the eigenvectors."""
        coefficients = (self.shrink_factors() - 1.0) * (self.vectors.T @ vector)
        return vector + self.vectors @ coefficients


def posterior_mean(directions: torch.Tensor, products: torch.Tensor, prior_mean: float, prior_variance: float,
                   noise: torch.Tensor) -> Spectrum:
    """The posterior mean of a symmetric B under ``N(B; prior_mean·I, w²·(I ⊛ I))``, ``w² = prior_variance``.

    Observations ``products = B directions + E`` with column k of E drawn from
    ``N(0, noise[k] · I)``; see the module docstring, step 3, for the
    formulas. Returns the eigen-decomposition of the mean in the span of the
    data (outside it the mean is ``prior_mean``). Small matrices are handled
    in float64; the tolerance for dependent directions follows the data's
    precision.
    """
    dtype, small = directions.dtype, {"dtype": torch.float64, "device": directions.device}
    m = directions.shape[1]
    rtol = 2 * m * torch.finfo(dtype).eps
    q, r = torch.linalg.qr(directions)
    residual = products - prior_mean * directions
    along = q.T @ residual
    across = residual - q @ along
    r64 = r.double()
    gram = r64.T @ r64
    noise_matrix = torch.diag(noise.double())
    across_weights = _psd_pinv(prior_variance / 2 * gram + noise_matrix, rtol)
    # The components along Q: A (m × m) with (w²/2)(A SᵀS + R Aᵀ R) + A diag(ν) = Qᵀ(Y − βS), one equation per entry.
    units = torch.eye(m * m, **small).reshape(m * m, m, m)
    images = prior_variance / 2 * (units @ gram + r64 @ units.transpose(1, 2) @ r64) + units @ noise_matrix
    system = images.reshape(m * m, m * m).T
    coefficients = _psd_pinv(system, rtol) @ along.double().reshape(-1)
    z = q @ coefficients.reshape(m, m).to(dtype) + across @ across_weights.to(dtype)
    # w² sym(Z Sᵀ) = [S, Z] · (w²/2)[[0, I], [I, 0]] · [S, Z]ᵀ
    eye = torch.eye(m, **small)
    zeros = torch.zeros_like(eye)
    core = prior_variance / 2 * torch.cat([torch.cat([zeros, eye], 1), torch.cat([eye, zeros], 1)])
    return _spectrum(torch.cat([directions, z], 1), core, prior_mean)


def _spectrum(basis: torch.Tensor, core: torch.Tensor, scale: float) -> Spectrum:
    """Eigen-decomposition of ``scale · I + basis · core · basisᵀ`` in the span of ``basis`` (any rank)."""
    gram = (basis.T @ basis).double()
    energies, axes = torch.linalg.eigh(gram)
    keep = energies > 2 * basis.shape[1] * torch.finfo(basis.dtype).eps * energies.max().clamp(min=0.0)
    energies, axes = energies[keep], axes[:, keep]
    roots = energies.sqrt()
    compressed = roots[:, None] * (axes.T @ core @ axes) * roots[None, :]
    values, rotation = torch.linalg.eigh(compressed)
    values, rotation = values.flip(0), rotation.flip(1)
    vectors = basis @ (axes / roots @ rotation).to(basis.dtype)
    return Spectrum(scale, (scale + values).to(basis.dtype), vectors)


def _psd_pinv(matrix: torch.Tensor, rtol: float) -> torch.Tensor:
    """Pseudo-inverse of a symmetric positive semi-definite matrix; eigenvalues below ``rtol · max`` count as zero."""
    values, vectors = torch.linalg.eigh((matrix + matrix.T) / 2)
    keep = values > rtol * values.max().clamp(min=0.0)
    inverted = torch.where(keep, 1.0 / torch.where(keep, values, torch.ones_like(values)), torch.zeros_like(values))
    return (vectors * inverted) @ vectors.T


# -- the optimizer --------------------------------------------------------------------------------------------------
class Preconditioner(torch.optim.Optimizer):
    """Probabilistic preconditioning around an inner optimizer (see the module docstring for the algorithm).

    The inner optimizer (``inner(param_groups, lr=…, **inner_options)``)
    shares this optimizer's param groups and per-parameter state, so
    ``state_dict()`` holds both; the global state (counters, the estimate
    in use, an estimate being gathered) lives under ``state["preconditioner"]``.
    One estimate, and so one learning rate, covers all parameters (seed
    000's separate estimates per param group are not kept); the inner
    optimizer's own options may differ between groups.

    ``diagnostics`` after each step: ``effective_lr`` (the inner learning
    rate used; 0 while the parameters hold still), ``estimating`` (1 when
    the step observed curvature for an estimate), ``hessian_products``
    (Hessian-vector products this step), ``evaluations`` (forward passes:
    1), ``eigenvalue_1`` … (the estimate in use, once there is one) and, on
    steps of the ``auto`` check, ``scale_ratio``.
    """

    GLOBAL = "preconditioner"
    _steps_per_epoch: int | None = None

    def __init__(self, params: Iterable[Any], inner: type[torch.optim.Optimizer] = torch.optim.SGD,
                 inner_options: Mapping[str, Any] | None = None, *, lr: float | None = None,
                 num_observations: int = 10, prior_iterations: int = 5, est_rank: int = 2, update: str = "epoch",
                 update_every: int | None = None, check_factor: float = 2.0):
        if lr is not None and not 0.0 < lr < math.inf:
            raise ValueError(f"lr must be a finite number > 0 or None (got {lr!r}).")
        for name, value, low in (("num_observations", num_observations, 1), ("prior_iterations", prior_iterations, 1),
                                 ("est_rank", est_rank, 0)):
            if not (isinstance(value, int) and value >= low):
                raise ValueError(f"{name} must be a whole number >= {low} (got {value!r}).")
        if update not in UPDATES:
            raise ValueError(f"update must be one of {', '.join(UPDATES)} (got {update!r}).")
        if update_every is not None and not (isinstance(update_every, int) and update_every >= 1):
            raise ValueError(f"update_every must be a whole number >= 1 or None (got {update_every!r}).")
        if not 1.0 < check_factor < math.inf:
            raise ValueError(f"check_factor must be a finite number > 1 (got {check_factor!r}).")
        self.settings = {"num_observations": num_observations, "prior_iterations": prior_iterations,
                         "est_rank": est_rank, "update": update, "update_every": update_every,
                         "check_factor": check_factor}
        super().__init__(params, {})
        self._inner = inner(self.param_groups, lr=0.0 if lr is None else lr, **(inner_options or {}))
        self._inner.state = self.state
        self.state[self.GLOBAL] = {"step": 0, "lr": lr, "estimate": None, "estimation": None}
        self.diagnostics: dict[str, float | int] = {}

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        if "_inner" in self.__dict__:
            self._inner.add_param_group(param_group)

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        # A snapshot: the live global dict changes with every step (its tensors are replaced, never changed).
        state["state"][self.GLOBAL] = _rebuilt(state["state"][self.GLOBAL])
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        # torch rebuilds the groups and the state: point the inner optimizer at the new ones.
        self._inner.param_groups, self._inner.state = self.param_groups, self.state
        self.state[self.GLOBAL] = _rebuilt(self.state[self.GLOBAL], self._params()[0].device)

    def set_training_length(self, total_steps: int, steps_per_epoch: int) -> None:
        """The epoch length, for ``update="epoch"`` and for ``update_every=None``."""
        self._steps_per_epoch = int(steps_per_epoch)

    def start_estimate(self) -> None:
        """Begin a new estimate at the next step (seed 000's public method); restarts one being gathered."""
        self._global["estimation"] = {"phase": "prior", "seen": 0, "probe": None, "mean": None, "spread": 0.0,
                                      "sum_yy": 0.0, "sum_uy": 0.0}

    @property
    def learning_rate(self) -> float | None:
        """The inner optimizer's learning rate: α of the estimate in use, ``lr`` before one, or None."""
        return self._global["lr"]

    @property
    def estimate(self) -> Spectrum | None:
        """The low-rank Hessian estimate in use: β and the top ``est_rank`` eigenpairs."""
        stored = self._global["estimate"]
        return None if stored is None else Spectrum(stored["scale"], stored["values"], stored["vectors"])

    # -- the step ---------------------------------------------------------------------------------------------------
    def step(self, closure: Closure | None = None) -> torch.Tensor:  # type: ignore[override]
        if closure is None:
            raise ValueError(f"{type(self).__name__} needs a closure with loss_with_graph() (the trainer's, or "
                             "jobs.curvature.SupervisedClosure).")
        state = self._global
        if state["estimation"] is None and self._estimate_due(state["step"]):
            self.start_estimate()
        operator, estimating, ratio = None, False, None
        if state["estimation"] is not None:
            operator, estimating = self._operator(closure), True
            self._observe(operator)
        elif self._check_due(state["step"]):
            operator = self._operator(closure)
            ratio, estimating = self._check(operator)

        lr = state["lr"]
        if lr is None:  # before the first estimate, without an initial lr: hold still
            loss = operator.loss
        else:
            if operator is None:
                loss = evaluate(closure, backward=True)
            else:
                loss = operator.loss
                self._set_gradients(operator.gradient)
            if state["estimate"] is not None:
                self._apply_preconditioner()
            for group in self.param_groups:
                group["lr"] = lr
            self._inner.step()
        state["step"] += 1
        self._report(lr or 0.0, estimating, operator, ratio)
        return loss

    # -- when to estimate -------------------------------------------------------------------------------------------
    def _estimate_due(self, step: int) -> bool:
        if self._global["estimate"] is None:
            return True
        if self.settings["update"] == "auto":
            return False
        period = self._period()
        return period is not None and step % period == 0

    def _check_due(self, step: int) -> bool:
        if self.settings["update"] != "auto" or self._global["estimate"] is None:
            return False
        period = self._period()
        return period is not None and step % period == 0

    def _period(self) -> int | None:
        """Steps between estimates (epoch, steps) or checks (auto); None, with a warning, when nobody said."""
        epoch = self.settings["update"] == "epoch"
        period = self._steps_per_epoch if epoch else self.settings["update_every"] or self._steps_per_epoch
        if period is None:
            self._warn_once("period", f"{type(self).__name__} does not know the epoch length, so it does not "
                                      "re-estimate; set update_every or call set_training_length().")
        return period

    def _check(self, operator: CurvatureOperator) -> tuple[float | None, bool]:
        """The ``auto`` quality check; on failure, start an estimate whose first prior product is the check's."""
        gradient = operator.gradient
        norm = gradient.norm()
        if not (torch.isfinite(norm) and norm > 0):
            return None, False
        probe = gradient / norm
        product = self._hessian_vector_product(operator, probe)
        ratio = float(_secant_scale(probe, product)) / self._global["estimate"]["scale"]
        factor = self.settings["check_factor"]
        if 1.0 / factor <= ratio <= factor:
            return ratio, False
        self.start_estimate()
        self._global["estimation"]["probe"] = probe
        self._add_prior_product(product)
        return ratio, True

    # -- gathering an estimate --------------------------------------------------------------------------------------
    def _operator(self, closure: Closure) -> Hessian:
        loss_with_graph = getattr(closure, "loss_with_graph", None)
        if loss_with_graph is None:
            raise ValueError(f"{type(self).__name__} needs Hessian-vector products: pass a closure with "
                             "loss_with_graph() (the trainer's, or jobs.curvature.SupervisedClosure).")
        return Hessian(loss_with_graph(), self._params())

    def _observe(self, operator: CurvatureOperator) -> None:
        """One step's contribution to the estimate being gathered: a prior product or an active observation."""
        if self._global["estimation"]["phase"] == "prior":
            self._gather_curvature_information(operator)
            return
        direction = self._apply_estimated_inverse(operator.gradient)
        if direction is not None:
            self._update_estimated_hessian(direction, self._hessian_vector_product(operator, direction))
        if direction is None or self._observed() >= self.settings["num_observations"]:
            self._create_low_rank()

    def _gather_curvature_information(self, operator: CurvatureOperator) -> None:
        """A prior iteration: the product along the probe (set from the first batch's gradient)."""
        estimation = self._global["estimation"]
        if estimation["probe"] is None:
            gradient = operator.gradient
            norm = gradient.norm()
            if not (torch.isfinite(norm) and norm > 0):
                return  # no direction to probe: this step tells nothing
            estimation["probe"] = gradient / norm
        self._add_prior_product(self._hessian_vector_product(operator, estimation["probe"]))

    def _add_prior_product(self, product: torch.Tensor) -> None:
        """Record one prior product; after the last one, set up the prior and the first observation."""
        self._record_prior_product(product)
        if self._global["estimation"]["seen"] < self.settings["prior_iterations"]:
            return
        prior = self._estimate_prior()
        if prior is None:
            self._warn_once("prior", "The prior iterations saw no usable curvature along the gradient; the "
                                     "estimate starts over.")
            self.start_estimate()
            return
        self._setup_estimated_hessian(*prior)
        if self.settings["num_observations"] == 1:
            self._create_low_rank()

    def _record_prior_product(self, product: torch.Tensor) -> None:
        """Running sums for β and w, and Welford's running mean and squared spread for ν."""
        estimation = self._global["estimation"]
        seen = estimation["seen"] + 1
        mean = estimation["mean"]
        shift = product if mean is None else product - mean
        new_mean = product if mean is None else mean + shift / seen
        estimation.update(seen=seen, mean=new_mean,
                          spread=estimation["spread"] + float(shift @ (product - new_mean)),
                          sum_yy=estimation["sum_yy"] + float(product @ product),
                          sum_uy=estimation["sum_uy"] + float(estimation["probe"] @ product))

    def _estimate_prior(self) -> tuple[float, float, float] | None:
        """``(β, w², ν)`` from the prior products, or None when they show no curvature."""
        estimation = self._global["estimation"]
        seen, numel = estimation["seen"], estimation["probe"].numel()
        scale = estimation["sum_yy"] / abs(estimation["sum_uy"]) if estimation["sum_uy"] != 0 else math.inf
        variance = (estimation["sum_uy"] / seen) ** 2
        noise = estimation["spread"] / (numel * (seen - 1)) if seen > 1 else 0.0
        if not (0.0 < scale < math.inf and math.isfinite(variance) and math.isfinite(noise)):
            return None
        return scale, variance, noise

    def _setup_estimated_hessian(self, scale: float, variance: float, noise: float) -> None:
        """The first observation: the probe and the prior products' mean, with noise ``ν / P``."""
        estimation = self._global["estimation"]
        self._global["estimation"] = {
            "phase": "active", "scale": scale, "variance": variance, "noise": noise,
            "directions": estimation["probe"][:, None], "products": estimation["mean"][:, None],
            "noises": estimation["probe"].new_tensor([noise / estimation["seen"]], dtype=torch.float64),
        }

    def _posterior(self) -> Spectrum:
        e = self._global["estimation"]
        return posterior_mean(e["directions"], e["products"], e["scale"], e["variance"], e["noises"])

    def _apply_estimated_inverse(self, gradient: torch.Tensor) -> torch.Tensor | None:
        """The next unit direction ``∝ P̂⁻¹ g`` orthogonal to those observed, or None when it has nothing new."""
        directions = self._global["estimation"]["directions"]
        candidate = self._posterior().precondition(gradient)
        direction = candidate
        for _ in range(2):  # Gram-Schmidt twice: orthogonal to working precision
            direction = direction - directions @ (directions.T @ direction)
        norm, reference = direction.norm(), candidate.norm()
        if not (torch.isfinite(norm) and norm > torch.finfo(norm.dtype).eps ** 0.5 * reference):
            return None
        return direction / norm

    def _hessian_vector_product(self, operator: CurvatureOperator, direction: torch.Tensor) -> torch.Tensor:
        return operator.matvec(direction).detach()

    def _update_estimated_hessian(self, direction: torch.Tensor, product: torch.Tensor) -> None:
        e = self._global["estimation"]
        e["directions"] = torch.cat([e["directions"], direction[:, None]], 1)
        e["products"] = torch.cat([e["products"], product[:, None]], 1)
        e["noises"] = torch.cat([e["noises"], e["noises"].new_tensor([e["noise"]])])

    def _observed(self) -> int:
        estimation = self._global["estimation"]
        return estimation["directions"].shape[1] if estimation["phase"] == "active" else 0

    def _create_low_rank(self) -> None:
        """Keep the top ``est_rank`` eigenpairs of the posterior mean and take its learning rate α = 1/β."""
        spectrum = self._posterior().top(self.settings["est_rank"])
        state = self._global
        state["estimation"] = None
        if not bool(torch.isfinite(spectrum.values).all()):
            self._warn_once("estimate", "An estimate was not finite and is discarded; the next one starts now.")
            self.start_estimate()
            return
        state["estimate"] = {"scale": spectrum.scale, "values": spectrum.values, "vectors": spectrum.vectors}
        state["lr"] = 1.0 / spectrum.scale

    # -- using the estimate -----------------------------------------------------------------------------------------
    @torch.no_grad()
    def _apply_preconditioner(self) -> None:
        """``g ← β P̂⁻¹ g``: the inner step with learning rate α = 1/β is then ``−P̂⁻¹ g``."""
        params = self._params()
        gradient = torch.cat([(torch.zeros_like(p) if p.grad is None else p.grad).reshape(-1) for p in params])
        self._set_gradients(self.estimate.precondition(gradient))

    @torch.no_grad()
    def _set_gradients(self, gradient: torch.Tensor) -> None:
        for p, piece in zip(self._params(), unflat(gradient, self._params()), strict=True):
            p.grad = piece.clone()

    # -- helpers ----------------------------------------------------------------------------------------------------
    @property
    def _global(self) -> dict[str, Any]:
        return self.state[self.GLOBAL]

    def _params(self) -> list[torch.Tensor]:
        return [p for group in self.param_groups for p in group["params"] if p.requires_grad]

    def _report(self, lr: float, estimating: bool, operator: CurvatureOperator | None, ratio: float | None) -> None:
        self.diagnostics = {"effective_lr": lr, "estimating": int(estimating),
                            "hessian_products": 0 if operator is None else operator.products, "evaluations": 1}
        estimate = self._global["estimate"]
        if estimate is not None:
            for i, value in enumerate(estimate["values"].tolist(), start=1):
                self.diagnostics[f"eigenvalue_{i}"] = value
        if ratio is not None:
            self.diagnostics["scale_ratio"] = ratio

    def _warn_once(self, key: str, message: str) -> None:
        warned = self.__dict__.setdefault("_warned", set())
        if key not in warned:
            warned.add(key)
            log.warning(message)


class PreconditionedSGD(Preconditioner):
    """Probabilistic preconditioning around ``torch.optim.SGD`` (seed 000's PreconditionedSGD).

    Defaults are seed 000's experiment's (§4.1): ``num_observations=10``,
    ``prior_iterations=5``, ``est_rank=2``, plain SGD (``momentum=0``), a
    new estimate every epoch, no initial learning rate. Cost per step: one
    forward and one backward pass; on the steps that gather an estimate
    (``prior_iterations + num_observations − 1`` per estimate) or run the
    ``auto`` check, the backward pass keeps its graph and one
    Hessian-vector product (about one more backward pass) follows.
    """

    def __init__(self, params: Iterable[Any], lr: float | None = None, momentum: float = 0.0,
                 num_observations: int = 10, prior_iterations: int = 5, est_rank: int = 2, update: str = "epoch",
                 update_every: int | None = None, check_factor: float = 2.0):
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1) (got {momentum!r}).")
        super().__init__(params, torch.optim.SGD, {"momentum": momentum}, lr=lr, num_observations=num_observations,
                         prior_iterations=prior_iterations, est_rank=est_rank, update=update,
                         update_every=update_every, check_factor=check_factor)


class AdaptiveSGD(PreconditionedSGD):
    """PreconditionedSGD without the preconditioner: SGD with the estimated learning rate (seed 000's AdaptiveSGD).

    It gathers the same estimates (so costs the same), as in seed 000, where
    it is the subclass whose ``_apply_preconditioner`` does nothing.
    """

    def _apply_preconditioner(self) -> None:
        return


def _secant_scale(direction: torch.Tensor, product: torch.Tensor) -> torch.Tensor:
    """``‖Hu‖² / |uᵀHu|``: the curvature scale the prior is made of, for one product."""
    return (product @ product) / (direction @ product).abs()


def _rebuilt(value: Any, device: torch.device | None = None) -> Any:
    """Nested dicts copied, their tensors shared or moved to ``device`` (a checkpoint is read onto the CPU)."""
    if isinstance(value, torch.Tensor):
        return value if device is None else value.to(device)
    if isinstance(value, dict):
        return {key: _rebuilt(item, device) for key, item in value.items()}
    return value
