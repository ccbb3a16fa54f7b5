"""The goals of ``make bench``: every benchmark records what it measured against its goal; one table ends the run.

In a benchmark (``benchmarks/`` is on ``sys.path`` when a benchmark runs as a script)::

    import goals

    ok = goals.at_most(__file__, "expand + validate 10,000 runs: time", seconds, 3, "s")
    goals.record(__file__, "sbatch calls for 10,000 runs", calls, f"= {expected}", calls == expected)
    goals.info(__file__, "optbench status of 1,000 runs", status_ms, "ms", note="× baseline 0.2")

Each call appends one JSON line (benchmark, what, figure, goal, result: PASS, FAIL or info) to the
file named by ``$OPTBENCH_BENCH_GOALS``, as one ``write`` to a file opened for appending, so lines
from several processes do not interleave on a local file system. Without that variable the row is printed instead, so a
benchmark run by hand shows its verdicts. The benchmark's name is its file's stem (``bench_expand``);
pass ``__file__``. ``info`` rows are figures without a stated goal: they are neither PASS nor FAIL.

``make bench`` runs every benchmark, then records each one's exit status::

    python benchmarks/goals.py ran bench_expand STATUS      # appends to $OPTBENCH_BENCH_GOALS

and ends with::

    python benchmarks/goals.py report FILE

which prints one table of every goal and exits 1 when a goal failed, a benchmark exited with a
non-zero status (a FAIL row "exited with status N") or a benchmark that ran recorded no goal at all;
0 otherwise.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

ENV = "OPTBENCH_BENCH_GOALS"
PASS, FAIL, INFO = "PASS", "FAIL", "info"
TIGHT_UNITS = ("×", "%")  # units starting so are written without a space after the number


def number(value: float | int | str, unit: str = "") -> str:
    """A figure as text: three significant digits below 100, whole numbers (with thousands separators) above."""
    if isinstance(value, str):
        text = value
    elif isinstance(value, bool):
        text = "yes" if value else "no"
    elif isinstance(value, int):
        text = f"{value:,}"
    elif not math.isfinite(value):
        text = str(value)
    elif abs(value) >= 100:
        text = f"{value:,.0f}"
    else:
        text = f"{value:.3g}"
    if not unit:
        return text
    return f"{text}{unit}" if unit.startswith(TIGHT_UNITS) else f"{text} {unit}"


def bench_name(bench: str | os.PathLike) -> str:
    """``__file__`` or a name: the benchmark's name, its file's stem."""
    return Path(bench).stem


def record(bench: str | os.PathLike, what: str, figure: float | int | str, goal: str | None,
           passed: bool | None, unit: str = "", note: str = "") -> bool | None:
    """Record one row; ``passed`` None is an info row (no goal stated). Returns ``passed``."""
    if hasattr(figure, "item"):  # a NumPy scalar: its Python number
        figure = figure.item()
    result = INFO if passed is None else PASS if passed else FAIL
    value = figure if isinstance(figure, int | float) and not isinstance(figure, bool) else None
    row = {"bench": bench_name(bench), "what": what, "figure": number(figure, unit), "goal": goal or "",
           "result": result, "value": value, "unit": unit, "note": note, "time": time.time()}
    path = os.environ.get(ENV)
    if path:
        append(Path(path), row)
    else:
        print(f"[{result}] {row['bench']}: {what}: {row['figure']}"
              + (f" (goal {goal})" if goal else "") + (f"; {note}" if note else ""))
    return passed


def at_most(bench: str | os.PathLike, what: str, value: float, limit: float, unit: str = "",
            note: str = "") -> bool:
    """A goal ``value <= limit`` (a NaN fails)."""
    return record(bench, what, value, f"≤ {number(limit, unit)}", bool(value <= limit), unit, note)


def at_least(bench: str | os.PathLike, what: str, value: float, limit: float, unit: str = "",
             note: str = "") -> bool:
    """A goal ``value >= limit`` (a NaN fails)."""
    return record(bench, what, value, f"≥ {number(limit, unit)}", bool(value >= limit), unit, note)


def info(bench: str | os.PathLike, what: str, figure: float | int | str, unit: str = "", note: str = "") -> None:
    """A figure without a stated goal: shown in the table, neither PASS nor FAIL."""
    record(bench, what, figure, None, None, unit, note)


def append(path: Path, row: dict) -> None:
    """One whole line in one write to a file opened with O_APPEND."""
    data = (json.dumps(row, ensure_ascii=False) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        written = os.write(fd, data)
        while written < len(data):  # a short write (a full disk, a signal): the rest, so the line still ends
            written += os.write(fd, data[written:])
    finally:
        os.close(fd)


# ----------------------------------------------------------------------------- the table


def rows_of(path: Path) -> list[dict]:
    """Every goal of the file in order, grouped by benchmark (first appearance), with the benchmarks' exits as rows."""
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    order: list[str] = []
    goals: dict[str, list[dict]] = {}
    exits: dict[str, int] = {}
    for index, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            bench = str(entry["bench"])
        except (ValueError, KeyError, TypeError):
            entry, bench = {"what": f"line {index} of {path.name}", "figure": "unreadable", "goal": "a JSON row",
                            "result": FAIL}, "(goals file)"
        if bench not in goals:
            order.append(bench)
            goals[bench] = []
        if "exit" in entry:
            exits[bench] = int(entry["exit"])
        else:
            goals[bench].append(entry)
    rows = []
    for bench in order:
        rows += [{**goal, "bench": bench} for goal in goals[bench]]
        status = exits.get(bench)
        if status:
            rows.append({"bench": bench, "what": "the benchmark", "figure": f"exited with status {status}",
                         "goal": "status 0", "result": FAIL})
        elif status == 0 and not goals[bench]:
            rows.append({"bench": bench, "what": "the benchmark", "figure": "recorded no goal",
                         "goal": "≥ 1 goal recorded", "result": FAIL})
    return rows


