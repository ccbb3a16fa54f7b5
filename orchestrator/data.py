"""``optbench data check``: which problems can run with the data folder, and what to put where for the rest.

Reads the problem registry and the data folder's layout
(:mod:`jobs.problems.data.files`) without importing torch, and only looks
for the files: it does not parse them.
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from jobs.problems.data.files import DATASETS
from jobs.problems.registry import PROBLEMS


def default_data_dir() -> Path | None:
    """The environment variable OPTBENCH_DATA, as the root config's ``data_dir`` defaults to."""
    value = os.environ.get("OPTBENCH_DATA")
    return Path(value) if value else None


def problems_by_dataset() -> dict[str | None, list[str]]:
    """Dataset name (None: no files) → the problems that read it."""
    groups: dict[str | None, list[str]] = defaultdict(list)
    for name in PROBLEMS.names():
        groups[PROBLEMS.entry(name).dataset].append(name)
    return dict(groups)


def check(data_dir: Path | None, console: Console) -> int:
    """Print the table of datasets and problems; 0 when every problem is ready, 1 otherwise."""
    groups = problems_by_dataset()
    if data_dir is None:
        console.print("No data folder given (--data-dir PATH or the environment variable OPTBENCH_DATA): "
                      "only the problems without files are ready.")
    else:
        note = "" if data_dir.is_dir() else " (does not exist)"
        console.print(f"Data folder: {escape(str(data_dir))}{note}")
    table = Table(show_lines=False)
    for header in ("dataset", "status", "problems"):
        table.add_column(header)
    table.add_row("none (no files)", "[green]ready[/]", ", ".join(groups.get(None, [])))
    missing = {name: DATASETS[name].missing(data_dir) for name in DATASETS}
    for name, files in DATASETS.items():
        status = "[red]missing[/]" if missing[name] else "[green]ready[/]"
        table.add_row(files.title, status, ", ".join(groups.get(name, [])))
    console.print(table)

    absent = [name for name in DATASETS if missing[name]]
    root = "<data_dir>" if data_dir is None else str(data_dir)
    for name in absent:
        files = DATASETS[name]
        gz = " (each may be gzipped)" if files.gzip_ok else ""
        console.print(f"{files.title}: put {', '.join(files.files)}{gz} in {root}/{files.folder} "
                      f"(missing: {', '.join(missing[name])}); get {files.how_to_get(data_dir)}.", markup=False)
    ready = sum(len(problems) for dataset, problems in groups.items() if dataset is None or not missing[dataset])
    console.print(f"{ready} of {len(PROBLEMS.names())} problems ready.")
    return 1 if absent else 0
