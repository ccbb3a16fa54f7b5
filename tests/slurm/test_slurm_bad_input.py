"""A request the cluster cannot serve is one sentence before anything is submitted."""

from __future__ import annotations

import subprocess

import pytest

TINY = ("problem=rosenbrock", "train.epochs=1", "logger=disabled")


def _queued_jobs() -> set[str]:
    return set(subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True, check=True).stdout.split())


@pytest.mark.parametrize(("override", "expected"), [
    ("launcher.partition=gpu_h100", "There is no partition 'gpu_h100'"),
    ("launcher.account=physics", "You cannot charge account 'physics'"),
    ("launcher.qos=ultra", "There is no QOS 'ultra'"),
    ("launcher.gpus_per_node=3", "have at most 2 GPUs"),
    ("launcher.nodes=3", "has 2 nodes"),
    ("launcher.time_min=2000", "exceeds partition 'debug''s limit of 1440 minutes"),
    ("launcher.runs_per_job=0", "launcher.runs_per_job must be >= 1 (got 0)."),
    ("launcher.partiton=debug", "Cannot set launcher.partiton (conf/launcher/ lists its keys)"),
])
def test_unservable_request_is_one_sentence_and_submits_nothing(launch, results, override, expected):
    before = _queued_jobs()
    status, out, err, sweep_dir = launch(*TINY, override)
    assert status == 2, out
    assert expected in " ".join(err.split()) and err.startswith("optbench: error:")
    assert err.strip().endswith(".") and err.count(". ") == 0  # one sentence
    assert sweep_dir is None and not (results / "runs").exists()
    assert not _queued_jobs() - before


def test_a_known_account_goes_through(launch, results):
    status, out, err, sweep_dir = launch(*TINY, "launcher.account=other", "--dry-run")
    assert status == 0 and "would start 1 of 1 runs" in out


def test_unreachable_slurm_is_one_sentence(launch, results, monkeypatch, tmp_path):
    conf = tmp_path / "slurm.conf"
    conf.write_text("ClusterName=nowhere\nSlurmctldHost=localhost(127.0.0.1)\nSlurmctldPort=6999\n"
                    "AuthType=auth/munge\n")
    monkeypatch.setenv("SLURM_CONF", str(conf))
    status, _, err, sweep_dir = launch(*TINY)
    assert status == 2 and "Slurm is not reachable" in err and "make cluster-up" in err
    assert sweep_dir is None
