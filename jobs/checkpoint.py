"""The run's checkpoints: two generations in the run folder, for exact resumption.

The trainer fills a checkpoint at every epoch boundary (see :meth:`jobs.train.Trainer.state_dict`),
with an optimizer that has an evaluation point in its eval mode (Schedule-Free: the model holds x);
this module adds what ties it to the folder — the ``run_id`` and how many
lines ``metrics.jsonl``, ``steps.jsonl`` and ``measurements.jsonl`` held
when it was written — and keeps the last two: ``checkpoint.pt`` (the latest
boundary) and ``checkpoint.prev.pt`` (the one before), so that a latest
checkpoint that does not load still leaves one to resume from.

Saving is crash-safe at every point. The new state is first written in full
beside the others (``checkpoint.next.pt``, itself written atomically:
temporary file, fsync, rename); then ``checkpoint.pt`` is renamed to
``checkpoint.prev.pt`` and ``checkpoint.next.pt`` to ``checkpoint.pt``. A job
killed while writing leaves both generations as they were; one killed
between the two renames leaves ``checkpoint.prev.pt`` (the latest complete
state before this save) and no ``checkpoint.pt``. Renames take no disk space,
so a full disk fails a save before it has touched either generation. While
a save is under way the folder holds three states (previous, latest, staged):
plan the run folder's disk for three checkpoints.

Resuming tries ``checkpoint.pt``, then ``checkpoint.prev.pt``. A checkpoint
is skipped, with a logged warning, when it cannot be read (truncated,
garbage), belongs to another run, or counts more lines than the logs still
hold; the first usable one is renamed to ``checkpoint.pt`` (so every rank
and every later reader sees the state the run resumed from) and the
``.jsonl`` files are cut back to its line counts: the records written after
it (an interrupted epoch's, a torn last line) are written again, identically,
by the resumed run. With neither usable the run starts afresh, and says so.

The files are read with ``torch.load(weights_only=True)``, so they hold only
tensors and plain Python data (the numpy RNG state is stored as a list).
"""

from __future__ import annotations

import logging
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from jobs.run_folder import (
    CHECKPOINT,
    MEASUREMENTS,
    METRICS,
    STEPS,
    RunFolder,
    atomic_file,
    count_lines,
    cut_lines,
)

log = logging.getLogger(__name__)

#: The checkpoint before the latest one.
PREVIOUS = "checkpoint.prev.pt"
#: A new checkpoint, complete on disk, before it becomes the latest.
STAGED = "checkpoint.next.pt"
#: The generations resuming tries, newest first.
GENERATIONS = (CHECKPOINT, PREVIOUS)
#: The append-only files whose length a checkpoint records.
LOGS = (METRICS, STEPS, MEASUREMENTS)


def capture_rng() -> dict[str, Any]:
    """Every global random state training draws from: Python, numpy, torch CPU and, when in use, CUDA."""
    kind, key, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": (kind, key.tolist(), pos, has_gauss, cached),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None,
    }


def restore_rng(state: dict[str, Any]) -> None:
    kind, key, pos, has_gauss, cached = state["numpy"]
    random.setstate(state["python"])
    np.random.set_state((kind, np.array(key, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if state["cuda"] is not None:
        torch.cuda.set_rng_state_all(state["cuda"])


def save(folder: RunFolder, state: dict[str, Any]) -> None:
    """Store the trainer's ``state`` as ``folder``'s latest checkpoint; its logs must be flushed before."""
    lines = {name: count_lines(folder.path(name)) for name in LOGS}
    staged, latest = folder.path(STAGED), folder.path(CHECKPOINT)
    with atomic_file(staged, "wb") as handle:
        torch.save({"run_id": folder.run_id, "lines": lines, **state}, handle)
    try:
        os.replace(latest, folder.path(PREVIOUS))
    except FileNotFoundError:  # the run's first checkpoint
        pass
    os.replace(staged, latest)


def resume(folder: RunFolder) -> dict[str, Any] | None:
    """The state to resume ``folder``'s run from, with its logs cut back to match; None to start afresh."""
    skipped = []
    for name in GENERATIONS:
        path = folder.path(name)
        try:
            state = _read(path)
        except FileNotFoundError:
            continue
        except Exception as error:  # torch.load fails in many ways on a truncated or garbled file
            reason = f"it cannot be read ({type(error).__name__}: {_first_line(error)})"
        else:
            reason = _unusable(folder, state)
            if reason is None:
                if name != CHECKPOINT:
                    os.replace(path, folder.path(CHECKPOINT))
                    log.warning("run %s: resuming from the previous checkpoint, of epoch %d", folder.run_id,
                                state["epoch"])
                for log_name in LOGS:
                    cut_lines(folder.path(log_name), _lines(state)[log_name])
                return state
        log.warning("run %s: skipping %s: %s", folder.run_id, path, reason)
        skipped.append(name)
    if skipped:
        log.warning("run %s: no usable checkpoint (%s); starting afresh", folder.run_id, ", ".join(skipped))
    return None


def load(folder: RunFolder) -> dict[str, Any] | None:
    """The newest checkpoint that can be read, whichever run it belongs to; None when there is none.

    After :func:`resume`, the state it resumed from: what ranks other than 0 continue from.
    """
    for name in GENERATIONS:
        try:
            return _read(folder.path(name))
        except FileNotFoundError:
            continue
        except Exception as error:  # as in resume()
            log.warning("run %s: skipping %s: it cannot be read (%s)", folder.run_id, folder.path(name),
                        _first_line(error))
    return None


def remove(folder: RunFolder) -> None:
    """Delete every checkpoint of the run (both generations, and one a killed save left staged)."""
    for name in (*GENERATIONS, STAGED):
        folder.path(name).unlink(missing_ok=True)


def _read(path: Path) -> Any:
    return torch.load(path, map_location="cpu", weights_only=True)


def _unusable(folder: RunFolder, state: Any) -> str | None:
    """Why ``state`` cannot continue ``folder``'s run, or None when it can."""
    if not isinstance(state, dict) or not isinstance(state.get("lines"), dict) or "epoch" not in state:
        return "it is not a checkpoint of a run"
    if state.get("run_id") != folder.run_id:
        return f"it belongs to run {state.get('run_id')}"
    held = {name: count_lines(folder.path(name)) for name in LOGS}
    short = [f"{name} holds {held[name]} lines, it counts on {count}"
             for name, count in _lines(state).items() if held[name] < count]
    return "; ".join(short) or None


def _lines(state: dict[str, Any]) -> dict[str, int]:
    """Line counts per log; checkpoints from before measurements lack theirs."""
    return {name: state["lines"].get(name, 0) for name in LOGS}


def _first_line(error: BaseException) -> str:
    return next(iter(str(error).splitlines()), "")