def table(rows: list[dict]) -> str:
    header = ("benchmark", "what", "figure", "goal", "result", "note")
    cells = [header] + [(r["bench"], r.get("what", ""), r.get("figure", ""), r.get("goal") or "—", r.get("result", ""),
                         r.get("note", "")) for r in rows]
    widths = [max(len(str(row[i])) for row in cells) for i in range(len(header))]
    rule = "  ".join("-" * w for w in widths)
    lines = []
    for i, row in enumerate(cells):
        lines.append("  ".join(f"{cell:<{w}}" for cell, w in zip(row, widths, strict=True)).rstrip())
        if i == 0:
            lines.append(rule)
    return "\n".join(lines)


def report(path: Path) -> int:
    """Print the table of every goal in ``path``; 1 if any row failed or nothing was recorded, else 0."""
    rows = rows_of(path)
    if not rows:
        print(f"no benchmark recorded a goal in {path}")
        return 1
    print(table(rows))
    counts = {result: sum(r.get("result") == result for r in rows) for result in (PASS, FAIL, INFO)}
    benches = len({r["bench"] for r in rows})
    print(f"\n{benches} benchmark{'s' if benches != 1 else ''}, {len(rows)} rows: "
          f"{counts[PASS]} PASS, {counts[FAIL]} FAIL, {counts[INFO]} info")
    failed = [f"{r['bench']}: {r.get('what', '')} ({r.get('figure', '')})" for r in rows if r.get("result") == FAIL]
    if failed:
        print("FAILED:\n  " + "\n  ".join(failed))
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    shown = commands.add_parser("report", help="print the table of every goal; exit 1 if one failed")
    shown.add_argument("file", type=Path)
    ran = commands.add_parser("ran", help=f"record a benchmark's exit status in ${ENV}")
    ran.add_argument("bench", help="the benchmark's name (its file's stem) or file")
    ran.add_argument("status", type=int)
    args = parser.parse_args(argv)
    if args.command == "report":
        return report(args.file)
    path = os.environ.get(ENV)
    if not path:
        parser.error(f"ran needs ${ENV}")
    append(Path(path), {"bench": bench_name(args.bench), "exit": args.status, "time": time.time()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
