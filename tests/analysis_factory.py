"""Small synthetic sweeps written straight to disk, following the run-folder contract (test helper of the analysis
and dashboard tests)."""

from __future__ import annotations

import copy
import hashlib
import json
import math
from pathlib import Path
from typing import Any

BASE_SPEC: dict[str, Any] = {
    "problem": {"name": "quadratic_deep"},
    "optimizer": {"name": "sgd", "lr": 0.1, "momentum": 0.0},
    "schedule": {"name": "constant"},
    "train": {"epochs": 3, "batch_size": 128, "eval_every": 1, "log_every": 0, "clip_grad_norm": None},
    "seed": 0,
    "device": "cpu",
    "precision": "float32",
}


def _hash(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:12]


def make_spec(problem: dict | None = None, optimizer: dict | None = None, seed: int = 0, **sections: Any) -> dict:
    spec = copy.deepcopy(BASE_SPEC)
    if problem is not None:
        spec["problem"] = dict(problem)
    if optimizer is not None:
        spec["optimizer"] = dict(optimizer)
    for key, value in sections.items():
        spec[key] = value
    spec["seed"] = seed
    return spec


def curve(epochs: int = 4, *, loss0: float = 2.0, rate: float = 0.5, accuracy: bool = False, lr: float = 0.1,
          scale: float = 1.0) -> list[dict[str, Any]]:
    """Evaluation records for epochs 0..epochs-1 with a decaying loss (and a rising accuracy)."""
    records = []
    for e in range(epochs):
        loss = scale * loss0 * math.exp(-rate * e) + 0.01
        record = {"epoch": e, "step": 10 * e, "time": 0.5 * e, "train_loss": loss, "valid_loss": 1.1 * loss,
                  "test_loss": 1.2 * loss, "lr": lr, "forward_passes": 10 * e, "backward_passes": 10 * e}
        if accuracy:
            record.update(train_accuracy=1 - loss / 3, valid_accuracy=1 - 1.1 * loss / 3,
                          test_accuracy=1 - 1.2 * loss / 3)
        records.append(record)
    return records


class SweepBuilder:
    """Collects runs and writes ``sweeps/<id>/{sweep.json,runs.jsonl}`` and ``runs/<run_id>/``."""

    def __init__(self, root: Path, name: str = "demo", overrides: list[str] | None = None,
                 sweep_id: str = "sw-0001", created: float = 1.7e9):
        self.root = root
        self.name = name
        self.overrides = overrides if overrides is not None else ["optimizer=sgd,adam", "seed=range(3)"]
        self.sweep_id = sweep_id
        self.created = created
        self.entries: list[dict[str, Any]] = []

    @property
    def sweep_dir(self) -> Path:
        return self.root / "sweeps" / self.sweep_id

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    def add(self, spec: dict[str, Any], state: str | None = "completed", metrics: list[dict[str, Any]] | None = None,
            tail: str = "", raw: str | None = None, error: str | None = None) -> str:
        """Add a run; ``state=None`` leaves no run folder (pending); ``tail`` appends a torn line."""
        run_id = _hash(spec)
        setting = _hash({k: v for k, v in spec.items() if k != "seed"})
        self.entries.append({"run_id": run_id, "setting_id": setting, "spec": spec})
        if state is None:
            return run_id
        folder = self.runs_dir / run_id
        folder.mkdir(parents=True, exist_ok=True)
        status = {"state": state, "run_id": run_id}
        if error:
            status["error"] = error
        (folder / "status.json").write_text(json.dumps(status))
        if raw is not None:
            (folder / "metrics.jsonl").write_text(raw)
        elif metrics is not None:
            (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in metrics) + tail)
        return run_id

    def write(self) -> tuple[Path, Path]:
        self.sweep_dir.mkdir(parents=True, exist_ok=True)
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        (self.sweep_dir / "sweep.json").write_text(json.dumps({
            "sweep_id": self.sweep_dir.name, "name": self.name, "overrides": self.overrides, "created": self.created,
            "runs": len(self.entries), "launches": 1,
        }))
        (self.sweep_dir / "runs.jsonl").write_text("".join(json.dumps(e) + "\n" for e in self.entries))
        return self.sweep_dir, self.runs_dir
