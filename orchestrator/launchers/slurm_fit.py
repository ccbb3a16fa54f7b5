"""Whether a Slurm request can ever run on this cluster, and if not, which ``launcher.*`` setting to change.

Slurm's own verdict decides what no node, account or QOS can serve:
``sbatch --test-only`` on the job script an array task gets (every option the
array has) answers "never" or gives an expected start, so plugins and limits
optbench does not model count too. When it answers "never", the cluster's
description (scontrol, sinfo, sacctmgr) names the setting and the largest
value allowed; where that finds no cause, Slurm's own words are the sentence.

What ``--test-only`` lets through although the job would wait forever is
read from the description alone: the partition's limits (MaxTime, MaxNodes,
MaxCPUsPerNode, MaxMemPerNode; Slurm queues such a job with reason
PartitionConfig or PartitionTimeLimit unless EnforcePartLimits is set) and,
where accounting enforces them, the per-job limits of the QOS, of the
partition's QOS and of the account's association.
"""

from __future__ import annotations

import math
from functools import cached_property
from typing import TYPE_CHECKING

from orchestrator import slurmctl
from orchestrator.errors import UserError
from orchestrator.slurmctl import Association, ClusterInfo, Limits, Partition

if TYPE_CHECKING:
    from orchestrator.launchers.slurm import SlurmSettings

#: ``launcher.cpus_per_task=null``: this many, or what a node holds per task where that is fewer.
DEFAULT_CPUS_PER_TASK = 2
#: What a TRES counts, for sentences.
TRES_WORDS = {"cpu": "CPU", "node": "node", "gres/gpu": "GPU", "mem": "MB of memory"}


