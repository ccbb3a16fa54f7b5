"""The training loop of a vectorised group: M runs of one problem and optimizer as one model, each run as if alone.

:class:`GroupTrainer` trains the members of a group (specs that
:func:`jobs.vectorized.can_vectorize` accepts) in lockstep with ``torch.func``:
one ``vmap`` of ``grad_and_value`` over the stacked parameters and the stacked
minibatches gives every member its loss and gradient, one stacked optimizer
(:mod:`jobs.vectorized_optim`) steps them all. What each member sees is what
:class:`jobs.train.Trainer` would give its run alone:

* initial weights: ``seed_everything(seed)``, then the problem built, for each member in turn;
* minibatches: the problem's ``train_batches`` with the member's own data-order generator, seeded
  with its seed (different seeds, different batches and augmentations);
* learning rate: the member's schedule, ``lr * lr_lambda(step)`` as LambdaLR computes it;
* evaluation at the same epochs, the same records (epoch, step, losses and accuracies of every
  split, the epoch's mean effective lr, pass counts, time) to the member's own sink; the forward
  passes of ``TensorProblem.evaluate`` on the member's parameters, vmapped;
* ``log_step`` and ``log_progress`` at the same steps with the same fields;
* a non-finite loss (a step's or an evaluation's) ends the member ``diverged`` with the same
  ``diverged_at``; a budget (``until``) ends it ``stopped`` after that boundary's checkpoint.
  A member that ends leaves the group (its rows are dropped): its steps and passes stop counting,
  and the others go on.

Measured on CPU (tests/jobs/test_vectorized.py, tests/problems/test_vectorized_problems.py), the
members' metrics, step records and summaries equal their runs' bitwise for digits_mlp and
mnist_mlp in float32 and float64, digits_cnn in float64 and mnist_logreg in float32: the batched
products and the per-member reductions round as the unbatched ones, and the stacked optimizer
replays torch.optim's operations. Elsewhere a batched product rounds differently from the
unbatched one (a convolution, which vmap turns into a grouped convolution, in its weight
gradient; some matrix products), by about 1e-7 relative per step in float32 and 1e-16 in
float64, and members agree with their runs to the drift that builds up (the tolerances those
tests state). ``time`` is the group's wall clock: the members trained together for that long.

Checkpoints: :meth:`GroupTrainer.member_state` is exactly the state :meth:`jobs.train.Trainer.state_dict`
holds for that run at that boundary (model, optimizer and scheduler state dicts in torch's
layouts, generators, global RNG states, counters, best and last), so a member's checkpoint
resumes alone or in a group, and a group resumes from checkpoints its runs wrote alone. Nothing
draws from the global random streams while training (no dropout, see
:mod:`jobs.vectorized`), so a member's global RNG state at any boundary is the one right after
its initialisation.

Memory: once the first member is built, :func:`check_memory` estimates the group's needs and
raises :class:`GroupTooLarge` (one sentence naming ``launcher.vectorize``) when they exceed what is
free on the device.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.func import functional_call, grad_and_value, vmap

from jobs import checkpoint
from jobs.optim.registry import build_optimizer
from jobs.problems.base import SPLITS, Split, TensorProblem
from jobs.problems.build import build_problem
from jobs.problems.nets.layers import decayed_weights, l2_penalty
from jobs.schedules import lr_lambda
from jobs.train import BATCH_SOURCE_SEED_OFFSET, DTYPES, MetricSink, seed_everything, track_best
from jobs.vectorized_optim import StackedOptimizer, stacked_optimizer

#: Bytes per MiB and GiB, for the memory sentence.
MIB, GIB = 2**20, 2**30


class GroupTooLarge(MemoryError):
    """The group would not fit in the device's free memory; the message says how many members would."""


@dataclass
class Member:
    """One run of the group: its spec, sink and everything :class:`jobs.train.Trainer` keeps per run."""

    spec: Mapping[str, Any]
    sink: MetricSink
    until: int | None
    schedule: Callable[[int], float]
    rng: dict[str, Any]
    data_order: torch.Generator
    fresh_batches: Tensor
    optimizer_groups: list[dict[str, Any]]
    scheduler_state: dict[str, Any]
    step: int = 0
    forward: int = 0
    backward: int = 0
    best: dict[str, float] = field(default_factory=dict)
    last: dict[str, Any] | None = None
    earlier_time: float = 0.0
    epoch_lrs: list[float] = field(default_factory=list)

    def lr(self) -> float:
        """The learning rate of the next step: LambdaLR's ``base_lr * lr_lambda(last_epoch)``."""
        return self.spec["optimizer"]["lr"] * self.schedule(self.step)


