"""Data parallelism over the tasks of one job: w ranks train one run as one.

Semantics:

* ``train.batch_size`` is the **global** minibatch. Every rank draws the
  same data order from the same seed, and rank r trains on the r-th
  contiguous 1/w slice of each global minibatch, so the batch size must be
  divisible by w.
* The closure averages the loss over ranks, and its gradients with one
  all-reduce of a flattened buffer, so every optimizer (line searches that
  evaluate the loss several times included) sees the global minibatch
  loss and gradient and takes bitwise identical steps on every rank; up to
  float rounding the run equals one process with the same global batch.
* Evaluation needs no communication: every rank evaluates the full splits
  with identical parameters and gets identical numbers (the wall time of
  one process evaluating alone).
* Dropout: every rank draws its masks from the same random stream, so the
  slices of one minibatch share masks; with dropout a run is reproducible
  but not equal to the one-process run.
* Rank 0 alone writes the run folder and the W&B run.

Where the ranks come from: inside a submitit job with more than one task,
the job environment (``submitit.helpers.TorchDistributedEnvironment``);
otherwise the standard variables ``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``
and ``MASTER_PORT`` (``env://``), as ``torchrun`` or a test sets them.
Backend: gloo for CPU tensors, and NCCL for CUDA tensors where CUDA exists.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    """This process's place among the ranks of a run; ``World()`` is a process on its own."""

    rank: int = 0
    size: int = 1

    @property
    def lead(self) -> bool:
        """Rank 0 owns the run folder."""
        return self.rank == 0

    def check_batch_size(self, batch_size: int) -> None:
        if batch_size % self.size:
            raise ValueError(f"train.batch_size={batch_size} cannot be split over {self.size} ranks; "
                             f"use a multiple of {self.size} (it is the global batch).")

    def shard(self, batch: Any) -> Any:
        """This rank's contiguous slice of every tensor in a global minibatch (dim 0)."""
        if self.size == 1 or batch is None:
            return batch
        if isinstance(batch, torch.Tensor):
            self.check_batch_size(len(batch))
            size = len(batch) // self.size
            return batch[self.rank * size : (self.rank + 1) * size]
        if dataclasses.is_dataclass(batch):
            fields = {f.name: self.shard(getattr(batch, f.name)) for f in dataclasses.fields(batch)}
            return dataclasses.replace(batch, **fields)
        if isinstance(batch, tuple | list):
            return type(batch)(self.shard(part) for part in batch)
        raise TypeError(f"cannot split a minibatch of type {type(batch).__name__} over ranks")

    def mean(self, value: torch.Tensor) -> torch.Tensor:
        """The average of ``value`` over ranks (detached); ``value`` itself on one rank."""
        if self.size == 1:
            return value
        total = value.detach().clone()
        dist.all_reduce(total)
        return total / self.size

    def average_gradients(self, params: Sequence[torch.Tensor]) -> None:
        """Replace every ``.grad`` by its average over ranks, with one all-reduce."""
        grads = [p.grad for p in params if p.grad is not None]
        if self.size == 1 or not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= self.size
        offset = 0
        for g in grads:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()

    def broadcast(self, value: Any) -> Any:
        """Rank 0's ``value`` (any picklable object) on every rank."""
        if self.size == 1:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        if self.size > 1:
            dist.barrier()


#: A process training on its own.
ALONE = World()


@contextmanager
def session() -> Iterator[World]:
    """Join the job's process group for the duration of the block; ``World()`` when alone."""
    if not _from_submitit() and int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        yield ALONE
        return
    if torch.cuda.is_available():
        local_rank = int(os.environ.get("LOCAL_RANK", os.environ["RANK"]))
        torch.cuda.set_device(local_rank % torch.cuda.device_count())
        backend = "cpu:gloo,cuda:nccl"
    else:
        backend = "gloo"
    dist.init_process_group(backend, init_method="env://")
    try:
        yield World(dist.get_rank(), dist.get_world_size())
        # Rank 0 hosts the group's store: no rank may tear the group down while another still talks to it
        # (gloo then aborts the slower rank: "terminate called without an active exception").
        dist.barrier()
    finally:
        dist.destroy_process_group()


def _from_submitit() -> bool:
    """Export the ``env://`` variables of a submitit job with several tasks; False elsewhere."""
    import submitit

    try:
        tasks = submitit.JobEnvironment().num_tasks
    except RuntimeError:  # not inside a submitit job
        return False
    if tasks <= 1:
        return False
    # GPUs are chosen by local rank in session(), not by narrowing CUDA_VISIBLE_DEVICES.
    submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False, overwrite=True)
    return True
