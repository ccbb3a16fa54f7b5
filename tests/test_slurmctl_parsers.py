"""Slurm's output as optbench reads it, on text recorded from sacct, squeue, sinfo and scontrol (no cluster needed)."""

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


@pytest.mark.parametrize(("gres", "gpus"), [
    ("gpu:2", 2), ("gpu:a100:4(S:0-1)", 4), ("(null)", 0), ("", 0), ("gpu:tesla:1,gpu:a100:2", 2),
    ("shard:8,gpu:1", 1),
])
def test_gpus_per_node_from_gres(gres, gpus):
    assert slurmctl.gpu_count(gres) == gpus


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
    return lambda *command, check=True: subprocess.CompletedProcess(command, 0, stdout, "")


def test_sacct_states_with_reasons_ranges_and_nodes(monkeypatch):
    """One sacct line per task or pending range; "CANCELLED by 1000" is a state with its reason."""
    recorded = ("41_0|COMPLETED|n1|00:00:07|0:0\n"
                "41_1|CANCELLED by 1000|n2|00:00:03|0:15\n"
                "41_[2-4%2]|PENDING|None assigned|00:00:00|0:0\n"
                "42|RUNNING|n1|00:01:10|0:0\n"
                "43|OUT_OF_MEMORY|n2|00:00:11|0:125\n")
    monkeypatch.setattr(slurmctl, "run", answer(recorded))
    monkeypatch.setattr(slurmctl, "cluster_info", lambda: slurmctl.ClusterInfo(1001, True, {}))
    states = slurmctl.job_states(["41_0", "41_1", "41_3", "42", "43", "44"])
    assert {k: (v.state, v.node, v.elapsed) for k, v in states.items()} == {
        "41_0": ("COMPLETED", "n1", "00:00:07"), "41_1": ("CANCELLED", "n2", "00:00:03"),
        "41_3": ("PENDING", "", "00:00:00"), "42": ("RUNNING", "n1", "00:01:10"),
        "43": ("OUT_OF_MEMORY", "n2", "00:00:11"),
    }  # 44: Slurm no longer knows it
    assert states["41_1"].exit_code == "0:15"


def test_squeue_is_asked_when_accounting_is_off(monkeypatch):
    recorded = "41_0|RUNNING|n1|0:05\n41_[1-3%2]|PENDING|(null)|0:00\n"
    asked = []

    def run(*command, check=True):
        asked.append(command[0])
        return subprocess.CompletedProcess(command, 0, recorded, "")

    monkeypatch.setattr(slurmctl, "run", run)
    monkeypatch.setattr(slurmctl, "cluster_info", lambda: slurmctl.ClusterInfo(1001, False, {}))
    states = slurmctl.job_states(["41_0", "41_2"])
    assert asked == ["squeue"]
    assert {k: (v.state, v.node) for k, v in states.items()} == {"41_0": ("RUNNING", "n1"), "41_2": ("PENDING", "")}


def test_partitions_from_sinfo_merge_node_configurations(monkeypatch):
    """sinfo prints one line per distinct node configuration of a partition; the default one has a star."""
    recorded = "debug*|1-00:00:00|2|gpu:2|up\ngpu|infinite|4|gpu:a100:4(S:0-1)|up\ngpu|infinite|2|(null)|up\n"
    monkeypatch.setattr(slurmctl, "run", answer(recorded))
    partitions = slurmctl._partitions()
    assert partitions["debug"] == slurmctl.Partition("debug", True, 24 * 60, 2, 2, "up")
    assert partitions["gpu"] == slurmctl.Partition("gpu", False, None, 6, 4, "up")


def test_cluster_limits_from_scontrol_show_config(monkeypatch):
    recorded = ("Configuration data as of 2026-12-07T11:00:00\nAccountingStorageType   = accounting_storage/slurmdbd\n"
                "MaxArraySize            = 1001\nMaxJobCount             = 50000\n")
    monkeypatch.setattr(slurmctl, "run", answer(recorded))
    monkeypatch.setattr(slurmctl, "_partitions", dict)
    slurmctl.cluster_info.cache_clear()
    try:
        info = slurmctl.cluster_info()
    finally:
        slurmctl.cluster_info.cache_clear()
    assert (info.max_array_size, info.accounting) == (1001, True)
