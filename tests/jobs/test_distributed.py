"""Data parallelism: two ranks with half the global batch each train exactly what one process trains."""

from __future__ import annotations

import json
import socket

import pytest
import torch
import torch.multiprocessing
from jobs_support import spec_for, train_as_rank

from jobs.distributed import World
from jobs.entry import run
from jobs.problems.base import Split
from jobs.run_folder import PROVENANCE, RunFolder, read_jsonl
from jobs.spec import run_id

pytestmark = pytest.mark.integration  # runs real jobs

#: Relative tolerance between 2 ranks and 1 process, in float64: per-rank means averaged vs one mean
#: differ by rounding (~1e-16); after these runs the largest relative difference seen is ~5e-15.
RTOL = 1e-12
PROBLEMS = {
    "quadratic": ("problem=quadratic_deep", "precision=float64", "train.epochs=3", "train.log_every=1",
                  "optimizer=pal"),
    "digits": ("problem=digits_mlp", "problem.hidden=16", "problem.dropout=0", "precision=float64",
               "train.epochs=2", "train.log_every=1", "optimizer=momentum", "optimizer.lr=0.1"),
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_ranks_train_what_one_process_trains_and_only_rank_0_writes(tmp_path):
    specs = [spec_for(*overrides) for overrides in PROBLEMS.values()]
    pack = [{"spec": spec, "run_dir": str(tmp_path / "ranks" / run_id(spec))} for spec in specs]
    torch.multiprocessing.spawn(train_as_rank, args=(2, free_port(), pack, tmp_path), nprocs=2)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]

    for spec, item, rank0, rank1 in zip(specs, pack, ranks[0]["summaries"], ranks[1]["summaries"], strict=True):
        folder = RunFolder(item["run_dir"])
        single = RunFolder(tmp_path / "single" / run_id(spec))
        run(spec, single.root)

        # Ranks hold bitwise equal parameters: their own evaluations agree to the last bit.
        assert {**rank1["final"], "time": 0} == {**rank0["final"], "time": 0}
        # Rank 0 alone wrote the folder: every evaluation and step once, provenance from its process.
        assert [m["epoch"] for m in folder.metrics()] == list(range(spec["train"]["epochs"] + 1))
        steps = list(read_jsonl(folder.path("steps.jsonl")))
        assert [s["step"] for s in steps] == list(range(1, rank0["steps"] + 1))
        assert json.loads(folder.path(PROVENANCE).read_text())["pid"] == ranks[0]["pid"]
        assert folder.state == "completed"

        # The loss trajectory equals one process with the same global batch.
        single_steps = list(read_jsonl(single.path("steps.jsonl")))
        assert [s["loss"] for s in steps] == pytest.approx([s["loss"] for s in single_steps], rel=RTOL)
        for parallel, alone in zip(folder.metrics(), single.metrics(), strict=True):
            for key in ("train_loss", "valid_loss", "test_loss", "lr"):
                assert parallel[key] == pytest.approx(alone[key], rel=RTOL, nan_ok=True), key
            assert parallel["forward_passes"] == alone["forward_passes"]


def test_a_global_batch_is_cut_into_contiguous_equal_slices():
    batch = Split(torch.arange(12.0).reshape(6, 2), torch.arange(6))
    parts = [World(rank, 3).shard(batch) for rank in range(3)]
    assert [p.targets.tolist() for p in parts] == [[0, 1], [2, 3], [4, 5]]
    assert torch.equal(torch.cat([p.inputs for p in parts]), batch.inputs)
    with pytest.raises(ValueError, match="train.batch_size=64 cannot be split over 3 ranks; use a multiple of 3"):
        World(0, 3).check_batch_size(64)
