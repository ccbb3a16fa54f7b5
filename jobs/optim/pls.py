"""PLS: probabilistic line search (Mahsereci & Hennig, NeurIPS 2015).

"Probabilistic Line Searches for Stochastic Optimization", as section 2.6.5
and Algorithm 5 of the PAL/LABPAL dissertation (seed ``003``) describe it,
with details from the authors' reference implementation where the text
leaves them open (marked below).

Along the line ``theta + t * alpha0 * d`` (``t`` in units of the initial step
``alpha0``), noisy observations of the loss ``f`` and of its slope ``f'``
(each on its own minibatch) condition a Gaussian process with the
once-integrated Wiener kernel (Eq. 2.28, offset ``tau = 10``)

    k(a, b) = min(a+tau, b+tau)^3 / 3 + |a - b| min(a+tau, b+tau)^2 / 2

and its derivatives (Eqs. 2.30-2.33). The posterior mean is a cubic spline.
Observations are scaled so that ``f(0) = 0`` and ``f'(0) = -1`` (the scale
``m`` of Eq. 2.28 is then 1). Each search starts at ``t = 1``; after every
evaluation it accepts the evaluated point if the probability that both
Wolfe conditions hold (Eqs. 2.37, 2.38),

    a(t) = f(0) - f(t) + c1 t f'(0) >= 0   and   b(t) = f'(t) - c2 f'(0) >= 0,

exceeds ``c_w``; otherwise it evaluates next the candidate, among the local
minima of the posterior mean between evaluations and one extrapolation
point (``max t + e``, ``e`` doubling after each extrapolation), that
maximises expected improvement times Wolfe probability. After
``max_evaluations`` it takes the evaluated point with the lowest posterior
mean.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from jobs.optim.line_search import LineSearchOptimizer
from jobs.optim.protocol import Closure, evaluate
from jobs.optim.vectors import copies, dots, finite, grads, place

OFFSET = 10.0  # tau in Eq. 2.28
# diagnostics["case"]: how the search ended
WOLFE_POINT, STEEP, LOWEST_MEAN, FAILED = 0, 1, 2, 3
_NODES, _WEIGHTS = np.polynomial.legendre.leggauss(40)


class WienerLineGP:
    """GP posterior over ``f`` and ``f'`` along a line, given observations of both at ``t``.

    ``var_f`` and ``var_df`` are the observation noise variances of ``f``
    and ``f'`` (the same for every observation). A functional is a pair
    ``(t, order)``: ``order`` 0 is ``f(t)``, 1 is ``f'(t)``.
    """

    def __init__(self, t: Sequence[float], y: Sequence[float], dy: Sequence[float], var_f: float, var_df: float,
                 offset: float = OFFSET):
        self.t = np.asarray(t, dtype=np.float64)
        self.offset = offset
        n = len(self.t)
        data = [(x, 0) for x in self.t] + [(x, 1) for x in self.t]
        gram = self.prior(data, data) + np.diag([var_f] * n + [var_df] * n)
        gram += 1e-12 * np.trace(gram) / (2 * n) * np.eye(2 * n)  # jitter for noise-free observations
        self._data = data
        self._gram = gram
        self._weights = np.linalg.solve(gram, np.concatenate([np.asarray(y, float), np.asarray(dy, float)]))

    def kernel(self, a: float, b: float, order_a: int, order_b: int) -> float:
        """Prior covariance of ``d^order_a f(a)`` and ``d^order_b f(b)`` (Eqs. 2.28, 2.31-2.33)."""
        at, bt = a + self.offset, b + self.offset
        if order_a == 0 and order_b == 0:
            low = min(at, bt)
            return low**3 / 3 + 0.5 * abs(a - b) * low**2
        if order_a == 1 and order_b == 1:
            return min(at, bt)
        if order_a == 1:  # d/da k(a, b)
            at, bt = bt, at
            a, b = b, a
        # d/db k(a, b)
        return 0.5 * at**2 if a < b else at * bt - 0.5 * bt**2

    def prior(self, rows: Sequence[tuple[float, int]], cols: Sequence[tuple[float, int]]) -> np.ndarray:
        return np.array([[self.kernel(a, b, i, j) for b, j in cols] for a, i in rows], dtype=np.float64)

    def mean(self, t: float, order: int = 0) -> float:
        return float(self.prior([(t, order)], self._data)[0] @ self._weights)

    def covariance(self, functionals: Sequence[tuple[float, int]]) -> np.ndarray:
        cross = self.prior(functionals, self._data)
        return self.prior(functionals, functionals) - cross @ np.linalg.solve(self._gram, cross.T)

    def variance(self, t: float) -> float:
        return float(self.covariance([(t, 0)])[0, 0])

    def wolfe_probability(self, t: float, c1: float, c2: float) -> float:
        """``p(a(t) >= 0 and b(t) >= 0)`` under the posterior (Eqs. 2.37, 2.38)."""
        functionals = [(0.0, 0), (0.0, 1), (t, 0), (t, 1)]
        means = np.array([self.mean(x, order) for x, order in functionals])
        cov = self.covariance(functionals)
        wa = np.array([1.0, c1 * t, -1.0, 0.0])
        wb = np.array([0.0, -c2, 0.0, 1.0])
        return gaussian_orthant(float(wa @ means), float(wb @ means), float(wa @ cov @ wa),
                                float(wb @ cov @ wb), float(wa @ cov @ wb))

    def expected_improvement(self, t: float, best: float) -> float:
        """``E[max(0, best - f(t))]``."""
        m, s = self.mean(t), math.sqrt(max(self.variance(t), 0.0))
        if s < 1e-12:
            return max(best - m, 0.0)
        z = (best - m) / s
        return (best - m) * normal_cdf(z) + s * math.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)

    def cell_minima(self) -> tuple[list[float], bool]:
        """Local minima of the posterior mean strictly between neighbouring evaluations.

        Between two evaluations the mean is a cubic, so the cubic through its
        values and slopes at the two ends is the mean itself. Also says
        whether the first cell has no minimum although the mean rises at 0.
        """
        ts = sorted(set(self.t.tolist()))
        minima, steep = [], False
        for i, (left, right) in enumerate(zip(ts, ts[1:], strict=False)):
            x = _cubic_minimum(right - left, self.mean(left), self.mean(left, 1), self.mean(right),
                               self.mean(right, 1))
            if x is not None:
                minima.append(left + x)
            elif i == 0 and self.mean(0.0, 1) > 0:
                steep = True
        return minima, steep


def _cubic_minimum(h: float, f0: float, d0: float, f1: float, d1: float) -> float | None:
    """Interior local minimiser in (0, h) of the cubic with values f0, f1 and slopes d0, d1 at 0 and h."""
    c2 = (3 * (f1 - f0) / h - 2 * d0 - d1) / h
    c3 = (d0 + d1 - 2 * (f1 - f0) / h) / h**2
    # p'(x) = d0 + 2 c2 x + 3 c3 x^2; a minimum where p'(x) = 0 and p''(x) = 2 c2 + 6 c3 x > 0
    if abs(c3) < 1e-12 * (abs(c2) + 1e-300):
        roots = [-d0 / (2 * c2)] if c2 > 0 else []
    else:
        disc = (2 * c2) ** 2 - 12 * c3 * d0
        if disc < 0:
            return None
        sq = math.sqrt(disc)
        roots = [(-2 * c2 + sign * sq) / (6 * c3) for sign in (1.0, -1.0)]
    for x in roots:
        if 0 < x < h and 2 * c2 + 6 * c3 * x > 0:
            return x
    return None


def normal_cdf(z: float) -> float:
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))


def bivariate_normal_cdf(h: float, k: float, rho: float) -> float:
    """``P(X <= h, Y <= k)`` for standard normals with correlation ``rho``.

    Uses ``Phi2 = Phi(h) Phi(k) + 1/(2 pi) int_0^asin(rho) exp(-(h^2 + k^2 - 2hk sin u) / (2 cos^2 u)) du``
    (the derivative of Phi2 in rho is the bivariate density), by 40-point Gauss-Legendre.
    """
    rho = min(max(rho, -1.0), 1.0)
    base = normal_cdf(h) * normal_cdf(k)
    top = math.asin(rho)
    if top == 0.0:
        return base
    u = 0.5 * top * (_NODES + 1.0)
    cos2 = np.cos(u) ** 2
    with np.errstate(divide="ignore", over="ignore"):
        exponent = np.where(cos2 > 0, -(h * h + k * k - 2 * h * k * np.sin(u)) / (2 * np.maximum(cos2, 1e-300)),
                            -np.inf)
    integral = 0.5 * top * float(_WEIGHTS @ np.exp(exponent))
    return min(max(base + integral / (2 * math.pi), 0.0), 1.0)


def gaussian_orthant(ma: float, mb: float, vaa: float, vbb: float, vab: float, tiny: float = 1e-12) -> float:
    """``P(a >= 0, b >= 0)`` for jointly Gaussian ``a, b``: means ``ma, mb``, covariance ``[[vaa, vab], [vab, vbb]]``.

    A variance at or below ``tiny`` makes that variable deterministic.
    """
    sure_a, sure_b = vaa <= tiny, vbb <= tiny
    if sure_a and sure_b:
        return float(ma >= 0 and mb >= 0)
    if sure_a:
        return float(ma >= 0) * normal_cdf(mb / math.sqrt(vbb))
    if sure_b:
        return float(mb >= 0) * normal_cdf(ma / math.sqrt(vaa))
    sa, sb = math.sqrt(vaa), math.sqrt(vbb)
    return bivariate_normal_cdf(ma / sa, mb / sb, vab / (sa * sb))


@dataclass
class LineSearchRecord:
    """What one search saw, in the GP's scaled coordinates (for diagnostics and tests).

    ``t`` are steps in units of ``alpha0`` along ``d``; ``y = (f - f0) / (alpha0 beta)``,
    ``dy = (g . d) / beta`` with ``beta = |g0 . d|``; ``var_f``/``var_df`` the scaled noise variances.
    """

    t: list[float]
    y: list[float]
    dy: list[float]
    var_f: float
    var_df: float
    alpha0: float
    beta: float
    accepted: float | None  # the Wolfe point, if one was found
    chosen: float  # the step taken


class PLS(LineSearchOptimizer):
    """Probabilistic line search; fresh minibatches from :meth:`set_batch_source`.

    Defaults follow Algorithm 5: ``c1=0.05``, ``c2=0.8``, ``c_w=0.3``,
    ``max_evaluations=10``; ``lr_init=0.01`` is the first search's
    ``alpha0`` (the dissertation's grid tries 0.001 to 1); ``momentum=0``
    (the grid tries 0.4 and 0.9: ``d = -g + momentum * d_prev``).

    From the reference implementation: the next search's ``alpha0`` is 1.3
    times the accepted step, reset to a running average of accepted steps
    (factor 0.95) when it strays by more than 100x from it; a posterior mean
    that rises at 0 with no minimum before the first evaluation triggers one
    evaluation at ``t = 0.01 t_1``, which is taken.

    Choices of ours:

    * Noise. The method needs the variances of a minibatch's loss and slope,
      which the authors estimate from per-example losses and gradients. The
      closure protocol returns only batch means, so at theta we evaluate
      ``noise_batches`` (>= 2) fresh minibatches: the loss variance is the
      sample variance of their losses and the step's own; the slope variance
      that of their slopes (the step's own is left out: it defined the
      direction). Both are smoothed over steps with ``noise_smoothing``.
      Without a batch source every evaluation reuses the step's minibatch and
      the observations are treated as noise-free (a probabilistic Wolfe
      search on the minibatch loss).
    * Wolfe conditions as the dissertation states them (Eq. 2.38); the
      reference code also bounds ``b`` from above (strong Wolfe).
    * After the budget, the lowest posterior mean may be at ``t = 0``: then
      theta stays (the reference code always moves).
    * A non-finite evaluation ends the search at the best point so far.
    * With momentum, a direction that does not descend on the step's
      minibatch is reset to ``-g``. A zero gradient takes no step.

    Cost per step: ``1 + noise_batches`` forward and backward passes at
    theta plus one forward and backward pass per evaluated point (at least
    one). ``diagnostics["evaluations"]`` counts forward passes.

    ``diagnostics``: ``step_size`` (distance), ``effective_lr`` (``t * alpha0``),
    ``alpha0``, ``t``, ``p_wolfe`` (of the accepted point; NaN if none),
    ``case`` (0 a Wolfe point, 1 the steep-start evaluation, 2 the lowest
    mean after the budget, 3 no step), ``noise_f``, ``noise_df`` (unscaled
    variances of loss and unit-direction slope), ``loss``, ``evaluations``.
    ``last_search`` holds the search's observations (:class:`LineSearchRecord`).
    """

    last_search: LineSearchRecord | None = None

    def __init__(
        self,
        params: Iterable[Any],
        lr_init: float = 0.01,
        c1: float = 0.05,
        c2: float = 0.8,
        c_w: float = 0.3,
        momentum: float = 0.0,
        max_evaluations: int = 10,
        noise_batches: int = 2,
        noise_smoothing: float = 0.9,
    ):
        if not 0.0 < lr_init < math.inf:
            raise ValueError(f"lr_init must be a finite number > 0 (got {lr_init!r}).")
        if not 0.0 < c1 < c2 < 1.0:
            raise ValueError(f"c1 and c2 must satisfy 0 < c1 < c2 < 1 (got {c1!r}, {c2!r}).")
        if not 0.0 < c_w < 1.0:
            raise ValueError(f"c_w must be in (0, 1) (got {c_w!r}).")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1) (got {momentum!r}).")
        if max_evaluations < 1:
            raise ValueError(f"max_evaluations must be >= 1 (got {max_evaluations!r}).")
        if noise_batches < 2:
            raise ValueError(f"noise_batches must be >= 2 (got {noise_batches!r}).")
        if not 0.0 <= noise_smoothing < 1.0:
            raise ValueError(f"noise_smoothing must be in [0, 1) (got {noise_smoothing!r}).")
        defaults = {"lr_init": lr_init, "c1": c1, "c2": c2, "c_w": c_w, "momentum": momentum,
                    "max_evaluations": max_evaluations, "noise_batches": noise_batches,
                    "noise_smoothing": noise_smoothing}
        super().__init__(params, defaults)

    def step(self, closure: Closure | None = None) -> torch.Tensor:  # type: ignore[override]
        closure = self.require(closure)
        h, state = self.hyper, self.global_state
        loss = evaluate(closure, backward=True)
        f0 = loss.item()
        params = self.params_with_grad()
        with torch.no_grad():
            direction, dd, slope0 = self.descent_direction(params, h["momentum"])
        if not (finite(f0, dd, slope0) and slope0 < 0):
            self._report(0.0, 0.0, 0.0, math.nan, FAILED, f0, 1, state.get("alpha0", h["lr_init"]))
            return loss

        noise_f, noise_df, evaluations = self._estimate_noise(closure, params, direction, f0, dd)
        alpha0 = state.get("alpha0", h["lr_init"])
        beta = -slope0
        origin = copies(params)
        record = LineSearchRecord(t=[0.0], y=[0.0], dy=[-1.0], var_f=noise_f / (alpha0 * beta) ** 2,
                                  var_df=noise_df * dd / beta**2, alpha0=alpha0, beta=beta, accepted=None, chosen=0.0)
        gp = None

        def observe(t: float) -> bool:
            nonlocal evaluations, gp
            place(params, origin, direction, t * alpha0)
            f = evaluate(self.fresh_closure(closure), backward=True).item()
            with torch.no_grad():
                slope = dots([(grads(params), direction)])[0]
            evaluations += 1
            if not finite(f, slope):
                return False
            record.t.append(t)
            record.y.append((f - f0) / (alpha0 * beta))
            record.dy.append(slope / beta)
            gp = WienerLineGP(record.t, record.y, record.dy, record.var_f, record.var_df)
            return True

        t, extrapolation, line_evaluations, steep = 1.0, 1.0, 0, None
        while line_evaluations < h["max_evaluations"]:
            line_evaluations += 1
            if not observe(t):
                break
            if gp.wolfe_probability(t, h["c1"], h["c2"]) > h["c_w"]:
                record.accepted = t
                break
            acceptable = [x for x in record.t[1:] if gp.wolfe_probability(x, h["c1"], h["c2"]) > h["c_w"]]
            if acceptable:
                record.accepted = min(acceptable, key=gp.mean)
                break
            if line_evaluations == h["max_evaluations"]:
                break
            candidates, rising = gp.cell_minima()
            if rising:
                t = 0.01 * sorted(record.t)[1]
                steep = t if observe(t) else None
                break
            candidates.append(max(record.t) + extrapolation)
            best = min(gp.mean(x) for x in record.t)
            scores = [gp.expected_improvement(x, best) * gp.wolfe_probability(x, h["c1"], h["c2"])
                      for x in candidates]
            t = candidates[int(np.argmax(scores))]
            if t == candidates[-1]:
                extrapolation *= 2

        if record.accepted is not None:
            record.chosen, case = record.accepted, WOLFE_POINT
        elif steep is not None:
            record.chosen, case = steep, STEEP
        elif gp is not None:
            record.chosen, case = min(record.t, key=gp.mean), LOWEST_MEAN
        else:
            case = FAILED
        place(params, origin, direction, record.chosen * alpha0)
        self.keep_direction(params, direction, self.hyper["momentum"])
        self._next_alpha0(record.chosen * alpha0)
        self.last_search = record
        p_wolfe = math.nan if record.accepted is None else gp.wolfe_probability(record.accepted, h["c1"], h["c2"])
        state.update(noise_f=noise_f, noise_df=noise_df)
        self._report(record.chosen * alpha0 * math.sqrt(dd), record.chosen * alpha0, record.chosen, p_wolfe,
                     case, f0, evaluations, alpha0)
        return loss

    # -- pieces -----------------------------------------------------------------------------
    def _estimate_noise(self, closure: Closure, params: list[torch.Tensor], direction: list[torch.Tensor],
                        f0: float, dd: float) -> tuple[float, float, int]:
        """Smoothed variances of a minibatch's loss and of its slope along the unit direction, and passes used."""
        if not self.has_batch_source:
            return 0.0, 0.0, 1
        h, state = self.hyper, self.global_state
        losses, slopes = [f0], []
        for _ in range(h["noise_batches"]):
            losses.append(evaluate(self.fresh_closure(closure), backward=True).item())
            with torch.no_grad():
                slopes.append(dots([(grads(params), direction)])[0] / math.sqrt(dd))
        var_f, var_df = float(np.var(losses, ddof=1)), float(np.var(slopes, ddof=1))
        if not finite(var_f, var_df):
            var_f, var_df = state.get("noise_f", 0.0), state.get("noise_df", 0.0)
        elif "noise_f" in state:
            rho = h["noise_smoothing"]
            var_f = rho * state["noise_f"] + (1 - rho) * var_f
            var_df = rho * state["noise_df"] + (1 - rho) * var_df
        return var_f, var_df, 1 + h["noise_batches"]

    def _next_alpha0(self, step: float) -> None:
        state = self.global_state
        average = 0.95 * state.get("alpha_average", self.hyper["lr_init"]) + 0.05 * step
        proposal = 1.3 * step
        if not average * 1e-2 <= proposal <= average * 1e2:
            proposal = average
        state.update(alpha0=proposal, alpha_average=average)

    def _report(self, distance: float, lr: float, t: float, p_wolfe: float, case: int, loss: float,
                evaluations: int, alpha0: float) -> None:
        state = self.global_state
        self.diagnostics = {
            "step_size": distance,
            "effective_lr": lr,
            "alpha0": alpha0,
            "t": t,
            "p_wolfe": p_wolfe,
            "case": case,
            "noise_f": state.get("noise_f", math.nan),
            "noise_df": state.get("noise_df", math.nan),
            "loss": loss,
            "evaluations": evaluations,
        }
