"""The training loop: seed, build, train, evaluate at a fixed cadence, checkpoint, resume.

Evaluation follows DeepOBS: train/valid/test metrics at the start of every
``eval_every``-th epoch, epoch 0 included, and after the last epoch. A
non-finite loss ends the run as ``diverged`` (a result, not a crash).

Checkpoints: at every epoch boundary before the last, after that
boundary's evaluation, the trainer hands :meth:`Trainer.state_dict` to its
``save`` callback. Resuming from such a state skips that boundary (its
evaluation is already logged) and trains on from there; on CPU the resumed
run logs bitwise what the uninterrupted run logs, ``time`` aside.

A budget (successive halving's rung, see :mod:`orchestrator.halving`):
``until=b`` ends the run as ``stopped`` at epoch boundary ``b`` right after
that boundary's evaluation and checkpoint, exactly where an uninterrupted
run would go on training. Resumed from that checkpoint with a larger budget
(or none), it goes on as if never stopped. The budget is not part of the
spec: the run is the same run, only its end is postponed.

Data parallelism: with a :class:`~jobs.distributed.World` of several ranks,
``train.batch_size`` is the global batch and every closure averages over
ranks (see :mod:`jobs.distributed`).

Fresh batches: an optimizer with a ``set_batch_source(source)`` method gets
a source once, after it is built. ``source()`` returns a new
:class:`MinibatchClosure` (same protocol, pass counts, clipping and rank averaging
as the step's closure) over a fresh random minibatch of the training set,
``train.batch_size`` examples, drawn by a generator of its own seeded with
``seed + 1``: independent of the epoch data order, and checkpointed. Its
dropout masks come from the global stream at the moment ``source()`` is
called. An optimizer with ``set_training_length(total_steps,
steps_per_epoch)`` is told the run's length once, before the first step.

Evaluation point: an optimizer with ``train()`` and ``eval()`` (Schedule-Free;
the protocol is :mod:`jobs.optim.protocol`'s) is switched to its evaluation
point at every epoch boundary, evaluated or not, before anything else
happens there, and back to its training point before the next epoch; the
evaluation, the measurement and the checkpoint all see that point, and a
resumed run switches back from the checkpoint's as the unbroken run did.
Every boundary, not only evaluated ones: the round trip y → x → y rounds,
and it then does so at the same steps whatever ``eval_every`` and whether
checkpoints are taken. Where the boundary is evaluated or measured, the model's BatchNorm running
statistics are first recomputed there (:mod:`jobs.batch_norm`) from the
first :data:`BATCH_NORM_BATCHES` minibatches that a generator of their own,
seeded afresh every time (``seed + BATCH_NORM_SEED_OFFSET``), draws: the same
batches at every boundary, nothing to checkpoint. Every global random state
is restored afterwards, so the training does not depend on ``eval_every``.
These forward passes are not counted in the pass counts, as evaluations
are not.

Measurements: with a ``measure`` section in the spec (see
:mod:`jobs.measure`), the listed epoch boundaries (null: every evaluated
one) are measured right after their evaluation, before the checkpoint, and
the record goes to the sink's ``log_measurement``. Training continues as
if nothing had happened: same metrics, and the time spent measuring does
not count as training time. A resumed boundary is not measured again, nor
one whose evaluation ended the run as diverged.
"""

from __future__ import annotations

import itertools
import math
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from jobs import checkpoint
from jobs.batch_norm import recompute_batch_norm
from jobs.curvature.outputs import ModelOutput
from jobs.distributed import ALONE, World
from jobs.measure.take import take_measurement
from jobs.optim.protocol import has_eval_point, step_with, takes_closure
from jobs.optim.registry import OPTIMIZERS, build_optimizer
from jobs.problems.base import SPLITS, Problem, TensorProblem
from jobs.problems.build import build_problem
from jobs.schedules import lr_lambda

DTYPES = {"float32": torch.float32, "float64": torch.float64}
#: Offset of the fresh-batch generator's seed from the run's seed.
BATCH_SOURCE_SEED_OFFSET = 1
#: Offset of the seed of the batches that recompute BatchNorm statistics (measurements use 2).
BATCH_NORM_SEED_OFFSET = 3
#: Minibatches that recompute BatchNorm statistics at an evaluation point (the schedulefree package's README).
BATCH_NORM_BATCHES = 50


class MetricSink(Protocol):
    def log_eval(self, record: dict[str, Any]) -> None: ...
    def log_step(self, record: dict[str, Any]) -> None: ...
    def log_measurement(self, record: dict[str, Any]) -> None: ...
    def log_progress(self, record: dict[str, Any]) -> None: ...


