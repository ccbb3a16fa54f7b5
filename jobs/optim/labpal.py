"""LABPAL: Large-Batch Parabolic Approximation Line Search (Mutschler & Zell 2021).

Chapter 6 and Algorithm 9 of Mutschler's dissertation on empirical line
searches (seed ``003``), also "Using a one dimensional parabolic model of
the full-batch loss to estimate learning rates during training". LABPAL
alternates two phases:

*Line search.* Fix the direction ``u = -g / ||g||`` of one (large) batch
gradient at theta. Measure the loss along it at ``s in {0, 1e-4, 1e-2}`` on
further batches, one inference at a time, until ``approximation_batches``
batches (|B_a| = 1280 samples at |B_i| = 128 in the dissertation) have been
averaged; the mean is a close estimate of the full-batch loss along the
line. Fit the parabola ``l(s) = a s^2 + b s + c`` through the three means and
take ``s_min = -b / (2a)``, scaled by the step-size adaptation ``alpha``:

    LABPAL&SGD:   lr = alpha * s_min / ||g||      (Eq. 6.6; reused as an SGD learning rate)
    LABPAL&NSGD:  s  = alpha * s_min              (reused as a step along the unit gradient)

*Training.* ``sgd_steps`` steps of SGD (``theta -= lr * g``) or normalised SGD
(``theta -= s * g / ||g||``), then a new line search.

Batch-size schedule: every phase uses ``k(t)`` batches per step (gradients
and losses averaged over ``k`` inferences), ``k = 1`` until half of
training, 2 until three quarters, 4 after (``batch_milestones``). Noise
adaptation (Eq. 6.8): ``noise_factor = (128 / |B|) (|D| / 40000)`` multiplies
``k``; :meth:`LABPAL.noise_factor_for` computes it. The dissertation also
multiplies the number of training steps by it: that is the run's length
(``train.epochs``), set in the run's config, not here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import torch

from jobs.optim.line_search import LineSearchOptimizer
from jobs.optim.protocol import Closure, evaluate
from jobs.optim.vectors import copies, dot, finite, place

VARIANTS = ("sgd", "nsgd")
DIRECTION, MEASURE, TRAIN = 0, 1, 2  # phases, as reported in diagnostics["phase"]


class LABPAL(LineSearchOptimizer):
    """LABPAL&SGD (``variant="sgd"``) or LABPAL&NSGD (``variant="nsgd"``); needs a closure.

    Defaults are Algorithm 9's and the sensitivity analysis's (Figs. 6.8,
    6.9): ``alpha=1.8``, ``sgd_steps=1000``, ``approximation_batches=10``
    (1280 / 128), ``momentum=0``, ``s_max=1.0`` (the "maximal step size"),
    ``noise_factor=1``, ``batch_milestones=(0.5, 0.75)``, measuring points
    ``(1e-4, 1e-2)``. The default variant is LABPAL&SGD, the one Algorithm 9
    spells out; the dissertation finds NSGD somewhat more robust.

    One call of :meth:`step` is one of three kinds, reported as
    ``diagnostics["phase"]``; with ``k`` batches per step they cost:

    * 0, direction: the gradient of ``k`` batches at theta fixes the line; no
      update. ``k`` forward and ``k`` backward passes.
    * 1, measure: ``k`` batches, each evaluated at the three points; no
      update. ``3k`` forward passes, no backward pass.
    * 2, train: one SGD or NSGD update on ``k`` batches. ``k`` forward and
      ``k`` backward passes.

    With the defaults a cycle is 1 direction, 10 measure and 1000 train
    steps: about 1% of the steps update nothing, matching the
    dissertation's "one step = one sampled batch, line-search batches
    included".

    Choices where the text leaves room:

    * The direction-defining batch is not one of the measured batches (the
      dissertation shows its loss along its own line is biased, Fig. 6.1),
      so measuring starts on the next step. The direction is always the
      plain batch gradient; ``momentum`` acts in the training phase only
      (``v = momentum * v + g``, NSGD normalises ``v``).
    * ``s_max`` caps ``alpha * s_min`` in both variants, before the SGD
      variant divides by ``||g||``.
    * A failed fit (``a <= 0``, ``b >= 0`` or non-finite) keeps the previous
      estimate; when there is none yet, a new line search starts at once
      instead of training with no step size.
    * ``k(t)`` needs the training length: ``total_steps`` (in calls of
      :meth:`step`) or the trainer's :meth:`set_training_length`; without
      either ``k`` stays at 1 and a warning is logged once. ``k`` is
      ``round(noise_factor * 2^milestones passed)``, at least 1, since a batch
      cannot be split. Batches beyond the step's own come from
      :meth:`set_batch_source`; without a source every step uses only its
      own batch (``k = 1``) and a warning is logged once.
    * theta is restored bitwise after measuring, from a copy kept during the
      line search; that copy and the direction are the memory beyond SGD.

    ``diagnostics``: ``phase``, ``step_size`` (distance moved),
    ``effective_lr`` (0 unless the step trained; NSGD: ``s / ||v||``),
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
        measuring_points: Sequence[float] = (1e-4, 1e-2),
    ):
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {', '.join(VARIANTS)} (got {variant!r}).")
        if not 0.0 < alpha < math.inf:
            raise ValueError(f"alpha must be a finite number > 0 (got {alpha!r}).")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1) (got {momentum!r}).")
        if sgd_steps < 1 or approximation_batches < 1:
            raise ValueError(f"sgd_steps and approximation_batches must be >= 1 (got {sgd_steps!r}, "
                             f"{approximation_batches!r}).")
        if not s_max > 0.0:
            raise ValueError(f"s_max must be > 0 (got {s_max!r}).")
        if not 0.0 < noise_factor < math.inf:
            raise ValueError(f"noise_factor must be a finite number > 0 (got {noise_factor!r}).")
        if not all(0.0 < m < 1.0 for m in batch_milestones):
            raise ValueError(f"batch_milestones must be fractions of training in (0, 1) (got {batch_milestones!r}).")
        if total_steps is not None and total_steps < 1:
            raise ValueError(f"total_steps must be >= 1 (got {total_steps!r}).")
        if len(measuring_points) != 2 or not 0.0 < measuring_points[0] < measuring_points[1]:
            raise ValueError(f"measuring_points must be two steps 0 < s1 < s2 (got {measuring_points!r}).")
        defaults = {"variant": variant, "alpha": alpha, "momentum": momentum, "sgd_steps": sgd_steps,
                    "approximation_batches": approximation_batches, "s_max": s_max, "noise_factor": noise_factor,
                    "batch_milestones": tuple(batch_milestones), "total_steps": total_steps,
                    "measuring_points": tuple(measuring_points)}
        super().__init__(params, defaults)

    @staticmethod
    def noise_factor_for(batch_size: int, dataset_size: int) -> float:
        """Eq. 6.8: ``(128 / |B|) (|D| / 40000)``, relative to the CIFAR-10 setting the defaults were tuned on."""
        return (128 / batch_size) * (dataset_size / 40_000)

    def set_training_length(self, total_steps: int, steps_per_epoch: int) -> None:
        """Take the number of steps from the trainer unless the constructor fixed it."""
        if self.hyper["total_steps"] is None:
            self.global_state["total_steps"] = int(total_steps)

    def batches_per_step(self) -> int:
        """``k(t)``: how many batches this step averages over."""
        h, state = self.hyper, self.global_state
        total = h["total_steps"] or state.get("total_steps")
        doublings = 0
        if total is not None:
            t = state.get("steps", 0)
            doublings = sum(t > math.floor(total * m) for m in h["batch_milestones"])
        elif h["batch_milestones"]:
            self.warn_once("length", "LABPAL does not know the training length, so its batch size schedule is off; "
                                     "set total_steps or call set_training_length().")
        k = max(1, round(h["noise_factor"] * 2**doublings))
        if k > 1 and not self.has_batch_source:
            self.warn_once("source", f"LABPAL wants {k} batches per step but has no batch source; "
                                     "it uses one batch per step.")
            return 1
        return k

    def step(self, closure: Closure | None = None) -> torch.Tensor:  # type: ignore[override]
        closure = self.require(closure)
        state = self.global_state
        state.setdefault("phase", DIRECTION)
        closures = [closure] + [self.fresh_closure(closure) for _ in range(self.batches_per_step() - 1)]
        if state["phase"] == MEASURE:
            loss = self._measure(closures)
        elif state["phase"] == TRAIN:
            loss = self._train(closures)
        else:
            loss = self._choose_direction(closures)
        state["steps"] = state.get("steps", 0) + 1
        return loss

    # -- phases -----------------------------------------------------------------------------
    def _choose_direction(self, closures: list[Closure]) -> torch.Tensor:
        state = self.global_state
        loss, params, gradient = self._mean_gradient(closures)
        norm = math.sqrt(dot(gradient, gradient)) if params else 0.0
        if finite(loss.item(), norm) and norm > 0:
            for p, g in zip(params, gradient, strict=True):
                self.state[p]["line_direction"] = g.neg().div_(norm)
                self.state[p]["line_origin"] = p.detach().clone()
            state.update(phase=MEASURE, direction_norm=norm, measured=0, sums=[0.0, 0.0, 0.0])
        self._report(DIRECTION, 0.0, 0.0, loss.item(), len(closures), evaluations=len(closures))
        return loss

    def _measure(self, closures: list[Closure]) -> torch.Tensor:
        state, h = self.global_state, self.hyper
        params = [p for p in self.all_params() if "line_direction" in self.state[p]]
        origin = [self.state[p]["line_origin"] for p in params]
        direction = [self.state[p]["line_direction"] for p in params]
        first = None
        for closure in closures:
            for i, s in enumerate((0.0, *h["measuring_points"])):
                place(params, origin, direction, s)
                value = evaluate(closure, backward=False)
                first = value if first is None else first
                state["sums"][i] += value.item()
        place(params, origin, direction, 0.0)
        state["measured"] += len(closures)
        if state["measured"] >= h["approximation_batches"]:
            self._fit()
            for p in params:
                del self.state[p]["line_direction"], self.state[p]["line_origin"]
        self._report(MEASURE, 0.0, 0.0, first.item(), len(closures), evaluations=3 * len(closures))
        return first

    def _fit(self) -> None:
        """Parabola through the mean losses at the three points; update the estimate or keep the old one."""
        state, h = self.global_state, self.hyper
        s1, s2 = h["measuring_points"]
        l0, l1, l2 = (total / state["measured"] for total in state["sums"])
        a = ((l2 - l0) / s2 - (l1 - l0) / s1) / (s2 - s1)
        b = (l1 - l0) / s1 - a * s1
        state.update(slope=b, curvature=2 * a, s_min=math.nan)
        if finite(a, b) and a > 0 and b < 0:
            state["s_min"] = -b / (2 * a)
            step = min(h["alpha"] * state["s_min"], h["s_max"])
            state["estimate"] = step / state["direction_norm"] if h["variant"] == "sgd" else step
        if state.get("estimate") is None:
            state["phase"] = DIRECTION  # nothing to train with yet: search again
        else:
            state.update(phase=TRAIN, trained=0)

    def _train(self, closures: list[Closure]) -> torch.Tensor:
        state, h = self.global_state, self.hyper
        loss, params, gradient = self._mean_gradient(closures)
        estimate, momentum = state["estimate"], h["momentum"]
        with torch.no_grad():
            update = gradient
            if momentum > 0:
                update = []
                for p, g in zip(params, gradient, strict=True):
                    buffer = self.state[p].get("momentum_buffer")
                    if buffer is None:
                        buffer = self.state[p]["momentum_buffer"] = g.detach().clone()
                    else:
                        buffer.mul_(momentum).add_(g)
                    update.append(buffer)
            norm = math.sqrt(dot(update, update)) if params else 0.0
            lr = estimate if h["variant"] == "sgd" else (estimate / norm if norm > 0 else 0.0)
            if not finite(norm, lr):
                lr = 0.0
            if lr != 0.0:
                torch._foreach_add_(params, update, alpha=-lr)
        state["trained"] += 1
        if state["trained"] >= h["sgd_steps"]:
            state["phase"] = DIRECTION
        self._report(TRAIN, lr * norm, lr, loss.item(), len(closures), evaluations=len(closures))
        return loss

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