class GroupTrainer:
    """The members of one group, stacked; :meth:`run` trains them all to their ends.

    ``resumes``: per member, the checkpoint state to continue from, or None; all of one epoch boundary.
    """

    def __init__(self, specs: Sequence[Mapping[str, Any]], sinks: Sequence[MetricSink],
                 untils: Sequence[int | None] | None = None, resumes: Sequence[Mapping[str, Any] | None] | None = None,
                 data_dir: str | Path | None = None):
        first = specs[0]
        self.settings, self.epochs = first["train"], first["train"]["epochs"]
        self.device, self.dtype = torch.device(first["device"]), DTYPES[first["precision"]]
        untils = untils or [None] * len(specs)
        members, rows = [], []
        for spec, sink, until in zip(specs, sinks, untils, strict=True):
            seed_everything(spec["seed"])
            problem = build_problem(spec["problem"], self.settings["batch_size"], self.device, self.dtype,
                                    data_dir=data_dir)
            optimizer = build_optimizer(spec["optimizer"], problem.model.parameters(), problem.model)
            schedule = lr_lambda(spec["schedule"], self.epochs * problem.steps_per_epoch())
            scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
            members.append(Member(
                spec, sink, until, schedule, checkpoint.capture_rng(),
                torch.Generator().manual_seed(spec["seed"]),
                torch.Generator().manual_seed(spec["seed"] + BATCH_SOURCE_SEED_OFFSET).get_state(),
                optimizer.state_dict()["param_groups"], scheduler.state_dict()))
            rows.append(torch.cat([p.detach().reshape(-1) for p in problem.model.parameters()]))
            if len(rows) == 1:  # the first member's problem serves all: data, losses, evaluation
                self.problem = problem
                check_memory(problem, spec, len(specs))
        model = self.problem.model
        if any(True for _ in model.buffers()):
            raise ValueError("a vectorised group needs a model without buffers (batch norm statistics)")
        self.names = [name for name, _ in model.named_parameters()]
        self.shapes = [p.shape for p in model.parameters()]
        self.split = [p.numel() for p in model.parameters()]
        ids = {id(p): name for name, p in model.named_parameters()}
        self.decayed = [ids[id(w)] for w in decayed_weights(model)]
        self.weight_decay = getattr(self.problem, "weight_decay", 0.0)
        self.members = members
        self.params = torch.stack(rows)
        self.optimizer: StackedOptimizer = stacked_optimizer([s["optimizer"] for s in specs],
                                                             [m.optimizer_groups for m in members])
        self.epoch = 0
        self.index = list(range(len(members)))  # each member's place in the specs given
        self.batches: list[Any] = []  # each member's batch iterator of the epoch in progress
        self.summaries: dict[int, dict[str, Any]] = {}
        self.finish: Callable[[int, dict[str, Any]], None] | None = None
        self.gradients = vmap(grad_and_value(self._loss))
        self.outputs = vmap(self._outputs, in_dims=(0, None))
        self.clip = vmap(clip_grad_norm, in_dims=(0, None))
        self.example_losses = vmap(self.problem.example_losses, in_dims=(0, None))
        self.example_accuracies = vmap(self.problem.example_accuracies, in_dims=(0, None))
        if resumes is not None and any(r is not None for r in resumes):
            self._load(resumes)
        self.clock = time.perf_counter()

    # ------------------------------------------------------------------ the functional model

    def _views(self) -> dict[str, Tensor]:
        """The stacked parameters as the model's, each ``[M, *shape]``, views of :attr:`params`."""
        pieces = self.params.split(self.split, dim=1)
        return {name: piece.view(len(self.members), *shape)
                for name, piece, shape in zip(self.names, pieces, self.shapes, strict=True)}

    def _outputs(self, params: dict[str, Tensor], inputs: Tensor) -> Tensor:
        return functional_call(self.problem.model, params, (inputs,))

    def _loss(self, params: dict[str, Tensor], inputs: Tensor, targets: Tensor) -> Tensor:
        """``TensorProblem.batch_loss`` of one member: mean example loss plus the problem's L2 penalty."""
        losses = self.problem.example_losses(self._outputs(params, inputs), targets)
        return losses.mean() + l2_penalty([params[name] for name in self.decayed], self.weight_decay)

    # ------------------------------------------------------------------ checkpoints

    def train_time(self, member: Member) -> float:
        return member.earlier_time + time.perf_counter() - self.clock

    def member_state(self, row: int) -> dict[str, Any]:
        """What :meth:`jobs.train.Trainer.state_dict` would hold for the run of the member at ``row``, now."""
        member, lr = self.members[row], self.members[row].lr()
        pieces = self.params[row].split(self.split)
        return {
            "epoch": self.epoch,
            "step": member.step,
            "model": {name: piece.reshape(shape).to("cpu", copy=True)
                      for name, piece, shape in zip(self.names, pieces, self.shapes, strict=True)},
            "optimizer": self.optimizer.member_state(row, lr, self.split, self.shapes),
            "scheduler": {**member.scheduler_state, "last_epoch": member.step, "_step_count": member.step + 1,
                          "_last_lr": [lr]},
            "rng": member.rng,
            "data_order": member.data_order.get_state(),
            "fresh_batches": member.fresh_batches,
            "passes": {"forward": member.forward, "backward": member.backward},
            "best": dict(member.best),
            "last": member.last,
            "train_time": self.train_time(member),
        }

    def _load(self, states: Sequence[Mapping[str, Any] | None]) -> None:
        epochs = {None if s is None else s["epoch"] for s in states}
        if len(epochs) > 1:
            raise ValueError(f"the members of a vectorised group must resume from one epoch boundary, not {epochs}")
        rows = []
        for member, state in zip(self.members, states, strict=True):
            if state["scheduler"]["last_epoch"] != state["step"]:
                raise ValueError("a checkpoint whose schedule is not at its step cannot resume in a group")
            rows.append(torch.cat([state["model"][name].reshape(-1) for name in self.names]))
            member.step, member.rng = state["step"], state["rng"]
            member.data_order.set_state(state["data_order"])
            member.fresh_batches = state["fresh_batches"]
            member.forward, member.backward = state["passes"]["forward"], state["passes"]["backward"]
            member.best, member.last, member.earlier_time = dict(state["best"]), state["last"], state["train_time"]
        self.epoch = states[0]["epoch"]
        self.params = torch.stack(rows).to(device=self.device, dtype=self.dtype)
        self.optimizer.load_member_states([s["optimizer"] for s in states], self.params)

    # ------------------------------------------------------------------ training

    def run(self, save: Callable[[int, dict[str, Any]], None] | None = None,
            finish: Callable[[int, dict[str, Any]], None] | None = None, resumed: bool = False) -> list[dict[str, Any]]:
        """Train every member to its end; its summary (as :meth:`jobs.train.Trainer.run`'s), in member order.

        ``save(i, state)``: member ``i``'s checkpoint at each boundary before the last (``i``: its place in the
        specs given). ``finish(i, summary)``: member ``i`` has ended, the moment it leaves the group.
        ``resumed``: this boundary is already done.
        """
        self.finish = finish
        for member in self.members:
            member.epoch_lrs = [member.lr()]
        for epoch in range(self.epoch, self.epochs + 1):
            self.epoch = epoch
            if not resumed:
                if self._boundary(epoch, save):
                    break
            resumed = False
            self._train_epoch()
            if not self.members:
                break
        self._end([(i, "completed", None) for i in range(len(self.members))])
        return [self.summaries[i] for i in sorted(self.summaries)]

    def _boundary(self, epoch: int, save: Callable[[int, dict[str, Any]], None] | None) -> bool:
        """Evaluate, checkpoint and stop members at this boundary; True when training is over."""
        if epoch % self.settings["eval_every"] == 0 or epoch == self.epochs:
            ended = []
            for row, (member, record) in enumerate(zip(self.members, self._evaluate(), strict=True)):
                member.last = record
                track_best(member.best, record)
                member.sink.log_eval(record)
                if not all(math.isfinite(v) for k, v in record.items() if k.endswith("_loss")):
                    ended.append((row, "diverged", {"epoch": epoch, "step": member.step}))
            self._end(ended)
        if epoch == self.epochs or not self.members:
            return True
        if save is not None:
            for row in range(len(self.members)):
                save(self.index[row], self.member_state(row))
        self._end([(row, "stopped", None) for row, member in enumerate(self.members)
                   if member.until is not None and epoch >= member.until])
        return not self.members

    def _train_epoch(self) -> None:
        """One pass over the training set for every member; members whose loss is not finite end diverged."""
        log_every = self.settings["log_every"]
        total_steps = self.epochs * self.problem.steps_per_epoch()
        self.problem.model.train()
        self.batches = [iter(self.problem.train_batches(m.data_order)) for m in self.members]
        for member in self.members:
            member.epoch_lrs = []
        while self.members:
            try:
                batches = [next(member_batches) for member_batches in self.batches]
            except StopIteration:  # every member's epoch has as many batches
                break
            losses, lrs = self._step(batches)
            ended = []
            for row, (member, loss, lr) in enumerate(zip(self.members, losses, lrs, strict=True)):
                member.step += 1
                member.forward += 1
                member.backward += 1
                member.epoch_lrs.append(lr)
                if not math.isfinite(loss):
                    ended.append((row, "diverged", {"epoch": self.epoch, "step": member.step}))
                    continue
                if log_every and member.step % log_every == 0:
                    member.sink.log_step({"step": member.step, "epoch": self.epoch, "loss": loss, "effective_lr": lr})
                member.sink.log_progress({"step": member.step, "epoch": self.epoch, "steps": total_steps,
                                          "loss": loss})
            self._end(ended)
        self.batches = []

    def _step(self, batches: Sequence[Split]) -> tuple[list[float], list[float]]:
        """One optimizer step of every member on its batch; the losses and the learning rates used."""
        inputs = torch.stack([b.inputs for b in batches])
        targets = torch.stack([b.targets for b in batches])
        grads, losses = self.gradients(self._views(), inputs, targets)
        pieces = [grads[name] for name in self.names]
        if self.settings["clip_grad_norm"] is not None:
            pieces = self.clip(pieces, self.settings["clip_grad_norm"])
        grad = torch.cat([piece.reshape(len(self.members), -1) for piece in pieces], dim=1)
        lrs = [member.lr() for member in self.members]
        self.optimizer.step(self.params, grad, lrs)
        return losses.tolist(), lrs

    def _end(self, ended: Sequence[tuple[int, str, dict[str, int] | None]]) -> None:
        """Members at these rows end in these states: summarised, reported, their rows dropped."""
        if not ended:
            return
        for row, state, diverged_at in ended:
            member = self.members[row]
            summary = {
                "state": state,
                "steps": member.step,
                "epochs": self.epochs,
                "final": member.last,
                "best": member.best,
                "diverged_at": diverged_at,
                **({"budget_epochs": self.epoch} if state == "stopped" else {}),
                "forward_passes": member.forward,
                "backward_passes": member.backward,
                "train_time": self.train_time(member),
            }
            self.summaries[self.index[row]] = summary
            if self.finish is not None:
                self.finish(self.index[row], summary)
        gone = {row for row, _, _ in ended}
        keep = [row for row in range(len(self.members)) if row not in gone]
        self.members = [self.members[row] for row in keep]
        self.index = [self.index[row] for row in keep]
        self.batches = [self.batches[row] for row in keep] if self.batches else []
        self.params = self.params[torch.tensor(keep, dtype=torch.long, device=self.params.device)]
        self.optimizer.select(keep)

    # ------------------------------------------------------------------ evaluation

    @torch.no_grad()
    def _evaluate(self) -> list[dict[str, Any]]:
        """Every member's evaluation record, as :meth:`jobs.train.Trainer.evaluate` makes it.

        The loop of :meth:`jobs.problems.base.TensorProblem.evaluate` (same chunks, sums and order), each
        chunk's forward pass vmapped over the members.
        """
        problem, count = self.problem, len(self.members)
        records: list[dict[str, Any]] = [{"epoch": self.epoch, "step": m.step} for m in self.members]
        problem.model.eval()
        params = self._views()
        for split in SPLITS:
            data = problem.splits[split]
            size = len(data) if split != "train" or problem.train_eval_size is None else min(
                len(data), problem.train_eval_size)
            loss_sums, correct = [0.0] * count, [0.0] * count
            for start in range(0, size, problem.eval_chunk):
                stop = min(start + problem.eval_chunk, size)
                inputs = problem.prepare(data.inputs[start:stop])
                targets = None if data.targets is None else data.targets[start:stop]
                outputs = self.outputs(params, inputs)
                losses = self.example_losses(outputs, targets)
                accuracies = self.example_accuracies(outputs, targets) if problem.has_accuracy else None
                for row in range(count):  # each member's sum as the problem sums (one row: the same reduction)
                    loss_sums[row] += float(losses[row].sum())
                    if accuracies is not None:
                        correct[row] += float(accuracies[row].sum())
            for row, record in enumerate(records):
                record[f"{split}_loss"] = loss_sums[row] / size
                if problem.has_accuracy:
                    record[f"{split}_accuracy"] = correct[row] / size
        problem.model.train()
        for member, record in zip(self.members, records, strict=True):
            record["lr"] = float(np.mean(member.epoch_lrs)) if member.epoch_lrs else math.nan
            record.update(forward_passes=member.forward, backward_passes=member.backward,
                          time=self.train_time(member))
        return records


