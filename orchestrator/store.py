"""The results folder: ``runs/<run_id>/`` shared by all sweeps, ``sweeps/<sweep_id>/``.

Runs are keyed by content, so two sweeps that contain the same run share
its folder and its result, and launching a sweep again skips what is done.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from jobs.run_folder import (
    RUNS_FILE,
    SWEEP_FILE,
    RunFolder,
    atomic_write_text,
    read_json,
    read_sweep_info,
    read_sweep_runs,
    write_json,
)
from jobs.spec import ID_LENGTH, canonical_json
from orchestrator.errors import UserError
from orchestrator.sweep import Run, Sweep

RUN_ID = re.compile(f"[0-9a-f]{{{ID_LENGTH}}}")
#: What a sweep name or id typed by a user may look like: a folder name, never a path.
SWEEP_REF = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._+-]*")


def default_results_dir() -> Path:
    return Path(os.environ.get("OPTBENCH_RESULTS") or "results")


class ResultsStore:
    def __init__(self, root: Path | str):
        self.root = Path(root).expanduser().resolve()  # jobs in containers see it at this same absolute path
        self.runs_dir = self.root / "runs"
        self.sweeps_dir = self.root / "sweeps"

    def check_writable(self) -> None:
        """Fail before anything is written if the results folder cannot take files."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.root, prefix=".write-check-"):
                pass
        except OSError as error:
            reason = error.strerror or type(error).__name__
            raise UserError(
                f"Cannot write to the results folder {self.root} ({reason.lower()}); "
                "choose another with --results DIR or OPTBENCH_RESULTS."
            ) from None

    def check_exists(self) -> None:
        """For commands that read a results folder: one sentence when there is none."""
        if not self.root.is_dir():
            raise UserError(
                f"There is no results folder {self.root}; pass the one you launched into with --results DIR."
            )

    @contextmanager
    def tentatively_created(self) -> Iterator[None]:
        """Create the results folder (checked writable) for a block; if the block fails, remove what it created.

        For checks that need the folder to exist (a container binds it) but
        may still refuse the launch, which must then leave nothing behind.
        """
        created = [folder for folder in (self.root, *self.root.parents) if not folder.exists()]
        self.check_writable()
        try:
            yield
        except BaseException:
            for folder in created:  # innermost first; only the empty folders this block made
                try:
                    folder.rmdir()
                except OSError:
                    break
            raise

    def run_folder(self, run_id: str) -> RunFolder:
        return RunFolder(self.runs_dir / run_id)

    @staticmethod
    def check_run_id(text: str) -> str:
        """A run id typed by a user: 12 hexadecimal characters, never a path."""
        if not RUN_ID.fullmatch(text):
            raise UserError(f"{text!r} is not a run id; run ids are {ID_LENGTH} hexadecimal characters, "
                            "as optbench status lists them.")
        return text

    def sweep_dir(self, sweep_id: str) -> Path:
        return self.sweeps_dir / sweep_id

    def record(self, sweep: Sweep) -> Path:
        """Write the sweep folder: its settings and every run's spec in ``runs.jsonl``.

        Run folders are not touched: each job creates its own when it starts
        (spec.yaml, status.json, ...), so recording a 10,000-run sweep writes
        three files, not 20,000.
        """
        directory = self.sweep_dir(sweep.sweep_id)
        lines = "".join(canonical_json({"run_id": r.run_id, "setting_id": r.setting_id, "spec": r.spec,
                                        **{k: v for k, v in (("trial", r.trial), ("study", r.study)) if v is not None}})
                        + "\n" for r in sweep.runs)
        atomic_write_text(directory / RUNS_FILE, lines)
        previous = self.sweep_info(directory)
        write_json(directory / SWEEP_FILE, {
            "sweep_id": sweep.sweep_id,
            "name": sweep.name,
            "overrides": sweep.overrides,
            "launcher": sweep.launcher,
            "logger": sweep.logger,
            "container": sweep.container,
            "data_dir": sweep.data_dir,
            "protocol": sweep.protocol,
            "search": sweep.search,
            "runs": len(sweep.runs),
            "created": previous.get("created", sweep.created),
            "launches": previous.get("launches", 0) + 1,
        })
        return directory

    @staticmethod
    def sweep_info(directory: Path) -> dict[str, Any]:
        try:
            return read_sweep_info(directory)
        except FileNotFoundError:
            return {}

    def sweeps(self) -> Iterator[dict[str, Any]]:
        if not self.sweeps_dir.is_dir():
            return
        for directory in self.sweeps_dir.iterdir():
            if (directory / SWEEP_FILE).is_file():
                yield read_json(directory / SWEEP_FILE)

    def find_sweep(self, name_or_id: str) -> Path:
        """A sweep by id, or the most recently created sweep of that name."""
        if not SWEEP_REF.fullmatch(name_or_id):
            raise UserError(f"{name_or_id!r} is not a sweep name or id; those are made of letters, digits, "
                            "'.', '_', '+' and '-' (optbench status lists them), never a path.")
        self.check_exists()
        exact = self.sweep_dir(name_or_id)
        if (exact / SWEEP_FILE).is_file():
            return exact
        named = sorted((s for s in self.sweeps() if s.get("name") == name_or_id), key=lambda s: s["created"])
        if named:
            return self.sweep_dir(named[-1]["sweep_id"])
        known = sorted({s["name"] for s in self.sweeps()} | {s["sweep_id"] for s in self.sweeps()})
        hint = f"known: {', '.join(known)}" if known else "no sweep has been launched there yet"
        raise UserError(f"No sweep {name_or_id!r} in {self.root} ({hint}); pass a sweep name or id.")

    @staticmethod
    def sweep_runs(sweep_dir: Path) -> list[dict[str, Any]]:
        return read_sweep_runs(sweep_dir)

    def load_sweep(self, sweep_dir: Path) -> Sweep:
        """The sweep as it was recorded: its runs and how they execute (launcher, container, logger, data)."""
        meta = read_json(sweep_dir / SWEEP_FILE)
        runs = [Run(r["run_id"], r["setting_id"], r["spec"], r.get("trial"), r.get("study"))
                for r in self.sweep_runs(sweep_dir)]
        return Sweep(meta["name"], meta["overrides"], runs, meta["launcher"], meta["logger"],
                     meta.get("container") or {}, meta.get("data_dir"), meta["created"], meta.get("protocol") or {},
                     meta.get("search") or {})
