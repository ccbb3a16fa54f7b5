"""What optbench asks Slurm's own commands: limits, partitions, accounts, job states, cancel.

Everything goes through the command-line tools a login node has (``scontrol``,
``sinfo``, ``sacctmgr``, ``sacct``, ``squeue``, ``sbatch --test-only``,
``scancel``), one call per question, so that a status poll of a 10,000-run
sweep is one ``sacct`` call (and one ``squeue`` call for the reasons of the
runs that wait). Their output is read by the pure ``parse_*`` functions.
A Slurm that cannot be reached is a :class:`~orchestrator.errors.UserError`.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import NamedTuple

from orchestrator.errors import UserError

TIMEOUT_S = 30


class SlurmUnavailable(UserError):
    """Slurm's commands are missing or its controller does not answer."""


class SlurmError(UserError):
    """A Slurm command refused what it was asked."""


def run(*command: str, check: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run a Slurm command (``stdin``: text to feed it); a missing or unreachable Slurm is one sentence."""
    if shutil.which(command[0]) is None:
        raise SlurmUnavailable(
            f"Slurm's {command[0]} is not installed here; run optbench on a login node, "
            "start the local cluster with make cluster-up, or use launcher=local."
        )
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S, input=stdin)
    except subprocess.TimeoutExpired:
        raise SlurmUnavailable(f"Slurm did not answer {command[0]} within {TIMEOUT_S} s; is slurmctld up?") from None
    if check and result.returncode != 0:
        _raise_unreachable(result)
        message = _first_error_line(result.stderr) or f"exit status {result.returncode}"
        raise SlurmError(f"{' '.join(command[:2])} failed: {message}")
    return result


def _raise_unreachable(result: subprocess.CompletedProcess[str]) -> None:
    if "Unable to contact slurm controller" in result.stderr or "Connection refused" in result.stderr:
        message = _first_error_line(result.stderr)
        raise SlurmUnavailable(f"Slurm is not reachable ({message}); start it (make cluster-up) or use launcher=local.")


def _first_error_line(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()]
    return (errors or lines or [""])[-1]


# ---------------------------------------------------------------------------- cluster facts


@dataclass(frozen=True)
class Node:
    name: str
    cpus: int
    memory_mb: int
    gpus: dict[str | None, int]  # GRES gpu type (None: untyped) → count
    features: frozenset[str]

    @property
    def gpu_total(self) -> int:
        return sum(self.gpus.values())


@dataclass(frozen=True)
class Partition:
    name: str
    default: bool
    max_time_min: int | None  # None: no limit (so for every max_* below)
    nodes: tuple[Node, ...]
    state: str
    max_nodes: int | None = None
    max_cpus_per_node: int | None = None
    max_mem_per_node_mb: int | None = None
    allow_accounts: frozenset[str] | None = None  # None: every account
    deny_accounts: frozenset[str] = frozenset()
    qos: str | None = None  # the partition's QOS, whose limits apply to every job in it

    @property
    def gpus_per_node(self) -> int:
        """The most GPUs any node of the partition has."""
        return max((node.gpu_total for node in self.nodes), default=0)


@dataclass(frozen=True)
class ClusterInfo:
    max_array_size: int
    accounting: bool
    partitions: dict[str, Partition]
    enforce: frozenset[str] = frozenset()  # AccountingStorageEnforce: associations, limits, qos, safe, ...

    @property
    def default_partition(self) -> Partition | None:
        return next((p for p in self.partitions.values() if p.default), None)

    @property
    def enforces_limits(self) -> bool:
        """Association and QOS limits apply (otherwise Slurm ignores them)."""
        return bool(self.enforce & {"limits", "safe"})


@cache
def cluster_info() -> ClusterInfo:
    """The cluster's limits, partitions and their nodes (cached per process)."""
    config = _config()
    return ClusterInfo(
        max_array_size=int(config.get("MaxArraySize", 1001)),
        accounting=config.get("AccountingStorageType", "accounting_storage/none") != "accounting_storage/none",
        partitions=_partitions(),
        enforce=frozenset(filter(None, config.get("AccountingStorageEnforce", "").lower().split(","))),
    )


def _config() -> dict[str, str]:
    text = run("scontrol", "show", "config").stdout
    pairs = (line.split("=", 1) for line in text.splitlines() if "=" in line)
    return {key.strip(): value.strip() for key, value in pairs}


#: sinfo's node-oriented format: one line per node and partition.
NODE_FORMAT = "%R|%N|%c|%m|%G|%f"


def _partitions() -> dict[str, Partition]:
    """Two calls: every partition's limits (scontrol) and every node's resources per partition (sinfo)."""
    nodes = parse_nodes(run("sinfo", "-a", "-h", "-N", "-o", NODE_FORMAT).stdout)
    records = parse_records(run("scontrol", "-a", "show", "partition", "-o").stdout)
    return {p.name: p for p in (parse_partition(r, nodes.get(r.get("PartitionName", ""), ())) for r in records)}


RECORD_KEY = re.compile(r"(?:^|\s)([A-Za-z][\w/.:-]*)=")


def parse_records(text: str) -> list[dict[str, str]]:
    """``scontrol show … -o``: one ``Key=value Key=value …`` record per line (a value may hold spaces)."""
    records = []
    for line in text.splitlines():
        keys = list(RECORD_KEY.finditer(line))
        ends = [k.start() for k in keys[1:]] + [len(line)]
        if keys:
            records.append({k.group(1): line[k.end():end].strip() for k, end in zip(keys, ends, strict=True)})
    return records


def parse_partition(record: dict[str, str], nodes: Sequence[Node]) -> Partition:
    allow = record.get("AllowAccounts", "ALL")
    return Partition(
        name=record["PartitionName"], default=record.get("Default") == "YES",
        max_time_min=parse_duration_min(record.get("MaxTime", "UNLIMITED")), nodes=tuple(nodes),
        state=record.get("State", "UP").lower(), max_nodes=_limit(record.get("MaxNodes")),
        max_cpus_per_node=_limit(record.get("MaxCPUsPerNode")), max_mem_per_node_mb=_limit(record.get("MaxMemPerNode")),
        allow_accounts=None if allow == "ALL" else frozenset(allow.split(",")),
        deny_accounts=frozenset(filter(None, record.get("DenyAccounts", "").split(","))),
        qos=None if record.get("QoS", "N/A") in ("N/A", "") else record["QoS"])


def _limit(text: str | None) -> int | None:
    return int(text) if text and text.isdigit() else None  # UNLIMITED, NONE, N/A


def parse_nodes(text: str) -> dict[str, list[Node]]:
    """sinfo's :data:`NODE_FORMAT` lines → partition → its nodes."""
    partitions: dict[str, list[Node]] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        partition, name, cpus, memory, gres, features = line.split("|")
        partitions.setdefault(partition, []).append(Node(
            name, _number(cpus), _number(memory), gpu_types(gres),
            frozenset() if features in ("(null)", "") else frozenset(features.split(","))))
    return partitions


def _number(text: str) -> int:
    match = re.match(r"\d+", text)
    return int(match.group()) if match else 0


GPU_GRES = re.compile(r"(?<![\w/])gpu(?::([A-Za-z0-9_.-]+))?:(\d+)")


def gpu_types(gres: str) -> dict[str | None, int]:
    """GPUs per GRES type in a GRES string such as ``gpu:2`` (untyped: None) or ``gpu:a100:4(S:0-1),gpu:v100:2``."""
    types: dict[str | None, int] = {}
    for kind, count in GPU_GRES.findall(gres):
        types[kind or None] = types.get(kind or None, 0) + int(count)
    return types


def parse_duration_min(text: str) -> int | None:
    """Slurm's ``[days-]hours:minutes:seconds`` (and shorter forms) in whole minutes; None for no limit."""
    if text in ("infinite", "UNLIMITED", "NONE", ""):
        return None
    days, _, clock = text.rpartition("-")
    parts = [int(p) for p in clock.split(":")]
    if days:  # days-hours[:minutes[:seconds]]
        parts += [0] * (3 - len(parts))
        hours, minutes, seconds = parts
    elif len(parts) == 3:
        hours, minutes, seconds = parts
    elif len(parts) == 2:
        hours, minutes, seconds = 0, parts[0], parts[1]
    else:
        hours, minutes, seconds = 0, parts[0], 0
    return (int(days or 0) * 24 + hours) * 60 + minutes + (1 if seconds else 0)


MEMORY_UNITS_MB = {"K": 1 / 1024, "M": 1, "G": 1024, "T": 1024 * 1024}


def parse_tres(text: str) -> dict[str, int]:
    """``cpu=4,mem=16G,node=2,gres/gpu=4`` → ``{"cpu": 4, "mem": 16384, ...}`` (memory in MB)."""
    tres: dict[str, int] = {}
    for item in filter(None, text.split(",")):
        key, _, value = item.partition("=")
        match = re.fullmatch(r"(\d+(?:\.\d+)?)([KMGT]?)", value.strip())
        if match:
            tres[key.strip()] = int(float(match.group(1)) * MEMORY_UNITS_MB[match.group(2) or "M"])
    return tres


# ---------------------------------------------------------------------------- accounting: associations and QOS


@dataclass(frozen=True)
class Limits:
    """Per-job limits of an association or a QOS (absent: none)."""

    per_job: dict[str, int]  # MaxTRES: TRES name (cpu, mem in MB, node, gres/gpu) → most per job
    per_node: dict[str, int]  # MaxTRESPerNode
    wall_min: int | None  # MaxWall


@dataclass(frozen=True)
class Association:
    """What the user may charge: an account, on one partition or (None) on all."""

    account: str
    partition: str | None
    qos: frozenset[str]
    default_qos: str | None
    limits: Limits


def associations() -> list[Association] | None:
    """The current user's associations, or None when accounting cannot tell."""
    result = run("sacctmgr", "-n", "-P", "show", "associations", "where", f"user={_user()}",
                 "format=account,partition,qos,defaultqos,maxtres,maxtrespernode,maxwall", check=False)
    return parse_associations(result.stdout) if result.returncode == 0 else None


def parse_associations(text: str) -> list[Association]:
    found = []
    for line in text.splitlines():
        if line.strip():
            account, partition, qos, default_qos, per_job, per_node, wall = line.split("|")
            found.append(Association(account, partition or None, frozenset(filter(None, qos.split(","))),
                                     default_qos or None, Limits(parse_tres(per_job), parse_tres(per_node),
                                                                 parse_duration_min(wall))))
    return found


def default_account() -> str | None:
    result = run("sacctmgr", "-n", "-P", "show", "user", _user(), "format=defaultaccount", check=False)
    return result.stdout.strip() or None if result.returncode == 0 else None


def qos_limits() -> dict[str, Limits] | None:
    """Every QOS of the cluster with its per-job limits, or None when accounting cannot tell."""
    result = run("sacctmgr", "-n", "-P", "show", "qos", "format=name,maxtres,maxtrespernode,maxwall", check=False)
    return parse_qos(result.stdout) if result.returncode == 0 else None


def parse_qos(text: str) -> dict[str, Limits]:
    found = {}
    for line in text.splitlines():
        if line.strip():
            name, per_job, per_node, wall = line.split("|")
            found[name] = Limits(parse_tres(per_job), parse_tres(per_node), parse_duration_min(wall))
    return found


def _user() -> str:
    import getpass

    return getpass.getuser()


# ---------------------------------------------------------------------------- Slurm's own verdict


def refusal(script: str) -> str | None:
    """Slurm's reason, in one line, why it would never run this job script; None when it would.

    ``sbatch --test-only`` answers with an expected start or a refusal and submits nothing.
    """
    result = run("sbatch", "--test-only", check=False, stdin=script)
    if result.returncode != 0:
        _raise_unreachable(result)
    return parse_refusal(result.returncode, result.stderr)


def parse_refusal(returncode: int, stderr: str) -> str | None:
    if returncode == 0:
        return None
    line = _first_error_line(stderr) or f"sbatch --test-only exited with status {returncode}"
    for prefix in ("sbatch: error: ", "Batch job submission failed: ", "allocation failure: "):
        line = line.removeprefix(prefix)
    return line.rstrip(".")


# ---------------------------------------------------------------------------- jobs


class JobState(NamedTuple):
    """One job or array task as sacct or squeue report it (a tuple: status copies one per run of a sweep)."""

    job_id: str  # "123" or "123_4" for an array task
    state: str  # Slurm's state word: PENDING, RUNNING, COMPLETED, FAILED, TIMEOUT, CANCELLED, ...
    node: str
    elapsed: str
    exit_code: str
    reason: str = ""  # a pending job's reason as squeue says it (Priority, Resources, JobHeldUser, ...)


#: Slurm states in which a job is still queued or running.
ACTIVE_STATES = frozenset({"PENDING", "RUNNING", "REQUEUED", "RESIZING", "SUSPENDED", "CONFIGURING",
                           "COMPLETING", "REQUEUE_HOLD", "REQUEUE_FED", "SIGNALING", "STAGE_OUT", "STOPPED",
                           "PREEMPTED"})


def job_states(job_ids: Iterable[str]) -> dict[str, JobState]:
    """States of jobs and array tasks: one sacct call (squeue where accounting is off), and one squeue call
    for the reasons of those that wait.

    ``job_ids`` are the ids submission returned (array tasks as ``123_4``);
    the answer is keyed by those ids. Pending array tasks that Slurm still
    shows as one range (``123_[5-99%8]``) are expanded. A job accounting does
    not list yet (it lags a few seconds behind sbatch) is taken from squeue;
    jobs Slurm no longer knows are absent.
    """
    wanted = set(job_ids)
    if not wanted:
        return {}
    parents = _parents(wanted)
    if not cluster_info().accounting:
        return _select(parse_squeue(_squeue(parents)), wanted)
    out = run("sacct", "-n", "-P", "-X", "--format=JobID,State,NodeList,Elapsed,ExitCode",
              "-j", ",".join(parents)).stdout
    states = _select(parse_sacct(out), wanted)
    waiting = {job_id for job_id in wanted if job_id not in states or states[job_id].state == "PENDING"}
    if waiting:
        queued = _select(parse_squeue(_squeue(_parents(waiting))), waiting)
        for job_id, job in queued.items():
            known = states.get(job_id)
            states[job_id] = job if known is None else known._replace(reason=job.reason)
    return states


def _parents(job_ids: Iterable[str]) -> list[str]:
    return sorted({job_id.split("_")[0] for job_id in job_ids}, key=int)


def _squeue(parents: list[str]) -> str:
    # check=False: squeue refuses a single id it no longer knows
    return run("squeue", "-h", "-o", "%i|%T|%N|%M|%r", "-j", ",".join(parents), check=False).stdout


def parse_sacct(text: str) -> list[JobState]:
    """``sacct -n -P -X --format=JobID,State,NodeList,Elapsed,ExitCode`` lines ("CANCELLED by 0": CANCELLED)."""
    rows = (line.split("|") for line in text.splitlines() if line)
    return [JobState(jid, state.split()[0], _node(node), elapsed, code) for jid, state, node, elapsed, code in rows]


def parse_squeue(text: str) -> list[JobState]:
    """``squeue -h -o %i|%T|%N|%M|%r`` lines; a pending job's reason kept (``None``: not looked at yet)."""
    rows = (line.split("|", 4) for line in text.splitlines() if line)
    return [JobState(jid, state, _node(node), elapsed, "", reason if state == "PENDING" else "")
            for jid, state, node, elapsed, reason in rows]


def _node(node: str) -> str:
    return "" if node in ("None assigned", "(null)") else node


def _select(jobs: Iterable[JobState], wanted: set[str]) -> dict[str, JobState]:
    """The wanted ids among jobs whose ids may be pending ranges."""
    return {one: job._replace(job_id=one) for job in jobs for one in expand_array_id(job.job_id) if one in wanted}


def expand_array_id(job_id: str) -> list[str]:
    """``123_[0-2,5%4]`` → ``123_0 123_1 123_2 123_5``; other ids unchanged."""
    match = re.fullmatch(r"(\d+)_\[([^\]]+)\]", job_id)
    if not match:
        return [job_id]
    parent, ranges = match.group(1), match.group(2).split("%")[0]
    ids = []
    for part in ranges.split(","):
        first, _, last = part.partition("-")
        ids += [f"{parent}_{i}" for i in range(int(first), int(last or first) + 1)]
    return ids


def jobs_named(name: str) -> list[str]:
    """Ids of the jobs (array parents) with this exact name, oldest first.

    squeue answers at once for queued and running jobs; accounting also
    knows ended ones but may lag a few seconds behind sbatch.
    """
    out = run("squeue", "-h", "-o", "%i", f"--name={name}").stdout
    if cluster_info().accounting:
        out += run("sacct", "-n", "-P", "-X", "--format=JobID", f"--name={name}", "-S", "now-7days").stdout
    parents = {line.split("_")[0] for line in out.split() if line}
    return sorted(parents, key=int)


def cancel(job_ids: Iterable[str]) -> None:
    ids = sorted(set(job_ids))
    if ids:
        run("scancel", *ids)
