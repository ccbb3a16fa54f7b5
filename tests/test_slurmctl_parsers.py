"""Slurm's output as optbench reads it, on text recorded from sacct, squeue, sinfo, scontrol, sacctmgr and
sbatch --test-only (no cluster needed)."""

from __future__ import annotations

import subprocess

import pytest

from orchestrator import slurmctl


@pytest.mark.parametrize(("text", "minutes"), [
    ("1-00:00:00", 24 * 60), ("2-12", 60 * 60), ("1-02:30", 26 * 60 + 30), ("3:30:00", 210),
    ("30:00", 30), ("30:01", 31), ("5", 5), ("0:00:30", 1), ("infinite", None), ("UNLIMITED", None),
    ("NONE", None),
])
def test_durations_in_every_form_slurm_prints(text, minutes):
    assert slurmctl.parse_duration_min(text) == minutes


@pytest.mark.parametrize(("gres", "types"), [
    ("gpu:2", {None: 2}), ("gpu:a100:4(S:0-1)", {"a100": 4}), ("(null)", {}), ("", {}),
    ("gpu:tesla:1,gpu:a100:2", {"tesla": 1, "a100": 2}), ("shard:8,gpu:1", {None: 1}),
    ("gpu:a100:2(S:0),gpu:a100:2(S:1)", {"a100": 4}),
])
def test_gpus_per_type_from_gres(gres, types):
    assert slurmctl.gpu_types(gres) == types


@pytest.mark.parametrize(("job_id", "expanded"), [
    ("12_[3-7%2]", ["12_3", "12_4", "12_5", "12_6", "12_7"]),
    ("12_[0-2,5%4]", ["12_0", "12_1", "12_2", "12_5"]),
    ("12_[9]", ["12_9"]),
    ("12_4", ["12_4"]),
    ("12", ["12"]),
])
def test_pending_array_ranges_expand_to_tasks(job_id, expanded):
    assert slurmctl.expand_array_id(job_id) == expanded


def answer(stdout: str):
    return lambda *command, check=True, stdin=None: subprocess.CompletedProcess(command, 0, stdout, "")


def answers(by_command: dict[str, str], asked: list):
    """A fake ``slurmctl.run`` that answers each command with its recorded text and notes what was asked."""

    def run(*command, check=True, stdin=None):
        asked.append(command)
        return subprocess.CompletedProcess(command, 0, by_command[command[0]], "")

    return run


def test_sacct_states_with_reasons_ranges_and_nodes(monkeypatch):
    """One sacct line per task or pending range; "CANCELLED by 1000" is a state with its reason.

    The runs that wait get squeue's reason, asked once for their parents only; a job accounting does not
    list yet (45) comes from squeue.
    """
    recorded = ("41_0|COMPLETED|n1|00:00:07|0:0\n"
                "41_1|CANCELLED by 1000|n2|00:00:03|0:15\n"
                "41_[2-4%2]|PENDING|None assigned|00:00:00|0:0\n"
                "42|RUNNING|n1|00:01:10|0:0\n"
                "43|OUT_OF_MEMORY|n2|00:00:11|0:125\n")
    queue = ("41_[2-4%2]|PENDING||0:00|JobArrayTaskLimit\n"
             "45|PENDING||0:00|ReqNodeNotAvail, UnavailableNodes:n[1-2]\n")
    asked = []
    monkeypatch.setattr(slurmctl, "run", answers({"sacct": recorded, "squeue": queue}, asked))
    monkeypatch.setattr(slurmctl, "cluster_info", lambda: slurmctl.ClusterInfo(1001, True, {}))
    states = slurmctl.job_states(["41_0", "41_1", "41_3", "42", "43", "44", "45"])
    assert {k: (v.state, v.node, v.elapsed, v.reason) for k, v in states.items()} == {
        "41_0": ("COMPLETED", "n1", "00:00:07", ""), "41_1": ("CANCELLED", "n2", "00:00:03", ""),
        "41_3": ("PENDING", "", "00:00:00", "JobArrayTaskLimit"), "42": ("RUNNING", "n1", "00:01:10", ""),
        "43": ("OUT_OF_MEMORY", "n2", "00:00:11", ""),
        "45": ("PENDING", "", "0:00", "ReqNodeNotAvail, UnavailableNodes:n[1-2]"),
    }  # 44: Slurm no longer knows it
    assert states["41_1"].exit_code == "0:15"
    assert [c[0] for c in asked] == ["sacct", "squeue"] and asked[1][-1] == "41,44,45"


