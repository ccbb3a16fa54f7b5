"""The loss along the optimizer's update line (seed 003@133k–136k, @178k).

The optimizer takes one step on the measurement batch, which gives its
update ``d = θ_new − θ``; then the parameters and the optimizer's state are
put back exactly (a deep copy of ``optimizer.state_dict()``). Along the
unit direction ``u = d/‖d‖`` the loss ``l(s) = L(θ + s u)`` is sampled at
``points`` evenly spaced distances s from ``low`` to ``max(high, ‖d‖)``
(003@134k sampled 50 losses per line, 003@178k the interval [−0.5, 0.5]
of a unit direction), and a parabola ``a s² + b s + c`` is fitted by
least squares. The range is in parameter-space units, not in step
lengths: an optimizer whose steps are much shorter than the distance to
the line's minimum (SGD with a small learning rate) would otherwise be
fitted on an almost straight piece; widening it to the step keeps the
step itself in view.

Reported: the parabola's minimum ``s* = −b/2a`` (NaN where it opens
downwards), its curvature ``2a``, the fit's R², the step length ``‖d‖``
and the angle between ``d`` and the gradient at ``θ + s* u``, in degrees.
003 reads the angle as a test of the fit: on the same batch it is 90°
exactly at an extremum of the loss along the line.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch

from jobs.curvature.products import flat
from jobs.measure.context import Context, Result
from jobs.optim.protocol import at_training_point, step_with, takes_closure

NAN = math.nan


def fit_parabola(positions: Sequence[float], losses: Sequence[float]) -> tuple[list[float], float]:
    """Least-squares ``[a, b, c]`` of ``a s² + b s + c`` and its R², over the finite losses; NaNs below 3 points.

    Solved from the normal equations in plain Python floats (``math.fsum``):
    bitwise reproducible, unlike LAPACK's least squares, whose last bits
    can depend on memory alignment. The equations are set up in
    ``t = (s − centre) / half-width`` ∈ [−1, 1], where they are well
    conditioned, and the coefficients converted back to s.
    """
    pairs = [(s, y) for s, y in zip(positions, losses, strict=True) if math.isfinite(y)]
    if len(pairs) < 3:
        return [NAN, NAN, NAN], NAN
    low, high = min(s for s, _ in pairs), max(s for s, _ in pairs)
    centre, half = (low + high) / 2, (high - low) / 2
    ts = [(s - centre) / half for s, _ in pairs]
    ys = [y for _, y in pairs]
    moments = [math.fsum(t**k for t in ts) for k in range(5)]
    normal = [[moments[4 - i - j] for j in range(3)] for i in range(3)]
    right = [math.fsum(t ** (2 - i) * y for t, y in zip(ts, ys, strict=True)) for i in range(3)]
    a, b, c = _solve3(normal, right)
    mean = math.fsum(ys) / len(ys)
    spread = math.fsum((y - mean) ** 2 for y in ys)
    residual = math.fsum((y - (a * t * t + b * t + c)) ** 2 for t, y in zip(ts, ys, strict=True))
    r_squared = 1.0 - residual / spread if spread > 0 else NAN
    # a t² + b t + c with t = (s − centre)/half, expanded in powers of s
    coefficients = [a / half**2, b / half - 2 * a * centre / half**2, a * centre**2 / half**2 - b * centre / half + c]
    return coefficients, r_squared


def _solve3(matrix: list[list[float]], right: list[float]) -> list[float]:
    """``matrix⁻¹ right`` for a 3×3 system by Cramer's rule."""

    def det(m: list[list[float]]) -> float:
        return (m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
                + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]))

    whole = det(matrix)
    if whole == 0:
        return [NAN, NAN, NAN]
    return [det([[right[i] if j == k else matrix[i][j] for j in range(3)] for i in range(3)]) / whole
            for k in range(3)]


def parabola_minimum(coefficients: list[float]) -> float:
    """``−b / 2a`` where the parabola opens upwards, else NaN (no minimum)."""
    a, b, _ = coefficients
    return -b / (2 * a) if a > 0 else NAN


def angle_degrees(direction: torch.Tensor, gradient: torch.Tensor) -> float:
    """The angle between two vectors in degrees; NaN when either is zero."""
    norms = torch.linalg.vector_norm(direction) * torch.linalg.vector_norm(gradient)
    if norms == 0:
        return NAN
    cosine = torch.clamp(torch.dot(direction, gradient) / norms, -1.0, 1.0)
    return math.degrees(math.acos(float(cosine)))


def update_direction(context: Context) -> torch.Tensor:
    """``θ_new − θ`` of one optimizer step on the measurement batch; parameters and optimizer state restored."""
    if context.optimizer is None:
        raise ValueError("the update line needs the run's optimizer")
    saved = copy.deepcopy(context.optimizer.state_dict())
    try:
        with at_training_point(context.optimizer):  # Schedule-Free steps y; the update measured is x's
            step_with(context.optimizer, context.closure, takes_closure(context.optimizer))
        return flat([p.detach() for p in context.params]) - context.origin
    finally:
        context.move_to(context.origin)
        context.optimizer.load_state_dict(saved)


def update_line(context: Context, points: int, low: float, high: float) -> Result:
    """Samples, parabola fit and angle along the optimizer's update (see the module's docstring)."""
    update = update_direction(context)
    length = float(torch.linalg.vector_norm(update))
    loss = context.loss_at(context.origin)
    if not (math.isfinite(length) and length > 0):
        scalars = dict(step_length=length, minimum=NAN, curvature=NAN, r_squared=NAN, angle=NAN, loss=loss)
        return Result(scalars, {"positions": [], "losses": [], "coefficients": [NAN, NAN, NAN]})
    direction = update / length
    positions = torch.linspace(low, max(high, length), points, dtype=torch.float64).tolist()
    losses = [context.loss_at(context.origin + s * direction) for s in positions]
    coefficients, r_squared = fit_parabola(positions, losses)
    minimum = parabola_minimum(coefficients)
    angle = NAN
    if math.isfinite(minimum):
        angle = angle_degrees(direction, context.gradient_at(context.origin + minimum * direction))
    scalars = dict(step_length=length, minimum=minimum, curvature=2 * coefficients[0], r_squared=r_squared,
                   angle=angle, loss=loss)
    return Result(scalars, {"positions": positions, "losses": losses, "coefficients": coefficients})