@dataclass
class PassCounts:
    forward: int = 0
    backward: int = 0


class MinibatchClosure:
    """Re-evaluates one minibatch; every call sees the same random numbers.

    The RNG state is captured when the closure is made and restored at each
    call, so dropout masks are identical across a line search's
    evaluations, and the global stream advances the same whether an
    optimizer calls the closure once or five times. Over several ranks the
    loss and the gradients are averaged, before clipping.
    """

    def __init__(self, problem: Problem, batch: Any, counts: PassCounts, clip_grad_norm: float | None,
                 world: World = ALONE):
        self.problem, self.batch, self.counts, self.clip, self.world = problem, batch, counts, clip_grad_norm, world
        self.params = [p for p in problem.model.parameters() if p.requires_grad]
        self.cpu_state = torch.get_rng_state()
        self.cuda_state = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None

    def _replay(self) -> None:
        """Restore the random numbers of the closure's creation; every evaluation is one forward pass."""
        torch.set_rng_state(self.cpu_state)
        if self.cuda_state is not None:
            torch.cuda.set_rng_state_all(self.cuda_state)
        self.counts.forward += 1

    def loss_with_graph(self) -> torch.Tensor:
        """The minibatch objective with its autograd graph, for curvature products (one rank only).

        Counted as one forward and one backward pass: its user takes the step's gradient from this graph.
        Curvature products are not counted here (optimizers report them in their diagnostics).
        """
        self._curvature_on_one_rank()
        self._replay()
        self.counts.backward += 1
        with torch.enable_grad():
            return self.problem.batch_loss(self.batch)

    def model_output(self) -> ModelOutput:
        """The minibatch's outputs, targets and likelihood, for Gauss-Newton, Fisher and K-FAC (one rank only).

        Counted like :meth:`loss_with_graph`.
        """
        self._curvature_on_one_rank()
        if not isinstance(self.problem, TensorProblem):
            raise ValueError(f"{type(self.problem).__name__} has no network outputs; Gauss-Newton, Fisher and K-FAC "
                             "need a problem with a model and data.")
        self._replay()
        self.counts.backward += 1
        with torch.enable_grad():
            return self.problem.model_output(self.batch)

    def _curvature_on_one_rank(self) -> None:
        if self.world.size > 1:
            raise ValueError("Curvature products are not averaged over ranks; run this optimizer with one task "
                             "per run (launcher.nodes=1, launcher.tasks_per_node=1).")

    def __call__(self, backward: bool = True) -> torch.Tensor:
        self._replay()
        if not backward:
            with torch.no_grad():
                return self.world.mean(self.problem.batch_loss(self.batch))
        for p in self.params:
            p.grad = None
        with torch.enable_grad():
            loss = self.problem.batch_loss(self.batch)
            loss.backward()
        self.counts.backward += 1
        self.world.average_gradients(self.params)
        if self.clip is not None:
            torch.nn.utils.clip_grad_norm_(self.params, self.clip)
        return self.world.mean(loss)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class Trainer:
    """One run's model, optimizer and counters; :meth:`run` trains it to the end."""

    def __init__(self, spec: Mapping[str, Any], sink: MetricSink, world: World = ALONE,
                 data_dir: str | Path | None = None):
        seed_everything(spec["seed"])
        self.spec, self.sink, self.world, self.settings = spec, sink, world, spec["train"]
        world.check_batch_size(self.settings["batch_size"])
        self.problem = build_problem(spec["problem"], self.settings["batch_size"], torch.device(spec["device"]),
                                     DTYPES[spec["precision"]], data_dir=data_dir)
        self.optimizer = build_optimizer(spec["optimizer"], self.problem.model.parameters(), self.problem.model)
        self.takes_closure = takes_closure(self.optimizer)
        self.eval_point = has_eval_point(self.optimizer)
        self.epochs = self.settings["epochs"]
        self.measurement = spec.get("measure")
        if self.measurement is not None and world.size > 1:
            raise ValueError("Measurements (the spec's measure section) run in one process; launch this run with "
                             "one task (launcher.nodes=1, launcher.tasks_per_node=1) or without measure.")
        self.scheduler = None
        if OPTIMIZERS.resolve(spec["optimizer"]).has_lr:
            total_steps = self.epochs * self.problem.steps_per_epoch()
            self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lr_lambda(spec["schedule"], total_steps))
        self.data_order = torch.Generator().manual_seed(spec["seed"])
        self.fresh_batches = torch.Generator().manual_seed(spec["seed"] + BATCH_SOURCE_SEED_OFFSET)
        self.counts = PassCounts()
        self.epoch = self.step = 0
        self.best: dict[str, float] = {}
        self.last: dict[str, Any] | None = None
        self.earlier_time = 0.0  # seconds trained by earlier attempts
        self.clock = time.perf_counter()
        if hasattr(self.optimizer, "set_batch_source"):
            self.optimizer.set_batch_source(self.fresh_closure)
        if hasattr(self.optimizer, "set_training_length"):
            steps_per_epoch = self.problem.steps_per_epoch()
            self.optimizer.set_training_length(self.epochs * steps_per_epoch, steps_per_epoch)

    def closure(self, batch: Any) -> MinibatchClosure:
        return MinibatchClosure(self.problem, self.world.shard(batch), self.counts, self.settings["clip_grad_norm"],
                                self.world)

    def fresh_closure(self) -> MinibatchClosure:
        """A closure over a random training minibatch drawn independently of the epoch order."""
        return self.closure(next(iter(self.problem.train_batches(self.fresh_batches))))

    def train_time(self) -> float:
        return self.earlier_time + time.perf_counter() - self.clock

    def state_dict(self) -> dict[str, Any]:
        """Everything an exact continuation from this epoch boundary needs.

        Not the past epoch's effective learning rates: their one reader, this
        boundary's evaluation, is done before the state is taken. The model
        holds an optimizer's evaluation point, where the boundary put it.
        """
        return {
            "epoch": self.epoch,
            "step": self.step,
            "model": self.problem.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
            "rng": checkpoint.capture_rng(),
            "data_order": self.data_order.get_state(),
            "fresh_batches": self.fresh_batches.get_state(),
            "passes": {"forward": self.counts.forward, "backward": self.counts.backward},
            "best": dict(self.best),
            "last": self.last,
            "train_time": self.train_time(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.epoch, self.step = state["epoch"], state["step"]
        self.problem.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        checkpoint.restore_rng(state["rng"])
        self.data_order.set_state(state["data_order"])
        self.fresh_batches.set_state(state["fresh_batches"])
        self.counts = PassCounts(**state["passes"])
        self.best, self.last = dict(state["best"]), state["last"]
        self.earlier_time, self.clock = state["train_time"], time.perf_counter()

    def run(self, save: Callable[[dict[str, Any]], None] | None = None, resumed: bool = False,
            until: int | None = None) -> dict[str, Any]:
        """Train from the current epoch boundary to the end, or ``stopped`` at boundary ``until``.

        ``resumed``: this boundary is already done.
        """
        epoch_lrs = [] if self.scheduler is None else [self.optimizer.param_groups[0]["lr"]]
        state, diverged_at = "completed", None
        for epoch in range(self.epoch, self.epochs + 1):
            self.epoch = epoch
            if not resumed:
                self.to_eval_point()
                if self.evaluates(epoch):
                    self.last = self.evaluate(epoch_lrs)
                    track_best(self.best, self.last)
                    if not all(math.isfinite(v) for k, v in self.last.items() if k.endswith("_loss")):
                        state, diverged_at = "diverged", {"epoch": epoch, "step": self.step}
                        break
                if self.measures(epoch):
                    self.measure()
                if epoch == self.epochs:
                    break
                if save is not None:
                    save(self.state_dict())
                if until is not None and epoch >= until:
                    state = "stopped"
                    break
            resumed = False
            if self.eval_point:
                self.optimizer.train()
            epoch_lrs, diverged_at = self.train_epoch()
            if diverged_at is not None:
                state = "diverged"
                break
        return {
            "state": state,
            "steps": self.step,
            "epochs": self.epochs,
            "final": self.last,
            "best": self.best,
            "diverged_at": diverged_at,
            **({"budget_epochs": self.epoch} if state == "stopped" else {}),
            "forward_passes": self.counts.forward,
            "backward_passes": self.counts.backward,
            "train_time": self.train_time(),
        }

    def to_eval_point(self) -> None:
        """An optimizer with an evaluation point goes there; BatchNorm statistics follow where they will be read."""
        if not self.eval_point:
            return
        self.optimizer.eval()
        if not (self.evaluates(self.epoch) or self.measures(self.epoch)):
            return
        rng = checkpoint.capture_rng()
        generator = torch.Generator().manual_seed(self.spec["seed"] + BATCH_NORM_SEED_OFFSET)
        batches = itertools.islice(self.problem.train_batches(generator), BATCH_NORM_BATCHES)
        recompute_batch_norm(self.problem.model, lambda batch: self.problem.batch_loss(self.world.shard(batch)),
                             batches)
        checkpoint.restore_rng(rng)

    def evaluates(self, epoch: int) -> bool:
        return epoch % self.settings["eval_every"] == 0 or epoch == self.epochs

    def measures(self, epoch: int) -> bool:
        if self.measurement is None:
            return False
        listed = self.measurement["epochs"]
        return self.evaluates(epoch) if listed is None else epoch in listed

    def measure(self) -> None:
        """Take the spec's measurement at this boundary and log it, leaving training as it was.

        Besides what :func:`jobs.measure.take.untouched` restores, the fresh-batch
        generator and the pass counts are put back (the update line's optimizer step
        may draw fresh batches), and the clock skips the time spent.
        """
        started = time.perf_counter()
        fresh_batches, passes = self.fresh_batches.get_state(), (self.counts.forward, self.counts.backward)
        counts = PassCounts()
        record = take_measurement(self.measurement, self.problem, self.optimizer,
                                  lambda batch: MinibatchClosure(self.problem, batch, counts,
                                                                 self.settings["clip_grad_norm"]),
                                  self.spec["seed"])
        self.fresh_batches.set_state(fresh_batches)
        self.counts.forward, self.counts.backward = passes
        seconds = time.perf_counter() - started
        self.clock += seconds
        self.sink.log_measurement({"epoch": self.epoch, "step": self.step, **record, "seconds": seconds})

    def evaluate(self, epoch_lrs: list[float]) -> dict[str, Any]:
        record: dict[str, Any] = {"epoch": self.epoch, "step": self.step}
        for split in SPLITS:
            for name, value in self.problem.evaluate(split).items():
                record[f"{split}_{name}"] = value
        record["lr"] = float(np.mean(epoch_lrs)) if epoch_lrs else math.nan
        record.update(forward_passes=self.counts.forward, backward_passes=self.counts.backward,
                      time=self.train_time())
        self.sink.log_eval(record)
        return record

    def train_epoch(self) -> tuple[list[float], dict[str, int] | None]:
        """One pass over the training set; the effective lrs it used, and where it diverged (or None)."""
        lrs: list[float] = []
        log_every = self.settings["log_every"]
        total_steps = self.epochs * self.problem.steps_per_epoch()
        self.problem.model.train()
        for batch in self.problem.train_batches(self.data_order):
            lr_used = math.nan if self.scheduler is None else self.optimizer.param_groups[0]["lr"]
            loss = step_with(self.optimizer, self.closure(batch), self.takes_closure)
            self.step += 1
            loss_value = float(loss.detach())
            diagnostics = {"effective_lr": lr_used, **_numbers(getattr(self.optimizer, "diagnostics", None) or {})}
            lrs.append(diagnostics["effective_lr"])
            if self.scheduler is not None:
                self.scheduler.step()
            if not math.isfinite(loss_value):
                return lrs, {"epoch": self.epoch, "step": self.step}
            if log_every and self.step % log_every == 0:
                self.sink.log_step({"step": self.step, "epoch": self.epoch, "loss": loss_value, **diagnostics})
            self.sink.log_progress({"step": self.step, "epoch": self.epoch, "steps": total_steps, "loss": loss_value})
        return lrs, None


def train(
    spec: Mapping[str, Any],
    sink: MetricSink,
    *,
    world: World = ALONE,
    resume: Mapping[str, Any] | None = None,
    save: Callable[[dict[str, Any]], None] | None = None,
    data_dir: str | Path | None = None,
    until: int | None = None,
) -> dict[str, Any]:
    """Run one validated spec to the end (or to epoch ``until``), from ``resume`` (a saved state) if given.

    Returns the summary. ``data_dir`` is where problems with dataset files find them (not part of the
    spec: a path).
    """
    trainer = Trainer(spec, sink, world, data_dir)
    if resume is not None:
        trainer.load_state_dict(resume)
    return trainer.run(save, resumed=resume is not None, until=until)


def _numbers(diagnostics: Mapping[str, Any]) -> dict[str, Any]:
    """An optimizer's diagnostics as plain numbers (a plugin may report 0-d tensors)."""
    return {k: (v.item() if isinstance(v, torch.Tensor) else v) for k, v in diagnostics.items()}


def track_best(best: dict[str, float], record: Mapping[str, Any]) -> None:
    """Best value over evaluation points: min of losses, max of accuracies."""
    for key, value in record.items():
        if not (key.endswith("_loss") or key.endswith("_accuracy")) or not math.isfinite(value):
            continue
        better = min if key.endswith("_loss") else max
        best[key] = better(best.get(key, value), value)
