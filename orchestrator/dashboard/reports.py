"""What ``optbench aggregate`` and ``optbench report`` left in a sweep folder, as the dashboard serves it."""

from __future__ import annotations

from pathlib import Path

from jobs.run_folder import AGGREGATE_DIR, REPORT_FILE

#: Where a sweep's report may be, relative to its folder: ``optbench report`` writes the first.
REPORT_PLACES = (REPORT_FILE, f"{AGGREGATE_DIR}/{REPORT_FILE}")


def report_url(sweep_dir: Path) -> str | None:
    """The page-relative URL of the sweep's report, None before one was written."""
    for place in REPORT_PLACES:
        if (sweep_dir / place).is_file():
            return f"sweeps/{sweep_dir.name}/{place}"
    return None


def sweep_file(sweep_dir: Path, relative: str) -> Path | None:
    """The file at ``relative`` in the sweep folder if it is the report or in the aggregate folder, else None."""
    root = sweep_dir.resolve()
    target = (root / relative).resolve()
    allowed = target == root / REPORT_FILE or target.is_relative_to(root / AGGREGATE_DIR)
    return target if allowed and target.is_file() else None
