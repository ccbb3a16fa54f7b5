"""``optbench rerun RUN_ID``: run one run again from its recorded image and spec, and compare.

The rerun goes into a new folder ``runs/<run_id>/reruns/<n>/`` (the
original is never touched) and starts the job through its command-line
entry point, ``python -m jobs.entry RUN_DIR``, inside the image the
original ran in: that interface, unlike the launcher's pickled calls, is
stable across versions, so an image from years ago can still be rerun by a
newer optbench. It uses the original's torch thread count, since a
different count can change floating-point sums. Only the wall-clock
``time`` may differ; every other metric at every evaluation point should
be bitwise identical on CPU.
"""

from __future__ import annotations

import math
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console

from jobs import plugins
from jobs.run_folder import PROVENANCE, RERUNS, SPEC, RunFolder, atomic_write_text, read_json, write_json
from jobs.schema import SpecError
from orchestrator.container import SOURCE_ROOT, Container, bind_specs, find_runtime, runtime_version, sha256_of
from orchestrator.errors import UserError
from orchestrator.store import ResultsStore

COMPARISON = "comparison.json"
WALL_CLOCK_KEYS = frozenset({"time"})


@dataclass(frozen=True)
class Difference:
    """The first evaluation point where a rerun's metrics differ from the original's."""

    row: int
    epoch: Any
    step: Any
    key: str
    original: Any
    rerun: Any

    def sentence(self) -> str:
        where = f"epoch {self.epoch}, step {self.step}"
        if isinstance(self.original, int | float) and isinstance(self.rerun, int | float):
            gap = abs(self.rerun - self.original)
            relative = gap / abs(self.original) if self.original else math.inf
            return (f"differs first at {where}: {self.key} {self.original!r} → {self.rerun!r} "
                    f"(absolute {gap:.3g}, relative {relative:.3g})")
        return f"differs first at {where}: {self.key} {self.original!r} → {self.rerun!r}"


def compare_metrics(original: list[dict[str, Any]], rerun: list[dict[str, Any]]) -> Difference | None:
    """None when every evaluation point matches exactly (wall-clock time aside, NaN equal to NaN)."""
    for row, (before, after) in enumerate(zip(original, rerun, strict=False)):
        for key in sorted((set(before) | set(after)) - WALL_CLOCK_KEYS):
            a, b = before.get(key), after.get(key)
            if a != b and not (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)):
                return Difference(row, before.get("epoch"), before.get("step"), key, a, b)
    if len(original) != len(rerun):
        row = min(len(original), len(rerun))
        last = (original or rerun)[row - 1] if row else {}
        return Difference(row, last.get("epoch"), last.get("step"), "evaluation points", len(original), len(rerun))
    return None


def rerun(store: ResultsStore, run_id: str, force: bool, console: Console) -> int:
    """Exit status 0 when the rerun's metrics are identical to the original's, 1 when they differ."""
    original = store.run_folder(run_id)
    if not original.path(SPEC).is_file() or not original.path(PROVENANCE).is_file():
        raise UserError(f"Run {run_id} has no spec.yaml and provenance.json in {original.root}; "
                        "rerun a run that has started (see optbench status).")
    provenance = read_json(original.path(PROVENANCE))
    _check_plugin_sources(run_id, original, provenance)
    threads = int(provenance.get("torch_threads") or 1)
    prefix, where = _interpreter(store, run_id, provenance, force, console)
    if int(provenance.get("scheduler", {}).get("SLURM_NTASKS", 1)) > 1:
        console.print(f"[yellow]Note:[/] run {run_id} ran on {provenance['scheduler']['SLURM_NTASKS']} ranks; "
                      "a rerun is one process, so its sums may round differently.")

    target = _new_rerun_folder(original)
    atomic_write_text(target.path(SPEC), original.path(SPEC).read_text())
    command = [*prefix, "-m", "jobs.entry", str(target.root), "--threads", str(threads),
               *(arg for folder in plugin_sources(provenance) for arg in ("--plugin-path", folder))]
    with console.status(f"Rerunning {run_id} {where} into {target.root} …"):
        done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-15:])
        console.print(tail, markup=False, highlight=False)
        raise UserError(f"The rerun of {run_id} failed (exit status {done.returncode}; output above, "
                        f"status in {target.root}); the original run is untouched.")

    difference = compare_metrics(original.metrics(), target.metrics())
    write_json(target.path(COMPARISON), {"rerun_of": str(original.root), "identical": difference is None,
                                         "difference": asdict(difference) if difference else None,
                                         "command": command})
    if difference is None:
        console.print(f"Rerun of {run_id}: [green]identical[/] ({len(target.metrics())} evaluation points, "
                      f"wall-clock time aside); files in {target.root}")
        return 0
    console.print(f"Rerun of {run_id}: [red]{difference.sentence()}[/]; files in {target.root}")
    return 1


