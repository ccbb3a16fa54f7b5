"""The training loop: seed, build, train, evaluate at a fixed cadence.

Evaluation follows DeepOBS: train/valid/test metrics at the start of every
``eval_every``-th epoch, epoch 0 included, and after the last epoch. A
non-finite loss ends the run as ``diverged`` (a result, not a crash).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from jobs.optim.registry import OPTIMIZERS, build_optimizer
from jobs.problems.base import SPLITS, Problem
from jobs.problems.build import build_problem
from jobs.schedules import lr_lambda

DTYPES = {"float32": torch.float32, "float64": torch.float64}


class MetricSink(Protocol):
    def log_eval(self, record: dict[str, Any]) -> None: ...
    def log_step(self, record: dict[str, Any]) -> None: ...


@dataclass
class PassCounts:
    forward: int = 0
    backward: int = 0


class Closure:
    """Re-evaluates one minibatch; every call sees the same random numbers.

    The RNG state is captured when the closure is made and restored at each
    call, so dropout masks are identical across a line search's
    evaluations, and the global stream advances the same whether an
    optimizer calls the closure once or five times.
    """

    def __init__(self, problem: Problem, batch: Any, counts: PassCounts, clip_grad_norm: float | None):
        self.problem, self.batch, self.counts, self.clip = problem, batch, counts, clip_grad_norm
        self.params = [p for p in problem.model.parameters() if p.requires_grad]
        self.cpu_state = torch.get_rng_state()
        self.cuda_state = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None

    def __call__(self, backward: bool = True) -> torch.Tensor:
        torch.set_rng_state(self.cpu_state)
        if self.cuda_state is not None:
            torch.cuda.set_rng_state_all(self.cuda_state)
        self.counts.forward += 1
        if not backward:
            with torch.no_grad():
                return self.problem.batch_loss(self.batch)
        for p in self.params:
            p.grad = None
        with torch.enable_grad():
            loss = self.problem.batch_loss(self.batch)
            loss.backward()
        self.counts.backward += 1
        if self.clip is not None:
            torch.nn.utils.clip_grad_norm_(self.params, self.clip)
        return loss


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def train(spec: Mapping[str, Any], sink: MetricSink) -> dict[str, Any]:
    """Run one validated spec to the end; returns the summary."""
    seed_everything(spec["seed"])
    settings = spec["train"]
    device = torch.device(spec["device"])
    problem = build_problem(spec["problem"], settings["batch_size"], device, DTYPES[spec["precision"]])
    optimizer = build_optimizer(spec["optimizer"], problem.model.parameters())
    has_lr = OPTIMIZERS.entry(spec["optimizer"]["name"]).has_lr
    epochs, steps_per_epoch = settings["epochs"], problem.steps_per_epoch()
    scheduler = (
        torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(spec["schedule"], epochs * steps_per_epoch))
        if has_lr
        else None
    )
    data_order = torch.Generator().manual_seed(spec["seed"])
    counts, step, started = PassCounts(), 0, time.perf_counter()
    epoch_lrs: list[float] = [optimizer.param_groups[0]["lr"]] if has_lr else []
    best: dict[str, float] = {}

    def evaluate(epoch: int) -> dict[str, Any]:
        record: dict[str, Any] = {"epoch": epoch, "step": step}
        for split in SPLITS:
            for name, value in problem.evaluate(split).items():
                record[f"{split}_{name}"] = value
        record["lr"] = float(np.mean(epoch_lrs)) if epoch_lrs else math.nan
        record.update(forward_passes=counts.forward, backward_passes=counts.backward,
                      time=time.perf_counter() - started)
        sink.log_eval(record)
        return record

    state, last, diverged_at = "completed", None, None
    for epoch in range(epochs + 1):
        if epoch % settings["eval_every"] == 0 or epoch == epochs:
            last = evaluate(epoch)
            _track_best(best, last)
            if not all(math.isfinite(v) for k, v in last.items() if k.endswith("_loss")):
                state, diverged_at = "diverged", {"epoch": epoch, "step": step}
                break
        if epoch == epochs:
            break
        epoch_lrs = []
        problem.model.train()
        for batch in problem.train_batches(data_order):
            lr_used = optimizer.param_groups[0]["lr"] if has_lr else math.nan
            loss = optimizer.step(Closure(problem, batch, counts, settings["clip_grad_norm"]))
            step += 1
            loss_value = float(loss.detach())
            diagnostics = dict(getattr(optimizer, "diagnostics", None) or {"effective_lr": lr_used})
            epoch_lrs.append(diagnostics["effective_lr"])
            if scheduler is not None:
                scheduler.step()
            if not math.isfinite(loss_value):
                state, diverged_at = "diverged", {"epoch": epoch, "step": step}
                break
            if settings["log_every"] and step % settings["log_every"] == 0:
                sink.log_step({"step": step, "epoch": epoch, "loss": loss_value, **diagnostics})
        if state == "diverged":
            break

    return {
        "state": state,
        "steps": step,
        "epochs": epochs,
        "final": last,
        "best": best,
        "diverged_at": diverged_at,
        "forward_passes": counts.forward,
        "backward_passes": counts.backward,
        "train_time": time.perf_counter() - started,
    }


def _track_best(best: dict[str, float], record: Mapping[str, Any]) -> None:
    """Best value over evaluation points: min of losses, max of accuracies."""
    for key, value in record.items():
        if not (key.endswith("_loss") or key.endswith("_accuracy")) or not math.isfinite(value):
            continue
        better = min if key.endswith("_loss") else max
        best[key] = better(best.get(key, value), value)
