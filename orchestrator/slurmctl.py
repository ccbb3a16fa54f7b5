"""What optbench asks Slurm's own commands: limits, partitions, accounts, job states, cancel.

Everything goes through the command-line tools a login node has (``scontrol``,
``sinfo``, ``sacctmgr``, ``sacct``, ``squeue``, ``scancel``), one call per
question, so that a status poll of a 10,000-run sweep is one ``sacct`` call.
A Slurm that cannot be reached is a :class:`~orchestrator.errors.UserError`.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache

from orchestrator.errors import UserError

TIMEOUT_S = 30


class SlurmUnavailable(UserError):
    """Slurm's commands are missing or its controller does not answer."""


class SlurmError(UserError):
    """A Slurm command refused what it was asked."""


def run(*command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a Slurm command; a missing or unreachable Slurm is one sentence."""
    if shutil.which(command[0]) is None:
        raise SlurmUnavailable(
            f"Slurm's {command[0]} is not installed here; run optbench on a login node, "
            "start the local cluster with make cluster-up, or use launcher=local."
        )
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise SlurmUnavailable(f"Slurm did not answer {command[0]} within {TIMEOUT_S} s; is slurmctld up?") from None
    if check and result.returncode != 0:
        message = _first_error_line(result.stderr) or f"exit status {result.returncode}"
        if "Unable to contact slurm controller" in result.stderr or "Connection refused" in result.stderr:
            raise SlurmUnavailable(
                f"Slurm is not reachable ({message}); start it (make cluster-up) or use launcher=local."
            )
        raise SlurmError(f"{' '.join(command[:2])} failed: {message}")
    return result


def _first_error_line(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()]
    return (errors or lines or [""])[-1]


# ---------------------------------------------------------------------------- cluster facts


@dataclass(frozen=True)
class Partition:
    name: str
    default: bool
    max_time_min: int | None  # None: no limit
    nodes: int
    gpus_per_node: int  # the most any node of the partition has
    state: str


@dataclass(frozen=True)
class ClusterInfo:
    max_array_size: int
    accounting: bool
    partitions: dict[str, Partition]

    @property
    def default_partition(self) -> Partition | None:
        return next((p for p in self.partitions.values() if p.default), None)


@cache
def cluster_info() -> ClusterInfo:
    """The cluster's limits and partitions (cached per process)."""
    config = _config()
    return ClusterInfo(
        max_array_size=int(config.get("MaxArraySize", 1001)),
        accounting=config.get("AccountingStorageType", "accounting_storage/none") != "accounting_storage/none",
        partitions=_partitions(),
    )


def _config() -> dict[str, str]:
    text = run("scontrol", "show", "config").stdout
    pairs = (line.split("=", 1) for line in text.splitlines() if "=" in line)
    return {key.strip(): value.strip() for key, value in pairs}


def _partitions() -> dict[str, Partition]:
    """One sinfo call: partition, time limit, node count, GRES, availability."""
    partitions: dict[str, Partition] = {}
    for line in run("sinfo", "-h", "-o", "%P|%l|%D|%G|%a").stdout.splitlines():
        name, limit, nodes, gres, state = line.split("|")
        default = name.endswith("*")
        name = name.rstrip("*")
        gpus = gpu_count(gres)
        if name in partitions:  # one line per distinct node configuration
            known = partitions[name]
            nodes_total, gpus = known.nodes + int(nodes), max(known.gpus_per_node, gpus)
        else:
            nodes_total = int(nodes)
        partitions[name] = Partition(name, default, parse_duration_min(limit), nodes_total, gpus, state)
    return partitions


def gpu_count(gres: str) -> int:
    """GPUs in a GRES string such as ``gpu:2``, ``gpu:a100:4(S:0-1)`` or ``(null)``."""
    counts = re.findall(r"gpu(?::[A-Za-z0-9_.-]+)?:(\d+)", gres)
    return max((int(c) for c in counts), default=0)


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


def user_accounts() -> set[str] | None:
    """Accounts the current user may charge, or None when accounting cannot tell."""
    result = run("sacctmgr", "-n", "-P", "show", "associations", "where", f"user={_user()}",
                 "format=account", check=False)
    if result.returncode != 0:
        return None
    return {line.strip() for line in result.stdout.splitlines() if line.strip()}


def qos_names() -> set[str] | None:
    result = run("sacctmgr", "-n", "-P", "show", "qos", "format=name", check=False)
    if result.returncode != 0:
        return None
    return {line.strip() for line in result.stdout.splitlines() if line.strip()}


def _user() -> str:
    import getpass

    return getpass.getuser()


# ---------------------------------------------------------------------------- jobs


@dataclass(frozen=True)
class JobState:
    job_id: str  # "123" or "123_4" for an array task
    state: str  # Slurm's state word: PENDING, RUNNING, COMPLETED, FAILED, TIMEOUT, CANCELLED, ...
    node: str
    elapsed: str
    exit_code: str


#: Slurm states in which a job is still queued or running.
ACTIVE_STATES = frozenset({"PENDING", "RUNNING", "REQUEUED", "RESIZING", "SUSPENDED", "CONFIGURING",
                           "COMPLETING", "REQUEUE_HOLD", "REQUEUE_FED", "SIGNALING", "STAGE_OUT", "STOPPED",
                           "PREEMPTED"})


def job_states(job_ids: Iterable[str]) -> dict[str, JobState]:
    """States of jobs and array tasks in one call: sacct, or squeue where accounting is off.

    ``job_ids`` are the ids submission returned (array tasks as ``123_4``);
    the answer is keyed by those ids. Pending array tasks that Slurm still
    shows as one range (``123_[5-99%8]``) are expanded. Jobs Slurm no longer
    knows are absent.
    """
    wanted = set(job_ids)
    if not wanted:
        return {}
    parents = sorted({job_id.split("_")[0] for job_id in wanted}, key=int)
    if cluster_info().accounting:
        out = run("sacct", "-n", "-P", "-X", "--format=JobID,State,NodeList,Elapsed,ExitCode",
                  "-j", ",".join(parents)).stdout
        rows = (line.split("|") for line in out.splitlines() if line)
        records = ((jid, state.split()[0], node, elapsed, code) for jid, state, node, elapsed, code in rows)
    else:
        out = run("squeue", "-h", "-r", "-o", "%i|%T|%N|%M", "-j", ",".join(parents), check=False).stdout
        rows = (line.split("|") for line in out.splitlines() if line)
        records = ((jid, state, node, elapsed, "") for jid, state, node, elapsed in rows)
    states: dict[str, JobState] = {}
    for jid, state, node, elapsed, code in records:
        node = "" if node in ("None assigned", "(null)") else node
        for one in expand_array_id(jid):
            if one in wanted:
                states[one] = JobState(one, state, node, elapsed, code)
    return states


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
