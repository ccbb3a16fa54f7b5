"""Slurm's pending reasons in plain words, which never pass, and how status shows them (no cluster needed).

The real cluster's reasons (held, dependency, resources, throttled, a partition limit lowered under a queued
job) are tests/slurm/test_slurm_waiting.py.
"""

from __future__ import annotations

import pytest
from rich.text import Text

from orchestrator.monitor import RunProgress, SweepProgress
from orchestrator.status import render
from orchestrator.waiting import HELD, NEVER, QUEUED, THROTTLED, explain, notes


@pytest.mark.parametrize(("reason", "kind", "words"), [
    ("None", QUEUED, "queued"),
    ("Priority", QUEUED, "behind higher-priority jobs"),
    ("Resources", QUEUED, "waiting for free resources"),
    ("Dependency", QUEUED, "waiting for the jobs it depends on"),
    ("BeginTime", QUEUED, "waiting for its start time"),
    ("QOSMaxJobsPerUserLimit", QUEUED, "at the QOS's limit of running jobs per user"),
    ("QOSGrpCpuLimit", QUEUED, "waiting for room under a QOS limit (QOSGrpCpuLimit)"),  # others' jobs end
    ("SomethingNew", QUEUED, "waiting (SomethingNew)"),
    ("JobArrayTaskLimit", THROTTLED, "throttled by launcher.array_parallelism"),
    ("JobHeldUser", HELD, "held"),
    ("JobHeldAdmin", HELD, "held by an administrator"),
    ("PartitionConfig", NEVER, "asks for more than the partition's nodes or limits allow"),
    ("PartitionTimeLimit", NEVER, "its time limit is over the partition's"),
    ("ReqNodeNotAvail, UnavailableNodes:n[1-2]", NEVER, "a node it needs is down, drained or reserved"),
    ("DependencyNeverSatisfied", NEVER, "a job it depends on failed"),
    ("BadConstraints", NEVER, "no node has the features it asks for"),
    ("AssocGrpCpuLimit", NEVER, "over a limit of its account's association"),
    ("AssocMaxWallDurationPerJobLimit", NEVER, "over a limit of its account's association"),
    ("QOSMaxCpuPerJobLimit", NEVER, "over a per-job limit of its QOS"),
    ("QOSMaxGRESPerNode", NEVER, "over a per-job limit of its QOS"),
])
def test_each_reason_in_plain_words(reason, kind, words):
    waiting = explain(reason)
    assert (waiting.kind, waiting.words) == (kind, words)
    assert waiting.reason == reason.split(",")[0]
    assert bool(waiting.fix) == (kind == NEVER) and ("launcher." in waiting.fix or kind != NEVER)


def run(run_id: str, job_id: str, reason: str | None) -> RunProgress:
    return RunProgress(run_id, "submitted", "sgd", 0, 0.0, job_id=job_id,
                       waiting=explain(reason) if reason else None)


def test_notes_name_what_to_do_never_first_and_count_the_rest():
    runs = [run("h0", "7_0", "JobHeldAdmin"), run("h1", "7_1", "JobHeldAdmin"),
            *(run(f"p{i}", f"8_{i}", "PartitionTimeLimit") for i in range(7)), run("q", "9", "Priority")]
    never, held = notes(runs, "grid-1234")
    assert never.kind == NEVER and never.text == (
        "7 runs will never start: Slurm says PartitionTimeLimit (its time limit is over the partition's); cancel with "
        "optbench cancel grid-1234 and launch again with a lower launcher.time_min (p0, p1, p2, p3, p4 and 2 more).")
    assert held.kind == HELD and held.text == (
        "2 runs are held by an administrator (JobHeldAdmin); scontrol release 7 lets them start (h0, h1).")


def test_status_shows_the_reason_in_the_node_column_and_never_in_red():
    runs = [run("aaaaaaaaaaaa", "8_0", "PartitionConfig"), run("bbbbbbbbbbbb", "8_1", "Resources"),
            RunProgress("cccccccccccc", "running", "sgd", 1, 0.5, node="n2", job_id="9")]
    sweep = SweepProgress("grid-1234", "grid", None, "slurm", runs, {"submitted": 2, "running": 1}, 0.2, None, None,
                          notes=notes(runs, "grid-1234"))
    group = render(sweep, None, width=120)
    table = next(part for part in group.renderables if hasattr(part, "columns"))
    cells = next(column for column in table.columns if column.header == "node (reason)")._cells
    assert [c.plain if isinstance(c, Text) else c for c in cells] == [
        "(asks for more than the partition's nodes or limits allow)", "(waiting for free resources)", "n2"]
    assert [cells[0].style, cells[1].style] == ["bold red", "dim"]
    (note,) = [part for part in group.renderables if isinstance(part, Text) and "will never start" in part.plain]
    assert note.style == "bold red" and "launch again with fewer launcher.nodes" in note.plain
