"""The ``slurm`` launcher: every run an array task, submitted through submitit, fire-and-forget.

Runs are packed ``runs_per_job`` to an array task (one Python process runs
them one after another, so startup is paid once per task); with
``vectorize=N``, runs that can train together (:mod:`jobs.vectorized`) form
groups of up to N, each trained as one in its task, and a task packs whole
groups up to ``runs_per_job`` runs. The packs
are cut into arrays of at most the cluster's ``MaxArraySize`` tasks. Each
array is one ``sbatch`` call, written to the sweep's ledger before (intent)
and after (job id) the call, so a submission that fails half-way records
exactly what went in and ``optbench resume`` submits the rest. Nothing has
to stay alive afterwards: state lives in the results folder and in Slurm.

Settings reach the job script submitit writes as ``#SBATCH --name='value'``
lines, quoted, so a value is always one literal word; what quoting cannot
carry (a line break, or an option name that is not one) is refused before
anything is written. The paths in the script (logs, the container's image
and binds, the results folder) are quoted the same way. ``launcher.setup``
lines alone are shell by design: they run as written.

A request that can never run (more CPUs, memory or GPUs per node than the
nodes have, a feature or GPU type none has, over a partition's or QOS's
limit, an account the partition does not take) is refused before anything
is written, by Slurm's own ``sbatch --test-only`` on the job script and the
cluster's limits (:mod:`orchestrator.launchers.slurm_fit`). A null
``cpus_per_task`` is 2, or fewer where ``tasks_per_node`` of them do not fit
on the partition's nodes.
"""

from __future__ import annotations

import io
import re
import tempfile
from collections.abc import Mapping, Sequence
from contextlib import redirect_stderr
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from jobs.run_folder import STATUS
from jobs.schema import Param, count, validate_params
from jobs.vectorized import group_runs
from orchestrator import slurmctl
from orchestrator.errors import UserError
from orchestrator.launchers.slurm_fit import check_fits, default_cpus
from orchestrator.ledger import Ledger
from orchestrator.store import ResultsStore
from orchestrator.sweep import Run

#: sbatch's option names, as ``launcher.additional_parameters`` keys (submitit writes ``_`` as ``-``).
OPTION_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")


#: ``conf/launcher/slurm.yaml``'s settings (less ``name``); see that file for what each means.
SCHEMA = {
    "partition": Param("str", nullable=True),
    "account": Param("str", nullable=True),
    "qos": Param("str", nullable=True),
    "time_min": count(low=1),
    "mem_gb": Param("float", low=0.0, low_open=True, nullable=True),
    "cpus_per_task": Param("int", low=1, nullable=True),
    "gpus_per_node": count(low=0),
    "gpu_type": Param("str", nullable=True),
    "constraint": Param("str", nullable=True),
    "exclude": Param("str", nullable=True),
    "nodes": count(low=1),
    "tasks_per_node": count(low=1),
    "array_parallelism": count(low=1),
    "runs_per_job": count(low=1),
    "vectorize": Param("int", low=1, help="runs trained together as one group (1: none)"),
    "max_array_size": Param("int", low=1, nullable=True),
    "max_requeues": count(low=0),
    "signal_delay_s": count(low=0),
    "additional_parameters": Param("mapping", nullable=True),
    "setup": Param("strs", nullable=True),
}