def test_squeue_alone_is_asked_when_nothing_waits(monkeypatch):
    asked = []
    monkeypatch.setattr(slurmctl, "run", answers({"sacct": "41_0|RUNNING|n1|00:00:07|0:0\n"}, asked))
    monkeypatch.setattr(slurmctl, "cluster_info", lambda: slurmctl.ClusterInfo(1001, True, {}))
    assert slurmctl.job_states(["41_0"])["41_0"].state == "RUNNING"
    assert [c[0] for c in asked] == ["sacct"]


def test_squeue_is_asked_when_accounting_is_off(monkeypatch):
    recorded = "41_0|RUNNING|n1|0:05|None\n41_[1-3%2]|PENDING|(null)|0:00|JobHeldAdmin\n"
    asked = []
    monkeypatch.setattr(slurmctl, "run", answers({"squeue": recorded}, asked))
    monkeypatch.setattr(slurmctl, "cluster_info", lambda: slurmctl.ClusterInfo(1001, False, {}))
    states = slurmctl.job_states(["41_0", "41_2"])
    assert [c[0] for c in asked] == ["squeue"]
    assert {k: (v.state, v.node, v.reason) for k, v in states.items()} == {
        "41_0": ("RUNNING", "n1", ""), "41_2": ("PENDING", "", "JobHeldAdmin")}


#: ``scontrol -a show partition -o`` of a partition with limits, and of one without.
PARTITIONS = (
    "PartitionName=debug AllowGroups=ALL AllowAccounts=ALL AllowQos=ALL AllocNodes=ALL Default=YES QoS=N/A "
    "DefaultTime=NONE DisableRootJobs=NO ExclusiveUser=NO GraceTime=0 Hidden=NO MaxNodes=UNLIMITED "
    "MaxTime=1-00:00:00 MinNodes=0 LLN=NO MaxCPUsPerNode=UNLIMITED Nodes=n[1-2] PriorityJobFactor=1 "
    "PriorityTier=1 RootOnly=NO ReqResv=NO OverSubscribe=NO OverTimeLimit=NONE PreemptMode=OFF State=UP "
    "TotalCPUs=4 TotalNodes=2 SelectTypeParameters=NONE JobDefaults=(null) DefMemPerNode=UNLIMITED "
    "MaxMemPerNode=UNLIMITED TRES=cpu=4,mem=21734M,node=2,billing=4,gres/gpu=4\n"
    "PartitionName=probe_part AllowGroups=ALL AllowAccounts=lab,other AllowQos=ALL AllocNodes=ALL Default=NO "
    "QoS=normal DefaultTime=NONE DisableRootJobs=NO ExclusiveUser=NO GraceTime=0 Hidden=YES MaxNodes=1 "
    "MaxTime=00:30:00 MinNodes=1 LLN=NO MaxCPUsPerNode=1 Nodes=n1 PriorityJobFactor=1 PriorityTier=1 RootOnly=NO "
    "ReqResv=NO OverSubscribe=NO OverTimeLimit=NONE PreemptMode=OFF State=UP TotalCPUs=2 TotalNodes=1 "
    "SelectTypeParameters=NONE JobDefaults=(null) DefMemPerNode=UNLIMITED MaxMemPerNode=4000 "
    "TRES=cpu=2,mem=10867M,node=1,billing=2,gres/gpu=2\n"
)
#: ``sinfo -a -h -N -o %R|%N|%c|%m|%G|%f``: one line per node and partition.
NODES = ("debug|n1|2|10867|gpu:2|fakegpu\nprobe_part|n1|2|10867|gpu:2|fakegpu\n"
         "debug|n2|2|10867|gpu:2|fakegpu\ngpu|g1|64|515000|gpu:a100:4(S:0-1)|a100,ib\n"
         "gpu|g2|32|257000|(null)|(null)\n")


def test_partitions_with_their_limits_and_nodes(monkeypatch):
    monkeypatch.setattr(slurmctl, "run", answers({"sinfo": NODES, "scontrol": PARTITIONS}, []))
    partitions = slurmctl._partitions()
    debug, probe = partitions["debug"], partitions["probe_part"]
    assert (debug.default, debug.max_time_min, debug.max_nodes, debug.max_cpus_per_node, debug.max_mem_per_node_mb,
            debug.allow_accounts, debug.qos) == (True, 24 * 60, None, None, None, None, None)
    assert [(n.name, n.cpus, n.memory_mb, n.gpus, n.features) for n in debug.nodes] == [
        ("n1", 2, 10867, {None: 2}, {"fakegpu"}), ("n2", 2, 10867, {None: 2}, {"fakegpu"})]
    assert (probe.default, probe.max_time_min, probe.max_nodes, probe.max_cpus_per_node, probe.max_mem_per_node_mb,
            probe.allow_accounts, probe.qos) == (False, 30, 1, 1, 4000, {"lab", "other"}, "normal")
    assert [n.name for n in probe.nodes] == ["n1"] and probe.gpus_per_node == 2