def default_cpus(settings: SlurmSettings, partition: Partition) -> int:
    """``launcher.cpus_per_task`` where it is null: :data:`DEFAULT_CPUS_PER_TASK`, fewer on smaller nodes."""
    if settings.nodes > len(partition.nodes):
        return DEFAULT_CPUS_PER_TASK  # refused as too many nodes
    per_node = node_cpus(partition, settings.nodes)
    if per_node < settings.tasks_per_node:
        have = _nodes_have(partition, [n.cpus for n in partition.nodes], per_node)
        raise UserError(f"launcher.tasks_per_node={settings.tasks_per_node} needs at least "
                        f"{settings.tasks_per_node} CPUs per node, but {have}; "
                        f"lower launcher.tasks_per_node to at most {per_node}.")
    return min(DEFAULT_CPUS_PER_TASK, per_node // settings.tasks_per_node)


def node_cpus(partition: Partition, nodes: int) -> int:
    """The most CPUs per node a job of ``nodes`` nodes can have in the partition."""
    return min(_nth_largest([n.cpus for n in partition.nodes], nodes),
               partition.max_cpus_per_node or math.inf)


def check_fits(settings: SlurmSettings, partition: Partition, cluster: ClusterInfo, script: str) -> None:
    """Refuse, in one sentence, a request that can never run (``cpus_per_task`` set; ``script``: its job script)."""
    check_partition_limits(settings, partition)
    accounting = _Accounting() if cluster.accounting else None
    if accounting is not None and cluster.enforces_limits:
        check_job_limits(settings, partition, accounting)
    reason = slurmctl.refusal(script)
    if reason is not None:
        explain(settings, partition, accounting)
        raise UserError(f"Slurm would never run this request on partition {partition.name!r} ({reason}); change "
                        f"the launcher settings it names (scontrol show partition {partition.name} lists the "
                        "partition's limits).")


# ---------------------------------------------------------------------------- what --test-only lets through


def check_partition_limits(settings: SlurmSettings, partition: Partition) -> None:
    name = partition.name
    if partition.max_time_min is not None and settings.time_min > partition.max_time_min:
        raise UserError(f"launcher.time_min={settings.time_min} exceeds partition {name!r}'s limit of "
                        f"{partition.max_time_min} minutes; lower it or choose another partition.")
    if partition.max_nodes is not None and settings.nodes > partition.max_nodes:
        raise UserError(f"launcher.nodes={settings.nodes} but partition {name!r} allows at most "
                        f"{partition.max_nodes} nodes per job (MaxNodes); lower launcher.nodes.")
    cpus = settings.cpus_per_task * settings.tasks_per_node
    if partition.max_cpus_per_node is not None and cpus > partition.max_cpus_per_node:
        raise UserError(f"{_cpus_asked(settings)} needs {cpus} CPUs per node, but partition {name!r} allows "
                        f"{partition.max_cpus_per_node} per node (MaxCPUsPerNode); lower {_which(settings)}.")
    memory = memory_mb(settings)
    if memory is not None and partition.max_mem_per_node_mb is not None and memory > partition.max_mem_per_node_mb:
        raise UserError(f"launcher.mem_gb={settings.mem_gb:g} needs {memory} MB per node, but partition {name!r} "
                        f"allows {partition.max_mem_per_node_mb} MB per node (MaxMemPerNode); lower launcher.mem_gb "
                        f"to at most {_gb(partition.max_mem_per_node_mb)}.")


def check_job_limits(settings: SlurmSettings, partition: Partition, accounting: _Accounting) -> None:
    """The per-job limits of the job's QOS, of the partition's QOS and of its association (MaxTRES, MaxWall)."""
    qos_limits = accounting.qos or {}
    association = accounting.association(settings.account, partition.name)
    qos = settings.qos or (association.default_qos if association else None) or "normal"
    sources = []
    if qos in qos_limits:
        sources.append((f"QOS {qos!r}", qos_limits[qos], "choose another launcher.qos"))
    if partition.qos in qos_limits:
        sources.append((f"Partition {partition.name!r}'s QOS {partition.qos!r}", qos_limits[partition.qos],
                        "choose another launcher.partition"))
    if association is not None:
        sources.append((f"Your association with account {association.account!r}", association.limits,
                        "choose another launcher.account"))
    for source, limits, remedy in sources:
        _check_limits(settings, source, limits, remedy)


def _check_limits(settings: SlurmSettings, source: str, limits: Limits, remedy: str) -> None:
    if limits.wall_min is not None and settings.time_min > limits.wall_min:
        raise UserError(f"{source} allows at most {limits.wall_min} minutes per job (MaxWall), but "
                        f"launcher.time_min={settings.time_min}; lower launcher.time_min or {remedy}.")
    for per_job, most in ((True, limits.per_job), (False, limits.per_node)):
        asked = _request(settings, per_job)
        for tres, limit in most.items():
            if tres in asked and asked[tres][0] > limit:
                value, factors = asked[tres]
                where = "job" if per_job else "node"
                raise UserError(f"{source} allows at most {_count(limit, TRES_WORDS[tres])} per {where} "
                                f"(MaxTRESPer{where.title()}), but {factors} asks for {value}; lower "
                                f"{'them' if ' × ' in factors else 'it'} or {remedy}.")


def _request(settings: SlurmSettings, per_job: bool) -> dict[str, tuple[int, str]]:
    """TRES name → (how many the request asks for, per job or per node; the settings that make it)."""
    nodes = [("launcher.nodes", settings.nodes)] if per_job else []
    asked = {"cpu": [("launcher.cpus_per_task", settings.cpus_per_task),
                     ("launcher.tasks_per_node", settings.tasks_per_node), *nodes],
             "node": nodes}
    if settings.gpus_per_node:
        asked["gres/gpu"] = [("launcher.gpus_per_node", settings.gpus_per_node), *nodes]
    if settings.mem_gb is not None:
        asked["mem"] = [("launcher.mem_gb", memory_mb(settings)), *nodes]
    return {tres: (math.prod(v for _, v in factors), _product(factors)) for tres, factors in asked.items() if factors}


# ---------------------------------------------------------------------------- why --test-only said never


def explain(settings: SlurmSettings, partition: Partition, accounting: _Accounting | None) -> None:
    """Raise the sentence for the first cause the cluster's description shows; return when it shows none."""
    for cause in (_nodes, _cpus, _memory, _gpus, _features):
        cause(settings, partition)
    if accounting is not None:
        _account(settings, partition, accounting)
        _qos(settings, partition, accounting)


def _nodes(settings: SlurmSettings, partition: Partition) -> None:
    if settings.nodes > len(partition.nodes):
        raise UserError(f"launcher.nodes={settings.nodes} but partition {partition.name!r} has "
                        f"{len(partition.nodes)} nodes; lower launcher.nodes.")


def _cpus(settings: SlurmSettings, partition: Partition) -> None:
    have = [n.cpus for n in partition.nodes]
    most = _nth_largest(have, settings.nodes)
    cpus = settings.cpus_per_task * settings.tasks_per_node
    if cpus > most:
        raise UserError(f"{_cpus_asked(settings)} needs {cpus} CPUs per node, but "
                        f"{_nodes_have(partition, have, most)}; lower {_which(settings)}.")


def _memory(settings: SlurmSettings, partition: Partition) -> None:
    memory = memory_mb(settings)
    have = [n.memory_mb for n in partition.nodes]
    most = _nth_largest(have, settings.nodes)
    if memory is not None and memory > most:
        raise UserError(f"launcher.mem_gb={settings.mem_gb:g} needs {memory} MB per node, but "
                        f"{_nodes_have(partition, have, most, 'MB')}; lower launcher.mem_gb to at most {_gb(most)}.")


def _gpus(settings: SlurmSettings, partition: Partition) -> None:
    if not settings.gpus_per_node:
        return
    kind = settings.gpu_type
    if kind is not None and not any(kind in n.gpus for n in partition.nodes):
        typed = sorted({t for n in partition.nodes for t in n.gpus if t})
        have = (f"have GPUs of the types {', '.join(typed)}; set launcher.gpu_type to one of them" if typed
                else "have untyped GPUs only; set launcher.gpu_type=null" if partition.gpus_per_node
                else "have no GPUs; set launcher.gpus_per_node=0")
        raise UserError(f"launcher.gpu_type={kind} but the nodes of partition {partition.name!r} {have}.")
    counts = [n.gpus.get(kind, 0) if kind else n.gpu_total for n in partition.nodes]
    most = _nth_largest(counts, settings.nodes)
    if settings.gpus_per_node > most:
        of_type = f" of type {kind}" if kind else ""
        raise UserError(f"launcher.gpus_per_node={settings.gpus_per_node} but the nodes of partition "
                        f"{partition.name!r} have at most {most} GPUs{of_type}; lower it.")


def _features(settings: SlurmSettings, partition: Partition) -> None:
    if not settings.constraint:
        return
    have = set().union(*(n.features for n in partition.nodes))
    unknown = [f for f in feature_names(settings.constraint) if f not in have]
    if unknown:
        offered = f"theirs are: {', '.join(sorted(have))}" if have else "they have none"
        raise UserError(f"launcher.constraint={settings.constraint} asks for the feature {unknown[0]!r}, which no "
                        f"node of partition {partition.name!r} has ({offered}); change launcher.constraint.")


def feature_names(constraint: str) -> list[str]:
    """The node features a ``--constraint`` expression names (``a100|v100``, ``[rack1*2&rack2*4]``, ``ib&!gpu``)."""
    names = []
    for part in constraint.replace("[", " ").replace("]", " ").replace("(", " ").replace(")", " ").split():
        for term in part.replace("|", "&").replace(",", "&").split("&"):
            name = term.split("*")[0].lstrip("!")
            if name and name not in names:
                names.append(name)
    return names


def _account(settings: SlurmSettings, partition: Partition, accounting: _Accounting) -> None:
    associations = accounting.associations
    if associations is None:
        return
    accounts = {a.account for a in associations}
    if settings.account is not None and settings.account not in accounts:
        raise UserError(f"You cannot charge account {settings.account!r} on this cluster; set launcher.account "
                        f"to one of: {', '.join(sorted(accounts)) or '(none)'}.")
    account = settings.account or accounting.default_account
    here = sorted({a.account for a in associations if a.partition in (None, partition.name)
                   and _admits(partition, a.account)})
    if account is not None and accounting.association(settings.account, partition.name) is None:
        there = sorted({a.partition for a in associations if a.account == account and a.partition})
        raise UserError(f"Account {account!r} is not associated with partition {partition.name!r}; set "
                        f"launcher.partition to one of: {', '.join(there) or '(none)'}, or launcher.account to one "
                        f"of: {', '.join(here) or '(none)'}.")
    if account is not None and not _admits(partition, account):
        raise UserError(f"Partition {partition.name!r} takes no jobs of account {account!r}; set launcher.account "
                        f"to one of: {', '.join(here) or '(none)'}, or choose another launcher.partition.")


def _admits(partition: Partition, account: str) -> bool:
    allowed = partition.allow_accounts is None or account in partition.allow_accounts
    return allowed and account not in partition.deny_accounts


def _qos(settings: SlurmSettings, partition: Partition, accounting: _Accounting) -> None:
    names = accounting.qos
    if settings.qos is None or names is None:
        return
    if settings.qos not in names:
        raise UserError(f"There is no QOS {settings.qos!r} on this cluster; set launcher.qos to one of: "
                        f"{', '.join(sorted(names))}.")
    association = accounting.association(settings.account, partition.name)
    if association is not None and association.qos and settings.qos not in association.qos:
        raise UserError(f"Account {association.account!r} may not use QOS {settings.qos!r}; set launcher.qos to "
                        f"one of: {', '.join(sorted(association.qos))}.")


# ---------------------------------------------------------------------------- shared


class _Accounting:
    """sacctmgr's answers, each asked once (None: accounting cannot tell)."""

    @cached_property
    def associations(self) -> list[Association] | None:
        return slurmctl.associations()

    @cached_property
    def qos(self) -> dict[str, Limits] | None:
        return slurmctl.qos_limits()

    @cached_property
    def default_account(self) -> str | None:
        return slurmctl.default_account()

    def association(self, account: str | None, partition: str) -> Association | None:
        """The association a job of ``account`` (None: the default one) in ``partition`` runs under."""
        account = account or self.default_account
        mine = [a for a in self.associations or [] if a.account == account]
        return next((a for a in mine if a.partition == partition), None) or next(
            (a for a in mine if a.partition is None), None)


def memory_mb(settings: SlurmSettings) -> int | None:
    """``launcher.mem_gb`` as the MB per node sbatch gets."""
    return None if settings.mem_gb is None else int(settings.mem_gb * 1024)


def _nth_largest(values: list[int], n: int) -> int:
    """The most each of ``n`` distinct nodes can have (0 when there are fewer nodes)."""
    ranked = sorted(values, reverse=True)
    return ranked[n - 1] if 0 < n <= len(ranked) else 0


def _nodes_have(partition: Partition, values: list[int], most: int, unit: str = "") -> str:
    """``the nodes of partition 'debug' have 2`` (``at most 2`` where they differ)."""
    some = "" if len(set(values)) <= 1 else "at most "
    return f"the nodes of partition {partition.name!r} have {some}{most}{' ' + unit if unit else ''}"


def _cpus_asked(settings: SlurmSettings) -> str:
    if settings.tasks_per_node == 1:
        return f"launcher.cpus_per_task={settings.cpus_per_task}"
    return f"launcher.cpus_per_task={settings.cpus_per_task} × launcher.tasks_per_node={settings.tasks_per_node}"


def _which(settings: SlurmSettings) -> str:
    return "one of them" if settings.tasks_per_node > 1 else "it"


def _product(factors: list[tuple[str, int]]) -> str:
    """``launcher.cpus_per_task=2 × launcher.nodes=2``, leaving out factors of 1 (all of 1: the first)."""
    shown = [f for f in factors if f[1] != 1] or factors[:1]
    return " × ".join(f"{name}={value}" for name, value in shown)


def _count(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 or word.startswith("MB") else f"{n} {word}s"


def _gb(mb: int) -> str:
    return f"{math.floor(mb / 1024 * 100) / 100:g}"
