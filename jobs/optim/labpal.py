"""LABPAL: Large-Batch Parabolic Approximation Line Search (Mutschler & Zell 2021).

Chapter 6 and Algorithm 9 of Mutschler's dissertation on empirical line
searches (seed ``003``), also "Using a one dimensional parabolic model of
the full-batch loss to estimate learning rates during training", and the
authors' published implementation (GitHub cogsys-tuebingen/LABPAL,
``source/optimizers/lab_pal.py``). LABPAL alternates two phases:

*Line search.* Fix a direction ``u = -v / ||v||`` from the (large) batch
gradient ``v = g`` at theta. Measure the loss along it at ``s in {0, s1, s2}``
on many batches, one inference at a time, and average: a close estimate
of the full-batch loss along the line. Fit a parabola ``l(s) = a s^2 + b s
+ c`` to the three means and take ``s_min = -b / (2a)``, scaled by the step
size adaptation ``alpha``.

*Training.* ``sgd_steps`` updates of SGD (``theta -= lr * g``, LABPAL&SGD) or
normalised SGD (``theta -= s * g / ||g||``, LABPAL&NSGD), then a new search.

Batch-size schedule: every update averages ``k(t)`` batches, ``k`` doubling
at half and at three quarters of training (``batch_milestones``) and
multiplied by the noise adaptation (Eq. 6.8) ``noise_factor = (128 / |B|)
(|D| / 40000)`` (:meth:`LABPAL.noise_factor_for`). The dissertation also
multiplies the number of training steps by it: that is the run's length
(``train.epochs``), set in the run's config, not here.

``estimator`` picks one of two procedures. ``code`` (the default)
reproduces the published implementation update for update: its ``alpha =
1.8`` was tuned with it. ``exact`` is the exact parabola through the three
means, with Algorithm 9's procedure where it and the code disagree.
Side by side (``l0, l1, l2`` the mean losses at ``0, s1, s2``; ``A s^2 + B s + C``
a true parabola along the line, whose minimum is ``s* = -B / (2A)``):

=================  ============================================  =======================================================
                   Algorithm 9 and the text: ``exact``           the published code: ``code``
=================  ============================================  =======================================================
measuring points   ``s1, s2 = 1e-4, 1e-2`` (Sect. 6.3.2)         ``s1 = 1.77e-4`` (fixed), ``s2 = 1e-2``
measured batches   ``approximation_batches`` (``|B_a| / |B_i|``  ``approximation_batches * k``, the ``k`` direction
                   = 1280 / 128), after the direction's batch    batches among them
slope              ``b = (l1-l0)/s1 - a s1`` (``= B``)           ``b = (l1-l0)/s1`` (``= B + A s1``)
curvature          ``a = ((l2-l0)/s2 - (l1-l0)/s1) / (s2-s1)``   ``a = (l'(s1) - b) / (2 s1)`` (``= A / 2``), ``l'(s1)``
                   (``= A``)                                     numpy.gradient's three-point derivative ``(p^2 (l2-l1)
                                                                 + q^2 (l1-l0)) / (p q (p+q))``, ``p = s1, q = s2-s1``
to the minimum     ``s_min = -b / (2a) = s*``                    ``s_min = -b / (2a) = 2 s* - s1``
step               ``s = min(alpha s_min, s_max)``               ``s = max(alpha min(s_min, s_max), 1e-6)``
learning rate      ``lr = s / ||g||``                            ``lr = max(s / max(||g||, 1e-6), 1e-6)``
reused             the last ``s`` or ``lr``                      the last; once more than ``untrusted_updates + 1``
                                                                 (401) updates are done, the mean of the last
                                                                 ``averaged_estimates`` (25) values of each, and the
                                                                 first search after the warm-up starts at once
end of a search    theta back at the origin                      a move ``theta + s u`` (``s`` the mean step, in both
                                                                 variants) that counts as an update; ``sgd_steps - 1``
                                                                 SGD updates follow
``k(t)``           ``round(noise_factor 2^j)``, ``j`` the        ``max(int(noise_factor 2^j), 1)``, ``t >= floor(T m)``;
                   milestones with ``t > floor(T m)``            a change starts a new search
line direction     the batch gradient                            with momentum, the buffer ``v = momentum v + g``
momentum update    ``v = momentum v + g``, ``theta -= lr v`` or  the same with ``k > 1``; with ``k = 1`` the buffer is
                   ``theta -= s v / ||v||``                      updated but the step takes ``g``: ``theta -= lr g`` or
                                                                 ``theta -= s g / ||v||``
line refused       only a zero or non-finite gradient            also ``||v||`` outside ``[1e-3, 100]`` or ``g . v <=
                                                                 0``: training goes on with the previous value
=================  ============================================  =======================================================

Algorithm 9 has no ``s_max``; the text's sensitivity analysis has a
"maximal step size" of 1. A failed fit (``a <= 0``, ``b >= 0`` or not
finite) keeps the previous value in both. The code's finite differences
halve the curvature of the parabola through its three points and shift
its slope, so its ``s_min`` is twice that parabola's minimiser less
``s1``: with ``alpha = 1.8`` it steps about ``3.6 s*`` where ``exact``
steps ``1.8 s*``. The code measures ``l(0)`` of each batch on the step it
arrives and ``l(s1), l(s2)`` of all of them at the end of the search; here
each batch is measured at all three points on its own step (same values,
other order of passes).

Where the code leaves no defined behaviour or a step cannot carry over,
``code`` chooses:

* Without any estimate yet, the code's refusal of a direction would crash
  on its missing step: here the first searches ignore the norm bounds.
* The code consumes one batch per call, so with ``k > 1`` it leaves ``k -
  1`` batches unused at the end of each training phase; here one call of
  :meth:`step` is one update of ``k`` batches, so none is left over.
* The code switches ``k`` only if its milestone step does not fall inside
  a line search or a ``k``-batch update (it tests the step counter for
  equality); here the switch waits for the next training step.
* The code holds ``alpha`` and ``s_max`` as float32 tensors, so its steps
  carry float32 rounding (about 1e-7); here everything is float64.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import torch

from jobs.optim.line_search import LineSearchOptimizer
from jobs.optim.protocol import Closure, evaluate
from jobs.optim.vectors import copies, dots, finite, place

VARIANTS = ("sgd", "nsgd")
ESTIMATORS = ("code", "exact")
DIRECTION, MEASURE, TRAIN = 0, 1, 2  # phases, as reported in diagnostics["phase"]
MEASURING_POINTS = {"code": (1.77e-4, 1e-2), "exact": (1e-4, 1e-2)}
CODE_EPSILON = 1e-6  # the code's floor on steps, learning rates and norms
CODE_NORMS = (1e-3, 100.0)  # the code refuses a line whose direction norm lies outside


def exact_parabola(l0: float, l1: float, l2: float, s1: float, s2: float) -> tuple[float, float]:
    """``(a, b)`` of the parabola ``a s^2 + b s + l0`` through ``(0, l0), (s1, l1), (s2, l2)``."""
    a = ((l2 - l0) / s2 - (l1 - l0) / s1) / (s2 - s1)
    return a, (l1 - l0) / s1 - a * s1


def code_parabola(l0: float, l1: float, l2: float, s1: float, s2: float) -> tuple[float, float]:
    """``(a, b)`` as lab_pal.py reads them: numpy.gradient over ``(0, s1, s2)``, twice, at ``s = 0``.

    The slope is the one-sided difference at 0; the second gradient is the
    one-sided difference of the first at 0 and ``s1``, halved to give ``a``.
    """
    p, q = s1, s2 - s1
    b = (l1 - l0) / p
    slope_at_s1 = (p * p * (l2 - l1) + q * q * (l1 - l0)) / (p * q * (p + q))
    return (slope_at_s1 - b) / (2 * p), b


class LABPAL(LineSearchOptimizer):
    """LABPAL&SGD (``variant="sgd"``) or LABPAL&NSGD (``variant="nsgd"``); needs a closure.

    Defaults are the published code's and the sensitivity analysis's (Figs.
    6.8, 6.9): ``estimator="code"``, ``alpha=1.8``, ``sgd_steps=1000``,
    ``approximation_batches=10`` (1280 / 128), ``momentum=0``, ``s_max=1.0``
    (the "maximal step size"), ``noise_factor=1``,
    ``batch_milestones=(0.5, 0.75)``, ``untrusted_updates=400``,
    ``averaged_estimates=25`` (those two for ``estimator="code"`` only) and
    ``measuring_points`` ``(1.77e-4, 1e-2)`` (code) or ``(1e-4, 1e-2)``
    (exact). The default variant is LABPAL&SGD, the one Algorithm 9 spells
    out (the code's own default is NSGD, which the dissertation finds
    somewhat more robust). ``estimator``: see the module docstring.

    One call of :meth:`step` is one of three kinds, reported as
    ``diagnostics["phase"]``; with ``k`` batches per step they cost:

    * 0, direction: the gradient of ``k`` batches at theta fixes the line.
      ``k`` forward and ``k`` backward passes; with ``estimator="code"``
      these batches are measured too, ``2k`` more forward passes.
    * 1, measure: ``k`` batches, each evaluated at the three points. ``3k``
      forward passes, no backward pass.
    * 2, train: one SGD or NSGD update on ``k`` batches. ``k`` forward and
      ``k`` backward passes.

    A search's last step (measure, or direction when it measures enough)
    fits the parabola; with ``estimator="code"`` it then moves theta along
    the line (an update: ``step_size`` and ``effective_lr`` say how far),
    otherwise theta stays. With the defaults a cycle is 1 direction, 9
    measure and 999 train steps (code; 1000 updates) or 1, 10 and 1000
    (exact): about 1% of the steps are line-search steps, matching the
    dissertation's "one step = one sampled batch, line-search batches
    included".

    Choices where the text leaves room:

    * ``exact``: the direction-defining batch is not one of the measured
      batches (the dissertation shows its loss along its own line is
      biased, Fig. 6.1), so measuring starts on the next step. The
      direction is always the plain batch gradient; ``momentum`` acts in
      the training phase only (``v = momentum * v + g``, NSGD normalises
      ``v``). ``s_max`` caps ``alpha * s_min`` in both variants, before the
      SGD variant divides by ``||g||``.
    * A failed fit (``a <= 0``, ``b >= 0`` or non-finite) keeps the previous
      estimate; when there is none yet, a new line search starts at once
      instead of training with no step size (as the code does).
    * ``k(t)`` needs the training length: ``total_steps`` (in calls of
      :meth:`step`) or the trainer's :meth:`set_training_length`; without
      either ``k`` stays at 1 and a warning is logged once. Batches beyond
      the step's own come from :meth:`set_batch_source`; without a source
      every step uses only its own batch (``k = 1``) and a warning is
      logged once.
    * theta is restored bitwise after measuring, from a copy kept during the
      line search; that copy and the direction are the memory beyond SGD.

    ``diagnostics``: ``phase``, ``step_size`` (distance moved),
    ``effective_lr`` (0 unless theta moved; NSGD: ``s / ||v||``),
    ``estimate`` (the current lr or s), ``s_min``, ``slope`` (b),
    ``curvature`` (2a), ``batches`` (k), ``loss``, ``evaluations`` (forward
    passes).
    """

    def __init__(
        self,
        params: Iterable[Any],
        variant: str = "sgd",
        alpha: float = 1.8,
        momentum: float = 0.0,
        sgd_steps: int = 1000,
        approximation_batches: int = 10,
        s_max: float = 1.0,
        noise_factor: float = 1.0,
        batch_milestones: Sequence[float] = (0.5, 0.75),
        total_steps: int | None = None,
        estimator: str = "code",
        untrusted_updates: int = 400,
        averaged_estimates: int = 25,
        measuring_points: Sequence[float] | None = None,
    ):
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {', '.join(VARIANTS)} (got {variant!r}).")
        if estimator not in ESTIMATORS:
            raise ValueError(f"estimator must be one of {', '.join(ESTIMATORS)} (got {estimator!r}).")
        if not 0.0 < alpha < math.inf:
            raise ValueError(f"alpha must be a finite number > 0 (got {alpha!r}).")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1) (got {momentum!r}).")
        if sgd_steps < 1 or approximation_batches < 1 or averaged_estimates < 1:
            raise ValueError(f"sgd_steps, approximation_batches and averaged_estimates must be >= 1 (got "
                             f"{sgd_steps!r}, {approximation_batches!r}, {averaged_estimates!r}).")
        if untrusted_updates < 0:
            raise ValueError(f"untrusted_updates must be >= 0 (got {untrusted_updates!r}).")
        if not s_max > 0.0:
            raise ValueError(f"s_max must be > 0 (got {s_max!r}).")
        if not 0.0 < noise_factor < math.inf:
            raise ValueError(f"noise_factor must be a finite number > 0 (got {noise_factor!r}).")
        if not all(0.0 < m < 1.0 for m in batch_milestones):
            raise ValueError(f"batch_milestones must be fractions of training in (0, 1) (got {batch_milestones!r}).")
        if total_steps is not None and total_steps < 1:
            raise ValueError(f"total_steps must be >= 1 (got {total_steps!r}).")
        points = MEASURING_POINTS[estimator] if measuring_points is None else tuple(measuring_points)
        if len(points) != 2 or not 0.0 < points[0] < points[1]:
            raise ValueError(f"measuring_points must be two steps 0 < s1 < s2 (got {measuring_points!r}).")
        defaults = {"variant": variant, "alpha": alpha, "momentum": momentum, "sgd_steps": sgd_steps,
                    "approximation_batches": approximation_batches, "s_max": s_max, "noise_factor": noise_factor,
                    "batch_milestones": tuple(batch_milestones), "total_steps": total_steps, "estimator": estimator,
                    "untrusted_updates": untrusted_updates, "averaged_estimates": averaged_estimates,
                    "measuring_points": points}
        super().__init__(params, defaults)

    @staticmethod
    def noise_factor_for(batch_size: int, dataset_size: int) -> float:
        """Eq. 6.8: ``(128 / |B|) (|D| / 40000)``, relative to the CIFAR-10 setting the defaults were tuned on."""
        return (128 / batch_size) * (dataset_size / 40_000)

    def set_training_length(self, total_steps: int, steps_per_epoch: int) -> None:
        """Take the number of steps from the trainer unless the constructor fixed it."""
        if self.hyper["total_steps"] is None:
            self.global_state["total_steps"] = int(total_steps)

    @property
    def _code(self) -> bool:
        return self.hyper["estimator"] == "code"

    def batches_per_step(self) -> int:
        """``k(t)``: how many batches this step averages over."""
        h, state = self.hyper, self.global_state
        total = h["total_steps"] or state.get("total_steps")
        doublings = 0
        if total is not None:
            t = state.get("steps", 0)
            milestones = [math.floor(total * m) for m in h["batch_milestones"]]
            doublings = sum(t >= m if self._code else t > m for m in milestones)
        elif h["batch_milestones"]:
            self.warn_once("length", "LABPAL does not know the training length, so its batch size schedule is off; "
                                     "set total_steps or call set_training_length().")
        scaled = h["noise_factor"] * 2**doublings
        k = max(1, int(scaled) if self._code else round(scaled))
        if k > 1 and not self.has_batch_source:
            self.warn_once("source", f"LABPAL wants {k} batches per step but has no batch source; "
                                     "it uses one batch per step.")
            return 1
        return k

    def step(self, closure: Closure | None = None) -> torch.Tensor:  # type: ignore[override]
        closure = self.require(closure)
        state = self.global_state
        state.setdefault("phase", DIRECTION)
        k = state["k"] if self._code and state["phase"] == MEASURE else self.batches_per_step()
        if state["phase"] == TRAIN and self._search_due(k):
            state["phase"] = DIRECTION
        closures = [closure] + [self.fresh_closure(closure) for _ in range(k - 1)]
        if state["phase"] == MEASURE:
            loss = self._measure(closures)
        elif state["phase"] == TRAIN:
            loss = self._train(closures)
        else:
            loss = self._choose_direction(closures)
        state["steps"] = state.get("steps", 0) + 1
        return loss

    def _search_due(self, k: int) -> bool:
        """Whether a training step gives way to a search: its phase is over, or (code) warm-up ends or k changes."""
        h, state = self.hyper, self.global_state
        if not self._code:
            return state["trained"] >= h["sgd_steps"]
        return (state["trained"] >= h["sgd_steps"] - 1 or state["updates"] == h["untrusted_updates"] + 2
                or k != state["k"])

    # -- phases -----------------------------------------------------------------------------
    def _choose_direction(self, closures: list[Closure]) -> torch.Tensor:
        state, h = self.global_state, self.hyper
        loss, params, gradient = self._mean_gradient(closures)
        with torch.no_grad():
            line = self._momentum(params, gradient) if self._code and h["momentum"] > 0 else gradient
        squared, along = dots([(line, line), (gradient, line)])
        norm = math.sqrt(squared)
        state["k"] = len(closures)
        if not self._usable(loss.item(), norm, along):
            if self._code and state.get("estimate") is not None:
                state["phase"] = TRAIN  # the code trains on; the next step tests again whether a search is due
            self._report(DIRECTION, 0.0, 0.0, loss.item(), len(closures), evaluations=len(closures))
            return loss
        for p, v in zip(params, line, strict=True):
            self.state[p]["line_direction"] = v.neg().div_(norm)
            self.state[p]["line_origin"] = p.detach().clone()
        target = h["approximation_batches"] * (len(closures) if self._code else 1)
        state.update(phase=MEASURE, direction_norm=norm, measured=0, target=target, sums=[0.0, 0.0, 0.0])
        evaluations = len(closures)
        if self._code:  # the direction's batches are measured too: at 0 already, at s1 and s2 now
            state["sums"][0] += loss.item() * len(closures)
            s1, s2 = h["measuring_points"]
            self._accumulate(closures, ((1, s1), (2, s2)))
            evaluations *= 3
        distance = self._end_search_if_measured()
        self._report(DIRECTION, distance, distance / norm, loss.item(), len(closures), evaluations)
        return loss

    def _usable(self, loss: float, norm: float, along: float) -> bool:
        """Whether a line can be measured: finite and descending; (code) a norm in range once an estimate exists."""
        if not (finite(loss, norm, along) and norm > 0 and along > 0):
            return False
        low, high = CODE_NORMS
        return not self._code or self.global_state.get("estimate") is None or low <= norm <= high

    def _measure(self, closures: list[Closure]) -> torch.Tensor:
        state = self.global_state
        s1, s2 = self.hyper["measuring_points"]
        first = self._accumulate(closures, ((0, 0.0), (1, s1), (2, s2)))
        distance = self._end_search_if_measured()
        self._report(MEASURE, distance, distance / state["direction_norm"], first.item(), len(closures),
                     evaluations=3 * len(closures))
        return first

    def _accumulate(self, closures: list[Closure], points: Sequence[tuple[int, float]]) -> torch.Tensor:
        """Add each closure's loss at each ``(index, s)`` of the line to ``sums[index]``; theta ends at the origin.

        Returns the first loss measured.
        """
        state = self.global_state
        params, origin, direction = self._line()
        losses = []
        for closure in closures:
            for i, s in points:
                place(params, origin, direction, s)
                losses.append(evaluate(closure, backward=False))
                state["sums"][i] += losses[-1].item()
        place(params, origin, direction, 0.0)
        state["measured"] += len(closures)
        return losses[0]

    def _line(self) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
        params = [p for p in self.all_params() if "line_direction" in self.state[p]]
        return params, [self.state[p]["line_origin"] for p in params], [self.state[p]["line_direction"] for p in params]

    def _end_search_if_measured(self) -> float:
        """Once enough batches are measured: fit, then (code) move along the line. Returns the distance moved."""
        state = self.global_state
        if state["measured"] < state["target"]:
            return 0.0
        self._fit()
        params, origin, direction = self._line()
        distance = 0.0
        if state.get("estimate") is None:
            state["phase"] = DIRECTION  # nothing to train with yet: search again
        else:
            state.update(phase=TRAIN, trained=0)
            if self._code:
                distance = state["step"]
                place(params, origin, direction, distance)
                state["updates"] = state.get("updates", 0) + 1
        for p in params:
            del self.state[p]["line_direction"], self.state[p]["line_origin"]
        return distance

    def _fit(self) -> None:
        """Parabola through the mean losses at the three points; update the estimate or keep the old one."""
        state, h = self.global_state, self.hyper
        l0, l1, l2 = (total / state["measured"] for total in state["sums"])
        a, b = (code_parabola if self._code else exact_parabola)(l0, l1, l2, *h["measuring_points"])
        state.update(slope=b, curvature=2 * a, s_min=math.nan)
        if not (finite(a, b) and a > 0 and b < 0):
            return
        state["s_min"] = -b / (2 * a)
        if self._code:
            self._keep_code_estimate(state["s_min"])
        else:
            step = min(h["alpha"] * state["s_min"], h["s_max"])
            state["estimate"] = step / state["direction_norm"] if h["variant"] == "sgd" else step

    def _keep_code_estimate(self, s_min: float) -> None:
        """The code's step and learning rate, each averaged over its last estimates once warm-up is over."""
        state, h = self.global_state, self.hyper
        step = max(h["alpha"] * min(s_min, h["s_max"]), CODE_EPSILON)
        lr = max(step / max(state["direction_norm"], CODE_EPSILON), CODE_EPSILON)
        if state.get("updates", 0) > h["untrusted_updates"] + 1:  # the code counts updates from -1
            for key, value in (("step_history", step), ("lr_history", lr)):
                history = state.setdefault(key, [])
                history.append(value)
                del history[:-h["averaged_estimates"]]
            step, lr = (math.fsum(state[key]) / len(state[key]) for key in ("step_history", "lr_history"))
        state.update(step=step, lr=lr, estimate=lr if h["variant"] == "sgd" else step)

    def _train(self, closures: list[Closure]) -> torch.Tensor:
        state, h = self.global_state, self.hyper
        loss, params, gradient = self._mean_gradient(closures)
        estimate, momentum = state["estimate"], h["momentum"]
        with torch.no_grad():
            velocity = self._momentum(params, gradient) if momentum > 0 else gradient
            # the code steps along the plain gradient when one batch makes the update (momentum steers its lines)
            update = gradient if self._code and len(closures) == 1 else velocity
            norm, length = (math.sqrt(v) for v in dots([(velocity, velocity), (update, update)]))
            lr = estimate if h["variant"] == "sgd" else (estimate / norm if norm > 0 else 0.0)
            if not finite(norm, lr):
                lr = 0.0
            if lr != 0.0:
                torch._foreach_add_(params, update, alpha=-lr)
        state["trained"] += 1
        state["updates"] = state.get("updates", 0) + 1
        self._report(TRAIN, lr * length, lr, loss.item(), len(closures), evaluations=len(closures))
        return loss

    def _momentum(self, params: list[torch.Tensor], gradient: list[torch.Tensor]) -> list[torch.Tensor]:
        """``v = momentum * v + g`` per parameter (``v = g`` the first time); returns the buffers."""
        buffers = []
        for p, g in zip(params, gradient, strict=True):
            buffer = self.state[p].get("momentum_buffer")
            if buffer is None:
                buffer = self.state[p]["momentum_buffer"] = g.detach().clone()
            else:
                buffer.mul_(self.hyper["momentum"]).add_(g)
            buffers.append(buffer)
        return buffers

    def _mean_gradient(self, closures: list[Closure]) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
        """Mean loss and gradient over the closures' batches, and the parameters that have a gradient.

        With one closure the gradient is ``.grad`` itself (no copy).
        """
        loss = evaluate(closures[0], backward=True)
        params = self.params_with_grad()
        if len(closures) == 1:
            return loss, params, [p.grad for p in params]
        total_loss = loss.detach().clone()
        total = copies([p.grad for p in params])
        for closure in closures[1:]:
            total_loss += evaluate(closure, backward=True).detach()
            torch._foreach_add_(total, [p.grad for p in params])
        torch._foreach_div_(total, len(closures))
        return total_loss / len(closures), params, total

    def _report(self, phase: int, distance: float, lr: float, loss: float, batches: int, evaluations: int) -> None:
        state = self.global_state
        estimate = state.get("estimate")
        self.diagnostics = {
            "phase": phase,
            "step_size": distance,
            "effective_lr": lr,
            "estimate": math.nan if estimate is None else estimate,
            "s_min": state.get("s_min", math.nan),
            "slope": state.get("slope", math.nan),
            "curvature": state.get("curvature", math.nan),
            "batches": batches,
            "loss": loss,
            "evaluations": evaluations,
        }