def test_node_lines_of_other_partitions():
    gpu = slurmctl.parse_nodes(NODES)["gpu"]
    assert [(n.cpus, n.memory_mb, n.gpus, n.features) for n in gpu] == [
        (64, 515000, {"a100": 4}, {"a100", "ib"}), (32, 257000, {}, frozenset())]


def test_scontrol_records_keep_values_with_spaces():
    recorded = ("NodeName=n1 Arch=x86_64 CoresPerSocket=1  CPUAlloc=0 AvailableFeatures=fakegpu "
                "OS=Linux 6.18.44-fc-v1272 #1 SMP PREEMPT_DYNAMIC @0  RealMemory=10867 "
                "CfgTRES=cpu=2,mem=10867M,billing=2,gres/gpu=2 AllocTRES= CapWatts=n/a\n")
    (record,) = slurmctl.parse_records(recorded)
    assert record["OS"] == "Linux 6.18.44-fc-v1272 #1 SMP PREEMPT_DYNAMIC @0"
    assert record["CfgTRES"] == "cpu=2,mem=10867M,billing=2,gres/gpu=2" and record["AllocTRES"] == ""
    assert record["RealMemory"] == "10867" and record["CapWatts"] == "n/a"


@pytest.mark.parametrize(("text", "tres"), [
    ("cpu=4,mem=21734M,node=2,billing=4,gres/gpu=4", {"cpu": 4, "mem": 21734, "node": 2, "billing": 4, "gres/gpu": 4}),
    ("mem=16G", {"mem": 16384}), ("mem=1T", {"mem": 1024 * 1024}), ("mem=1.5G", {"mem": 1536}), ("", {}),
])
def test_tres_strings(text, tres):
    assert slurmctl.parse_tres(text) == tres


def test_associations_and_qos_from_sacctmgr():
    """``sacctmgr -n -P show assoc where user=U format=account,partition,qos,defaultqos,maxtres,maxtrespernode,
    maxwall`` and ``show qos format=name,maxtres,maxtrespernode,maxwall``."""
    associations = slurmctl.parse_associations(
        "lab||normal||||\noptb_acct|optb_part|normal,optb_qos|optb_qos|cpu=8,gres/gpu=2|cpu=4|2-00:00:00\n")
    assert associations[0] == slurmctl.Association("lab", None, frozenset({"normal"}), None,
                                                   slurmctl.Limits({}, {}, None))
    assert associations[1] == slurmctl.Association("optb_acct", "optb_part", frozenset({"normal", "optb_qos"}),
                                                   "optb_qos", slurmctl.Limits({"cpu": 8, "gres/gpu": 2},
                                                                               {"cpu": 4}, 48 * 60))
    assert slurmctl.parse_qos("normal|||\nprobeq|cpu=1,mem=4G|gres/gpu=1|00:10:00\n") == {
        "normal": slurmctl.Limits({}, {}, None),
        "probeq": slurmctl.Limits({"cpu": 1, "mem": 4096}, {"gres/gpu": 1}, 10)}


@pytest.mark.parametrize(("returncode", "stderr", "refusal"), [
    (0, "sbatch: Job 2 to start at 2026-12-07T17:56:29 using 4 processors on nodes n[1-2] in partition debug\n",
     None),
    (1, "allocation failure: Requested node configuration is not available\n",
     "Requested node configuration is not available"),
    (1, "allocation failure: Invalid feature specification\n", "Invalid feature specification"),
    (1, "sbatch: error: Batch job submission failed: Invalid account or account/partition combination specified\n",
     "Invalid account or account/partition combination specified"),
    (1, "sbatch: error: CPU count per node can not be satisfied\nsbatch: error: Batch job submission failed: "
        "Requested node configuration is not available\n", "Requested node configuration is not available"),
])
def test_the_verdict_of_sbatch_test_only(returncode, stderr, refusal):
    assert slurmctl.parse_refusal(returncode, stderr) == refusal


def test_cluster_limits_from_scontrol_show_config(monkeypatch):
    recorded = ("Configuration data as of 2026-12-07T11:00:00\nAccountingStorageType   = accounting_storage/slurmdbd\n"
                "AccountingStorageEnforce = associations,limits,qos\n"
                "MaxArraySize            = 1001\nMaxJobCount             = 50000\n")
    monkeypatch.setattr(slurmctl, "run", answer(recorded))
    monkeypatch.setattr(slurmctl, "_partitions", dict)
    slurmctl.cluster_info.cache_clear()
    try:
        info = slurmctl.cluster_info()
    finally:
        slurmctl.cluster_info.cache_clear()
    assert (info.max_array_size, info.accounting, info.enforces_limits) == (1001, True, True)
    assert info.enforce == {"associations", "limits", "qos"}
