"""Why a queued Slurm job waits, in plain words, and whether it ever starts.

squeue gives a pending job one reason (``Priority``, ``Resources``,
``PartitionConfig``, ...). Most pass by themselves: the job starts once other
jobs end. Some never do (the request exceeds what the partition, the
account or the QOS allows, a dependency failed): such a job waits until it is
cancelled, so monitors show it in red with the setting to change before
launching it again. Held jobs (``scontrol hold``) wait for a release and
array tasks beyond ``launcher.array_parallelism`` for their turn: both are
shown as such, not as stuck.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

#: The kinds of waiting: passes by itself, waits for its array's turn, waits for a release, never starts.
QUEUED, THROTTLED, HELD, NEVER = "queued", "throttled", "held", "never"

#: Reasons that pass by themselves → plain words.
PASSING = {
    "None": "queued",  # the scheduler has not looked at it yet
    "Priority": "behind higher-priority jobs",
    "Resources": "waiting for free resources",
    "Dependency": "waiting for the jobs it depends on",
    "BeginTime": "waiting for its start time",
    "QOSMaxJobsPerUserLimit": "at the QOS's limit of running jobs per user",
    "Reservation": "waiting for its reservation",
    "Licenses": "waiting for licenses",
}
THROTTLED_REASONS = {"JobArrayTaskLimit": "throttled by launcher.array_parallelism"}
HELD_REASONS = {"JobHeldUser": "held", "JobHeldAdmin": "held by an administrator"}
#: Reasons that never pass → (plain words, what to launch it again with).
NEVER_REASONS = {
    "PartitionConfig": ("asks for more than the partition's nodes or limits allow",
                        "fewer launcher.nodes, tasks_per_node, cpus_per_task, mem_gb or gpus_per_node"),
    "PartitionTimeLimit": ("its time limit is over the partition's", "a lower launcher.time_min"),
    "PartitionNodeLimit": ("asks for more nodes than the partition allows", "fewer launcher.nodes"),
    "PartitionDown": ("its partition is down", "another launcher.partition"),
    "PartitionInactive": ("its partition is inactive", "another launcher.partition"),
    "ReqNodeNotAvail": ("a node it needs is down, drained or reserved",
                        "those nodes in launcher.exclude, or another launcher.partition"),
    "DependencyNeverSatisfied": ("a job it depends on failed",
                                 "launcher.additional_parameters.dependency not naming that job"),
    "BadConstraints": ("no node has the features it asks for", "another launcher.constraint"),
    "InvalidAccount": ("its account is not valid", "another launcher.account"),
    "InvalidQOS": ("its QOS is not valid", "another launcher.qos"),
}
#: Limits a job never meets: its account's (AssocGrp*, AssocMax*) and the QOS's per-job and per-node ones.
ACCOUNT_LIMIT = re.compile(r"Assoc(Grp|Max)\w*")
QOS_JOB_LIMIT = re.compile(r"QOS(Max|Min)\w*Per(Job|Node)\w*|QOSMin\w*")


@dataclass(frozen=True)
class Waiting:
    reason: str  # Slurm's word
    words: str
    kind: str  # QUEUED, THROTTLED, HELD or NEVER
    fix: str = ""  # NEVER: what to launch it again with


def explain(reason: str) -> Waiting:
    """What squeue's reason for a pending job (its first word: ``ReqNodeNotAvail, UnavailableNodes:n1``) means."""
    word = reason.split(",")[0].strip() or "None"
    if word in NEVER_REASONS:
        words, fix = NEVER_REASONS[word]
        return Waiting(word, words, NEVER, fix)
    if ACCOUNT_LIMIT.fullmatch(word):
        return Waiting(word, "over a limit of its account's association", NEVER,
                       "a smaller request or another launcher.account (sacctmgr show assoc lists the limits)")
    if QOS_JOB_LIMIT.fullmatch(word):
        return Waiting(word, "over a per-job limit of its QOS", NEVER,
                       "a smaller request or another launcher.qos (sacctmgr show qos lists the limits)")
    if word in THROTTLED_REASONS:
        return Waiting(word, THROTTLED_REASONS[word], THROTTLED)
    if word in HELD_REASONS:
        return Waiting(word, HELD_REASONS[word], HELD)
    if word not in PASSING and word.startswith("QOS"):  # a limit shared with other jobs: they end
        return Waiting(word, f"waiting for room under a QOS limit ({word})", QUEUED)
    return Waiting(word, PASSING.get(word, f"waiting ({word})"), QUEUED)


class _Queued(Protocol):
    run_id: str
    job_id: str | None
    waiting: Waiting | None


@dataclass(frozen=True)
class Note:
    kind: str  # HELD or NEVER
    text: str


#: Run ids named in a note; the rest are counted.
NAMED = 5


def notes(runs: Sequence[_Queued], sweep_id: str) -> list[Note]:
    """One sentence per reason that needs someone to act (held, never starts), with what to do; never first."""
    groups: dict[tuple[str, str], list[_Queued]] = {}
    for run in runs:
        if run.waiting is not None and run.waiting.kind in (HELD, NEVER):
            groups.setdefault((run.waiting.kind, run.waiting.reason), []).append(run)
    found = []
    for (kind, _), group in sorted(groups.items(), key=lambda item: item[0][0] != NEVER):
        waiting, ids = group[0].waiting, _ids(group)
        if kind == NEVER:
            found.append(Note(NEVER, f"{_runs(group)} will never start: Slurm says {waiting.reason} "
                                     f"({waiting.words}); cancel with optbench cancel {sweep_id} and launch again "
                                     f"with {waiting.fix} ({ids})."))
        else:
            jobs = " ".join(dict.fromkeys(r.job_id.split("_")[0] for r in group if r.job_id))
            found.append(Note(HELD, f"{_runs(group)} {'is' if len(group) == 1 else 'are'} {waiting.words} "
                                    f"({waiting.reason}); scontrol release {jobs} lets them start ({ids})."))
    return found


def _runs(group: Sequence[_Queued]) -> str:
    return "1 run" if len(group) == 1 else f"{len(group)} runs"


def _ids(group: Sequence[_Queued]) -> str:
    named = ", ".join(r.run_id for r in group[:NAMED])
    return named + (f" and {len(group) - NAMED} more" if len(group) > NAMED else "")