def clip_grad_norm(grads: list[Tensor], max_norm: float) -> list[Tensor]:
    """One member's gradients clipped as ``torch.nn.utils.clip_grad_norm_`` clips them, operation by operation.

    The norm of each gradient, the norm of those norms, ``max_norm / (total + 1e-6)`` clamped at 1, a product.
    """
    total = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g, 2.0) for g in grads]), 2.0)
    coefficient = torch.clamp(max_norm / (total + 1e-6), max=1.0)
    return [g * coefficient for g in grads]


# ---------------------------------------------------------------------- memory


def check_memory(problem: TensorProblem, spec: Mapping[str, Any], members: int) -> None:
    """Raise :class:`GroupTooLarge` when ``members`` copies of ``problem``'s training would not fit in free memory.

    Per member: parameters, their gradient (twice: per tensor and stacked), the optimizer's state
    (momentum: one copy, Adam: two) and a temporary; the activations of a training batch (kept for
    the backward pass, and their gradients) or of an evaluation chunk, whichever is larger.
    """
    model, device = problem.model, torch.device(spec["device"])
    size = torch.empty((), dtype=DTYPES[spec["precision"]]).element_size()
    optimizer = spec["optimizer"]
    state = 2 if optimizer["name"] in ("adam", "adamw") else int(optimizer.get("momentum", 0) != 0)
    params = sum(p.numel() for p in model.parameters())
    batch = next(iter(problem.train_batches(torch.Generator().manual_seed(0))))
    per_example = _activations(model, batch.inputs)
    chunk = min(problem.eval_chunk, max(len(split) for split in problem.splits.values()))
    per_member = size * (params * (4 + state) + max(3 * per_example * len(batch), 2 * per_example * chunk))
    free = free_bytes(device)
    if per_member * members <= free:
        return
    fit = int(free // per_member)
    advice = (f"lower launcher.vectorize to {fit} or less" if fit > 1
              else "run it without vectorising (launcher.vectorize=1)")
    raise GroupTooLarge(f"A vectorised group of {members} {spec['problem']['name']} runs needs about "
                        f"{_size(per_member * members)} ({_size(per_member)} per run: parameters, gradients, "
                        f"optimizer state, activations), more than the {_size(free)} free on {device}; {advice}.")


def _size(count: float) -> str:
    return f"{count / GIB:.1f} GiB" if count >= GIB else f"{count / MIB:.1f} MiB"


def _activations(model: torch.nn.Module, inputs: Tensor) -> int:
    """Elements the leaf modules output per example, measured by one forward pass."""
    total = 0

    def count(module: torch.nn.Module, args: Any, output: Any) -> None:
        nonlocal total
        if isinstance(output, Tensor):
            total += output.numel()

    handles = [m.register_forward_hook(count) for m in model.modules() if not list(m.children())]
    try:
        with torch.no_grad():
            model(inputs)
    finally:
        for handle in handles:
            handle.remove()
    return -(-total // len(inputs))


def free_bytes(device: torch.device) -> int:
    """Memory free for the group: the GPU's free memory, or the host's available memory (Linux's MemAvailable)."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo", encoding="ascii") as info:
            for line in info:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
