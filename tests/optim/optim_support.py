"""Test helpers for the optimizer core: closures, batch sources and problems with known answers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

LossFn = Callable[[], torch.Tensor]


@dataclass
class Passes:
    """Counts forward and backward passes, like the trainer's closure does."""

    forward: int = 0
    backward: int = 0
    calls: list[bool] = field(default_factory=list)


def make_closure(params: list[torch.Tensor], loss_fn: LossFn, passes: Passes | None = None):
    """The closure protocol of jobs.optim: zero grads and backward only when asked."""

    def closure(backward: bool = True) -> torch.Tensor:
        if passes is not None:
            passes.forward += 1
            passes.backward += int(backward)
            passes.calls.append(backward)
        if not backward:
            with torch.no_grad():
                return loss_fn()
        for p in params:
            p.grad = None
        with torch.enable_grad():
            loss = loss_fn()
            loss.backward()
        return loss

    return closure


def spd_matrix(n: int, condition: float, seed: int = 0) -> np.ndarray:
    """Q = V diag(eigenvalues) V^T with eigenvalues from 1 to ``condition``."""
    rng = np.random.default_rng(seed)
    v, _ = np.linalg.qr(rng.standard_normal((n, n)))
    return v @ np.diag(np.geomspace(1.0, condition, n)) @ v.T


def quadratic(q: np.ndarray, params: list[torch.Tensor]) -> LossFn:
    q_t = torch.from_numpy(q)
    return lambda: 0.5 * (x := torch.cat([p.reshape(-1) for p in params])) @ q_t @ x


def flat(params: list[torch.Tensor]) -> np.ndarray:
    return torch.cat([p.detach().reshape(-1) for p in params]).numpy().copy()


class LeastSquares:
    """Linear least squares ``mean_i (a_i . w - y_i)^2 / 2`` over synthetic data; every batch loss is quadratic.

    ``closure(index)`` is a closure over the rows ``index``; ``source()`` draws a
    fresh random batch and remembers its rows in ``drawn``, so a test can
    recompute, independently, what each evaluation must have seen.
    """

    def __init__(self, dim: int = 5, examples: int = 400, batch: int = 16, noise: float = 0.5, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.a = rng.standard_normal((examples, dim)) * np.linspace(0.5, 2.0, dim)
        self.y = self.a @ rng.standard_normal(dim) + noise * rng.standard_normal(examples)
        self.batch = batch
        self.rng = np.random.default_rng(seed + 1)
        self.w = torch.zeros(dim, dtype=torch.float64, requires_grad=True)
        self.passes = Passes()
        self.drawn: list[np.ndarray] = []
        self._a, self._y = torch.from_numpy(self.a), torch.from_numpy(self.y)

    def loss(self, index: np.ndarray, w: np.ndarray | None = None) -> float:
        """The batch loss at ``w`` (default: the current parameters), computed in numpy."""
        w = self.w.detach().numpy() if w is None else w
        r = self.a[index] @ w - self.y[index]
        return 0.5 * float(r @ r) / len(index)

    def hessian(self, index: np.ndarray) -> np.ndarray:
        return self.a[index].T @ self.a[index] / len(index)

    def gradient(self, index: np.ndarray, w: np.ndarray) -> np.ndarray:
        return self.a[index].T @ (self.a[index] @ w - self.y[index]) / len(index)

    def closure(self, index: np.ndarray):
        rows = torch.from_numpy(index)

        def loss_fn() -> torch.Tensor:
            r = self._a[rows] @ self.w - self._y[rows]
            return 0.5 * (r @ r) / len(rows)

        return make_closure([self.w], loss_fn, self.passes)

    def draw(self) -> np.ndarray:
        index = self.rng.choice(len(self.y), self.batch, replace=False)
        self.drawn.append(index)
        return index

    def source(self):
        return self.closure(self.draw())


class RecordingSink:
    """Keeps what the trainer logs; evaluations without their wall-clock time, so two runs compare bitwise."""

    def __init__(self):
        self.steps: list[dict] = []
        self.evals: list[dict] = []
        self.measurements: list[dict] = []

    def log_eval(self, record: dict) -> None:
        self.evals.append({k: v for k, v in record.items() if k != "time"})

    def log_step(self, record: dict) -> None:
        self.steps.append(record)

    def log_measurement(self, record: dict) -> None:
        self.measurements.append(record)

    def log_progress(self, record: dict) -> None:
        pass