@dataclass(frozen=True)
class SlurmSettings:
    """The Slurm launcher's settings, built from a full ``launcher`` config (``conf/launcher/slurm.yaml``'s keys).

    A null ``additional_parameters`` or ``setup`` is an empty one.
    """

    partition: str | None
    account: str | None
    qos: str | None
    time_min: int
    mem_gb: float | None
    cpus_per_task: int | None  # None: see resolved()
    gpus_per_node: int
    gpu_type: str | None
    constraint: str | None
    exclude: str | None
    nodes: int
    tasks_per_node: int
    array_parallelism: int
    runs_per_job: int
    vectorize: int
    max_array_size: int | None
    max_requeues: int
    signal_delay_s: int
    additional_parameters: dict[str, Any]
    setup: list[str]

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> SlurmSettings:
        values = validate_params("launcher", "the Slurm launcher", SCHEMA,
                                 {k: v for k, v in config.items() if k != "name"})
        settings = cls(**{**values, "additional_parameters": values["additional_parameters"] or {},
                          "setup": values["setup"] or []})
        settings._check_script_values()
        return settings

    def _check_script_values(self) -> None:
        """What the job script can carry: one-line values, and sbatch option names as option names."""
        for key in ("partition", "account", "qos", "gpu_type", "constraint", "exclude"):
            value = getattr(self, key)
            if value is not None:
                check_script_value(f"launcher.{key}", value)
        for key, value in self.additional_parameters.items():
            if not isinstance(key, str) or not OPTION_NAME.fullmatch(key):
                raise UserError(f"launcher.additional_parameters has the key {key!r}, which is not an sbatch option "
                                "name (letters, digits, - and _, e.g. mail-type).")
            if isinstance(value, dict | list) or value is None:
                raise UserError(f"launcher.additional_parameters.{key} must be text, a number or true "
                                f"(got {value!r}).")
            check_script_value(f"launcher.additional_parameters.{key}", str(value))

    def check_cluster(self, cluster: slurmctl.ClusterInfo) -> slurmctl.Partition:
        """What Slurm would refuse or leave pending forever, as one sentence before anything is submitted."""
        partition = self._partition(cluster)
        settings = self.resolved(cluster)
        check_fits(settings, partition, cluster, job_script(settings))
        return partition

    def resolved(self, cluster: slurmctl.ClusterInfo) -> SlurmSettings:
        """These settings with a null ``cpus_per_task`` chosen for the partition's nodes."""
        if self.cpus_per_task is not None:
            return self
        return replace(self, cpus_per_task=default_cpus(self, self._partition(cluster)))

    def _partition(self, cluster: slurmctl.ClusterInfo) -> slurmctl.Partition:
        if self.partition is None:
            if cluster.default_partition is None:
                raise UserError("This cluster has no default partition; set launcher.partition.")
            return cluster.default_partition
        if self.partition not in cluster.partitions:
            raise UserError(f"There is no partition {self.partition!r} on this cluster; set launcher.partition to "
                            f"one of: {', '.join(sorted(cluster.partitions))}.")
        return cluster.partitions[self.partition]

    def array_size(self, cluster: slurmctl.ClusterInfo) -> int:
        return min(self.max_array_size or cluster.max_array_size, cluster.max_array_size)

    def executor_parameters(self) -> dict[str, Any]:
        """submitit's SlurmExecutor parameters (its names, which follow sbatch's)."""
        parameters: dict[str, Any] = {
            "time": self.time_min,
            "nodes": self.nodes,
            "ntasks_per_node": self.tasks_per_node,
            "array_parallelism": self.array_parallelism,
            "signal_delay_s": self.signal_delay_s,
            "additional_parameters": dict(self.additional_parameters),
            "setup": list(self.setup),
        }
        if self.cpus_per_task is not None:
            parameters["cpus_per_task"] = self.cpus_per_task
        if self.gpus_per_node:
            parameters["gpus_per_node"] = f"{self.gpu_type}:{self.gpus_per_node}" if self.gpu_type \
                else self.gpus_per_node
        if self.mem_gb is not None:
            parameters["mem"] = f"{int(self.mem_gb * 1024)}MB"
        for key in ("partition", "account", "qos", "constraint", "exclude"):
            if getattr(self, key) is not None:
                parameters[key] = getattr(self, key)
        return parameters


def job_script(settings: SlurmSettings) -> str:
    """The job script submitit writes for an array with these settings, its command, size and paths aside.

    Every task of an array shares these options, so ``sbatch --test-only`` on a
    one-task array answers for the arrays :func:`submit` makes.
    """
    from submitit.slurm.slurm import _make_sbatch_string

    return _make_sbatch_string(command="true", folder=Path(tempfile.gettempdir()) / "optbench-check", map_count=1,
                               job_name="optbench-check", **settings.executor_parameters())


def check_script_value(name: str, value: str, remedy: str = "remove it") -> None:
    """A value bound for a ``#SBATCH`` line of the job script, which submitit quotes as one shell word.

    Quoting keeps spaces, ``$(…)``, backticks and ``;`` literal, but a line
    break would end the ``#SBATCH`` line and start a line the shell runs.
    """
    if CONTROL.search(value):
        raise UserError(f"{name} {value!r} contains a line break or another control character, which cannot go "
                        f"into a Slurm job script; {remedy}.")


@dataclass
class Submission:
    """What one launch put into Slurm."""

    runs: int = 0
    arrays: list[str] = field(default_factory=list)  # parent job ids, one per sbatch call
    tasks: int = 0


class PartialSubmission(UserError):
    """Some arrays went in, a later one was rejected: the ledger has exactly what went in."""