def _interpreter(store: ResultsStore, run_id: str, provenance: dict[str, Any], force: bool,
                 console: Console) -> tuple[list[str], str]:
    """The command that starts Python where the original ran, and a few words saying where that is."""
    record = provenance.get("container") or {}
    if not record.get("sha256"):
        return [sys.executable], "on this machine's Python (the original ran in no image)"
    image = Path(record["image"])
    if not image.is_file():
        raise UserError(f"The image {image} that run {run_id} ran in is gone; restore it at that path to rerun "
                        "the run.")
    now = sha256_of(image)
    if now != record["sha256"]:
        if not force:
            raise UserError(f"The image at {image} has changed since run {run_id} (sha256 {record['sha256'][:12]}… "
                            f"then, {now[:12]}… now); restore the original image, or pass --force to rerun in "
                            "this one anyway.")
        console.print(f"[yellow]Warning:[/] {image} is not the image the run used (sha256 {now[:12]}…, "
                      f"recorded {record['sha256'][:12]}…); rerunning in it anyway (--force).")
    binary = find_runtime(record["runtime"])
    data_dir = provenance.get("data_dir")
    dev = bool(record.get("dev"))  # development mode: this source tree, as it is now, on the image's packages
    sources = plugin_sources(provenance) if dev else []
    binds = bind_specs([store.root.resolve(), *([Path(data_dir)] if data_dir else []),
                        *([SOURCE_ROOT] if dev else []), *map(Path, sources)], ())
    container = Container(record["runtime"], binary, runtime_version(binary), image, now, {}, binds,
                          bool(record.get("nv")), dev, record.get("python") or "python3", plugin_paths=tuple(sources))
    return [*container.exec_args(), container.python], f"in {image.name}"


def _check_plugin_sources(run_id: str, original: RunFolder, provenance: dict[str, Any]) -> None:
    """A plugin imported from a source folder must still have the code the run had (an image's is checked inside)."""
    if not plugin_sources(provenance):
        return
    spec = yaml.safe_load(original.path(SPEC).read_text())
    plugins.add_source_folders(plugin_sources(provenance))
    for kind, config in plugins.sections(spec):
        try:
            plugins.check_code(plugins.load(kind, config["target"]), config["code_hash"])
        except SpecError as error:
            raise UserError(f"Run {run_id} cannot be rerun as it ran: {error}") from None


def plugin_sources(provenance: dict[str, Any]) -> list[str]:
    """The source folders the original's plugins were imported from (none for installed packages)."""
    return sorted({plugin["source"] for plugin in provenance.get("plugins") or [] if plugin.get("source")})


def _new_rerun_folder(original: RunFolder) -> RunFolder:
    """``reruns/<n>/`` with the next free ``n``, created here so two reruns never share one."""
    reruns = original.root / RERUNS
    reruns.mkdir(exist_ok=True)
    number = 1 + max((int(p.name) for p in reruns.iterdir() if p.name.isdigit()), default=0)
    while True:
        try:
            (reruns / str(number)).mkdir()
            return RunFolder(reruns / str(number))
        except FileExistsError:
            number += 1
