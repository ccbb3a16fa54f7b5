"""A request the cluster can never serve is one sentence before anything is submitted.

The limits that need cluster objects (a partition's MaxNodes and MaxCPUsPerNode,
a QOS's MaxTRESPerJob, an account associated with another partition only) are
the test's own, created under unique names and removed afterwards.
"""

from __future__ import annotations

import subprocess
import time
from types import SimpleNamespace

import pytest
from slurm_helpers import scratch_account, scratch_partition, scratch_qos

from orchestrator.errors import UserError
from orchestrator.sweep import expand

TINY = ("problem=rosenbrock", "train.epochs=1", "logger=disabled", "launcher=slurm")


@pytest.fixture(scope="module")
def scratch(slurm_cluster):
    with (scratch_partition(MaxNodes=1, MaxCPUsPerNode=1, MaxTime=60) as partition,
          scratch_qos(MaxTRESPerJob="cpu=1") as qos,
          scratch_account(qos=f"normal,{qos}") as limited,
          scratch_account(partition=partition) as elsewhere):
        yield SimpleNamespace(partition=partition, qos=qos, limited=limited, elsewhere=elsewhere)


def _launch(optbench, results, *overrides: str) -> tuple[int, str, str]:
    return optbench("launch", *TINY, *overrides, "--results", results)


def _queued_jobs() -> set[str]:
    return set(subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True, check=True).stdout.split())


def _accounted_names(since: str) -> list[str]:
    out = subprocess.run(["sacct", "-n", "-P", "-X", "-a", "-S", since, "--format=JobName%200"], capture_output=True,
                         text=True, check=True).stdout
    return out.split()


@pytest.mark.parametrize(("overrides", "expected"), [
    (["launcher.nodes=2", "launcher.tasks_per_node=2", "launcher.cpus_per_task=2"],
     "launcher.cpus_per_task=2 × launcher.tasks_per_node=2 needs 4 CPUs per node, but the nodes of partition "
     "'debug' have 2; lower one of them."),
    (["launcher.tasks_per_node=3"],
     "launcher.tasks_per_node=3 needs at least 3 CPUs per node, but the nodes of partition 'debug' have 2; lower "
     "launcher.tasks_per_node to at most 2."),
    (["launcher.mem_gb=100"], "launcher.mem_gb=100 needs 102400 MB per node, but the nodes of partition 'debug' have"),
    (["launcher.constraint=nosuch"],
     "launcher.constraint=nosuch asks for the feature 'nosuch', which no node of partition 'debug' has (theirs are: "
     "fakegpu); change launcher.constraint."),
    (["launcher.gpus_per_node=1", "launcher.gpu_type=a100"],
     "launcher.gpu_type=a100 but the nodes of partition 'debug' have untyped GPUs only; set launcher.gpu_type=null."),
    (["launcher.gpus_per_node=3"], "have at most 2 GPUs"),
    (["launcher.nodes=3"], "launcher.nodes=3 but partition 'debug' has 2 nodes; lower launcher.nodes."),
    (["launcher.time_min=2000"], "exceeds partition 'debug''s limit of 1440 minutes"),
    (["launcher.partition={partition}", "launcher.time_min=61"], "exceeds partition '{partition}''s limit of 60"),
    (["launcher.partition={partition}", "launcher.nodes=2"],
     "launcher.nodes=2 but partition '{partition}' allows at most 1 nodes per job (MaxNodes); lower launcher.nodes."),
    (["launcher.partition={partition}", "launcher.cpus_per_task=2"],
     "launcher.cpus_per_task=2 needs 2 CPUs per node, but partition '{partition}' allows 1 per node "
     "(MaxCPUsPerNode); lower it."),
    (["launcher.account={limited}", "launcher.qos={qos}", "launcher.cpus_per_task=2"],
     "QOS '{qos}' allows at most 1 CPU per job (MaxTRESPerJob), but launcher.cpus_per_task=2 asks for 2; lower it "
     "or choose another launcher.qos."),
    (["launcher.account={elsewhere}"],
     "Account '{elsewhere}' is not associated with partition 'debug'; set launcher.partition to one of: {partition}, "
     "or launcher.account to one of:"),
    (["launcher.partition=gpu_h100"], "There is no partition 'gpu_h100'"),
    (["launcher.account=physics"], "You cannot charge account 'physics'"),
    (["launcher.qos=ultra"], "There is no QOS 'ultra'"),
    (["launcher.runs_per_job=0"], "launcher.runs_per_job must be >= 1 (got 0)."),
    (["launcher.partiton=debug"], "Cannot set launcher.partiton (conf/launcher/ lists its keys)"),
], ids=["cpus-per-node", "tasks-per-node", "memory", "feature", "gpu-type", "gpu-count", "nodes", "time",
        "partition-time", "partition-max-nodes", "partition-max-cpus", "qos-limit", "account-partition",
        "partition", "account", "qos", "runs-per-job", "typo"])
def test_unservable_request_is_one_sentence_and_submits_nothing(optbench, results, scratch, overrides, expected):
    overrides = [o.format(**vars(scratch)) for o in overrides]
    since = time.strftime("%Y-%m-%dT%H:%M:%S")
    before = _queued_jobs()
    status, out, err = _launch(optbench, results, *overrides)
    assert status == 2, out
    assert expected.format(**vars(scratch)) in " ".join(err.split()) and err.startswith("optbench: error:")
    assert err.strip().endswith(".") and err.count(". ") == 0  # one sentence
    assert not results.exists()
    assert not _queued_jobs() - before
    try:
        sweep_id = expand([*TINY, *overrides]).sweep_id
    except UserError:
        return  # refused before it was a sweep
    assert not [name for name in _accounted_names(since) if name.startswith(f"optbench-{sweep_id}-")]


@pytest.mark.parametrize("overrides", [
    ["launcher.account=other"],
    ["launcher.nodes=2", "launcher.tasks_per_node=2"],  # cpus_per_task unset: as many as fit, 1 here
    ["launcher.constraint=fakegpu"],
    ["launcher.account={limited}", "launcher.qos={qos}", "launcher.cpus_per_task=1"],
    ["launcher.partition={partition}"],  # cpus_per_task unset: its MaxCPUsPerNode, 1
], ids=["account", "multi-node", "feature", "qos", "partition"])
def test_a_servable_request_goes_through(optbench, results, scratch, overrides):
    status, out, err = _launch(optbench, results, *(o.format(**vars(scratch)) for o in overrides), "--dry-run")
    assert status == 0 and "would start 1 of 1 runs" in out, err


def test_unreachable_slurm_is_one_sentence(optbench, results, monkeypatch, tmp_path):
    conf = tmp_path / "slurm.conf"
    conf.write_text("ClusterName=nowhere\nSlurmctldHost=localhost(127.0.0.1)\nSlurmctldPort=6999\n"
                    "AuthType=auth/munge\n")
    monkeypatch.setenv("SLURM_CONF", str(conf))
    status, _, err = _launch(optbench, results)
    assert status == 2 and "Slurm is not reachable" in err and "make cluster-up" in err
    assert not results.exists()