def submit(
    runs: Sequence[Run],
    store: ResultsStore,
    sweep_dir: Path,
    settings: SlurmSettings,
    runtime: Mapping[str, Any],
    python: str | None = None,
) -> Submission:
    """Submit ``runs`` as arrays of packs; returns as soon as Slurm has them.

    The caller has checked the request with :meth:`SlurmSettings.check_cluster`.
    ``python`` is the command that starts each task's Python (a container's),
    default the launcher's own interpreter.
    """
    import submitit

    from jobs.entry import RunPack

    cluster = slurmctl.cluster_info()
    settings = settings.resolved(cluster)
    packs = _packs(runs, settings)
    size = settings.array_size(cluster)
    chunks = [packs[i:i + size] for i in range(0, len(packs), size)]

    folder = sweep_dir / "slurm"
    check_script_value("The folder", str(folder.absolute()), "choose a results folder without one")  # logs' paths
    executor = submitit.SlurmExecutor(folder=folder, max_num_timeout=settings.max_requeues, python=python)
    executor.update_parameters(**settings.executor_parameters())
    job = RunPack({**runtime, "threads": settings.cpus_per_task})
    ledger = Ledger(sweep_dir)
    done = Submission()
    for number, chunk in enumerate(chunks, start=1):
        intent = ledger.begin("slurm", folder, [[r.run_id for group in pack for r in group] for pack in chunk],
                              name_prefix=f"optbench-{sweep_dir.name}-")
        executor.update_parameters(job_name=intent.name)
        arguments = [[_unit(group, store) for group in pack] for pack in chunk]
        try:
            with redirect_stderr(io.StringIO()):  # submitit echoes sbatch's stderr; the error below quotes it
                job_ids = [j.job_id for j in executor.map_array(job, arguments)]
        except Exception as error:  # sbatch refused or broke off: keep what went in, stop here
            adopted = _adopt(intent.name, len(chunk))
            if adopted is None:
                _refuse(ledger, intent.batch, str(error), number, chunks, done, sweep_dir.name)
            job_ids = adopted
        ledger.submitted(intent.batch, job_ids)  # the ledger, not 10,000 status files, says they are queued
        _hand_over(store, chunk, job_ids)
        done.runs += sum(len(group) for pack in chunk for group in pack)
        done.tasks += len(chunk)
        done.arrays.append(job_ids[0].split("_")[0])
    return done


def _refuse(ledger: Ledger, batch: str, error_text: str, number: int, chunks: list, done: Submission,
            sweep_id: str) -> None:
    reason = _reason(error_text)
    ledger.rejected(batch, reason)
    left = sum(len(group) for chunk in chunks[number - 1:] for pack in chunk for group in pack)
    raise PartialSubmission(
        f"Slurm rejected array {number} of {len(chunks)} ({reason}); {done.runs} runs went in as "
        f"{len(done.arrays)} arrays and {left} did not: fix the cause, then run optbench resume {sweep_id}."
    ) from None


def _packs(runs: Sequence[Run], settings: SlurmSettings) -> list[list[list[Run]]]:
    """Array tasks: each a list of groups (one run, or up to ``vectorize`` runs trained together), in order.

    A task takes groups until it holds ``runs_per_job`` runs (a group is never split; a task holds at
    least one group).
    """
    groups = group_runs(runs, settings.vectorize) if settings.vectorize > 1 else [[run] for run in runs]
    packs: list[list[list[Run]]] = []
    for group in groups:
        if packs and sum(len(g) for g in packs[-1]) + len(group) <= settings.runs_per_job:
            packs[-1].append(group)
        else:
            packs.append([group])
    return packs


def _unit(group: list[Run], store: ResultsStore) -> dict[str, Any]:
    """What :class:`jobs.entry.RunPack` gets for a group: a run's item, or ``{"items": [...]}`` for several."""
    items = [{"spec": r.spec, "run_dir": str(store.run_folder(r.run_id).root),
              **({"budget": r.budget} if r.budget else {})} for r in group]
    return items[0] if len(items) == 1 else {"items": items}


def _hand_over(store: ResultsStore, chunk: list[list[list[Run]]], job_ids: list[str]) -> None:
    """Tell run folders that already exist (a resubmission) which job owns them now.

    A new run has no folder until its job starts; an old one keeps the
    state of its last attempt, which its new job must not be fenced out by.
    """
    for pack, job_id in zip(chunk, job_ids, strict=True):
        for run in (run for group in pack for run in group):
            folder = store.run_folder(run.run_id)
            if folder.path(STATUS).exists():
                folder.set_state("submitted", launcher="slurm", job_id=job_id, requeued=False, error=None)


def _adopt(name: str, tasks: int) -> list[str] | None:
    """The job ids of an array that Slurm accepted although sbatch reported an error (e.g. a timeout)."""
    parents = slurmctl.jobs_named(name)
    if not parents:
        return None
    return [f"{parents[-1]}_{i}" for i in range(tasks)] if tasks > 1 else [parents[-1]]


def _reason(text: str) -> str:
    """The scheduler's own words from a failed sbatch, in one line."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()]
    reason = (errors or lines or ["sbatch failed without a message"])[-1]
    return reason.removeprefix("sbatch: error: ").rstrip(".")

