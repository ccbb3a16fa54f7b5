"""The published LABPAL (cogsys-tuebingen/LABPAL, ``source/optimizers/lab_pal.py``) restated in numpy, as a test oracle.

One :meth:`CodeLabPal.step` is one call of the published ``step(closure)``:
one batch, given here as row indices of a :class:`optim_support.LeastSquares`
problem whose losses and gradients numpy computes. The state machine, the
counters and the formulas follow that file: the parabola from
``numpy.gradient`` (as the authors call it), the move that ends each
measurement and counts as an update, the averaging after the untrusted
updates, the batch multipliers truncated with ``int``, momentum as the code
applies it. It is a statement of those facts, independent of
``jobs.optim.labpal``, so that tests can compare the two update for update.
"""

from __future__ import annotations

import numpy as np

H = 0.000177  # the code's first measuring step
EPS = 1e-6


class CodeLabPal:
    """lab_pal.py's ``LabPal`` on a least-squares problem; ``w`` is the parameter vector."""

    def __init__(self, problem, mode: str = "SGD", alpha: float = 1.8, momentum: float = 0.0, reuse: int = 1000,
                 approximation: int = 10, schedule=((0, 1),), noise_factor: float = 1.0, untrusted: int = 400,
                 window: int = 25, mu: float = 0.01, max_step: float = 1.0):
        self.problem, self.mode, self.alpha, self.momentum = problem, mode, alpha, momentum
        self.reuse, self.approximation, self.untrusted, self.window = reuse, approximation, untrusted, window
        self.mu, self.max_step = mu, max_step
        self.schedule = [(step, max(int(multiple * noise_factor), 1)) for step, multiple in schedule]
        self.w = problem.w.detach().numpy().copy()
        self.calls, self.updates, self.k, self.start = -1, -1, 1, 0
        self.approximating = False
        self.step_size = self.lr = None  # the code's _last_update_step and _last_lr
        self.steps_seen, self.lrs_seen = [], []  # the code's non-averaged lists
        self.buffer = None  # momentum
        self.fits: list[tuple[float, float]] = []  # (a, b) of every fit, for the tests
        self._reset()

    def _reset(self) -> None:
        self.counter, self.sampled, self.batches, self.losses_at_0, self.gradient = 0, 0, [], [], None

    # -- one call -----------------------------------------------------------------------------
    def step(self, batch: np.ndarray) -> None:
        self.calls += 1
        if self.schedule and self.calls == self.schedule[0][0] and self.sampled == 0:
            self.k = self.schedule.pop(0)[1]
            self.approximating = True
            self._reset()
        if not self.approximating and self._due():
            self.approximating = True
            self._reset()
        if self.approximating:
            self._approximate(batch)
        else:
            self._train(batch)

    def _due(self, call: int | None = None) -> bool:
        """Whether a search starts at ``call`` (default: this one) for any reason but a batch-size milestone."""
        call = self.calls if call is None else call
        return (call - self.start) // self.k >= self.reuse or call == 0 or self.updates == self.untrusted + 1

    def wastes_next_call(self) -> bool:
        """Whether the next call feeds a training update that a search cuts short (possible with k > 1).

        The code then drops the batches of that update; tests feed it throwaway batches for those calls.
        """
        if self.approximating:
            return False
        first = self.calls + 1
        if (self.schedule and first == self.schedule[0][0] and self.sampled == 0) or self._due(first):
            return False
        return any(self._due(first + j) for j in range(1, self.k - self.sampled))

    def _accumulate(self, batch: np.ndarray) -> None:
        """The running mean of the gradients of this update's batches (the code's batch_buffer)."""
        self.sampled += 1
        g, n = self.problem.gradient(batch, self.w), self.sampled
        self.gradient = g if self.gradient is None else self.gradient * (n - 1) / n + g / n
        self.last_gradient = g

    def _velocity(self) -> np.ndarray:
        if self.momentum == 0:
            return self.gradient
        self.buffer = (np.zeros_like(self.gradient) if self.buffer is None else self.buffer) * self.momentum
        self.buffer = self.buffer + self.gradient
        return self.buffer

    # -- measuring ----------------------------------------------------------------------------
    def _approximate(self, batch: np.ndarray) -> None:
        self.counter += 1
        self.batches.append(batch)
        self.losses_at_0.append(self.problem.loss(batch, self.w))
        if self.counter <= self.k:
            self._accumulate(batch)
            if self.counter == self.k:
                self.direction = self._velocity()
                norm = float(np.linalg.norm(self.direction))
                along = -(self.gradient @ self.direction) / norm
                if along >= 0 or not np.isfinite(norm) or norm < 1e-3 or norm > 100:
                    self.approximating = False
                    self._reset()
                    return
                self.norm, self.origin = max(norm, EPS), self.w.copy()
        if self.counter == int(self.approximation * self.k):
            self._fit_and_move()

    def _fit_and_move(self) -> None:
        unit = self.direction / self.norm
        l0 = float(np.mean(self.losses_at_0))
        l1 = float(np.nanmean([self.problem.loss(b, self.origin - H * unit) for b in self.batches]))
        l2 = float(np.nanmean([self.problem.loss(b, self.origin - self.mu * unit) for b in self.batches]))
        positions = [0.0, H, self.mu]
        slopes = np.gradient([l0, l1, l2], positions)
        b, a = slopes[0], np.gradient(slopes, positions)[0] / 2
        self.fits.append((a, b))
        if a > 0 > b:
            step = max(min(-b / (2 * a), self.max_step) * self.alpha, EPS)
            lr = max(step / max(self.norm, EPS), EPS)
            if self.updates > self.untrusted:
                self.steps_seen.append(step)
                self.lrs_seen.append(lr)
                step = float(np.nanmean(self.steps_seen[-self.window:]))
                lr = float(np.nanmean(self.lrs_seen[-self.window:]))
            self.step_size, self.lr = step, lr
        if self.step_size is None:
            self.w = self.origin.copy()
        else:
            self.w = self.origin - self.step_size * unit
            self.start, self.approximating = self.calls, False
            self.updates += 1
        self._reset()

    # -- training -----------------------------------------------------------------------------
    def _train(self, batch: np.ndarray) -> None:
        self._accumulate(batch)
        if self.sampled < self.k:
            return
        velocity = self._velocity()
        # with one batch per update the code steps along that batch's gradient, whatever the momentum
        update = velocity if self.k > 1 else self.last_gradient
        if self.mode == "SGD":
            self.w = self.w - self.lr * update
        else:
            norm = float(np.linalg.norm(velocity))
            self.w = self.w - self.step_size * update / (norm if norm != 0 else EPS)
        self.updates += 1
        self.sampled, self.gradient = 0, None
