"""RunPack: the runs of one scheduler task in one process; skip, go on after failures, requeue at preemption."""

from __future__ import annotations

import json
import os
import pickle
import signal
import time

import pytest
import submitit
from jobs_support import numbers, spec_for

from jobs.entry import RunPack, RunsFailed, run
from jobs.run_folder import CHECKPOINT, PROVENANCE, RunFolder
from jobs.sinks import RunFolderSink
from jobs.spec import run_id

pytestmark = pytest.mark.integration  # runs real jobs

TINY = ("problem=rosenbrock", "problem.steps_per_epoch=5", "train.epochs=2", "optimizer.lr=0.0001")
DIGITS = ("problem=digits_mlp", "problem.hidden=16", "problem.dropout=0.3", "train.log_every=1")


def item(results, spec) -> dict:
    return {"spec": spec, "run_dir": str(results / run_id(spec))}


def test_a_pack_skips_done_runs_goes_on_after_a_failure_and_names_it(tmp_path):
    done, broken, fresh = (spec_for(*TINY, f"seed={seed}") for seed in range(3))
    broken["problem"]["name"] = "no_such_problem"  # bypasses validation on purpose
    pack = [item(tmp_path, spec) for spec in (done, broken, fresh)]
    run(done, pack[0]["run_dir"])
    done_status = RunFolder(pack[0]["run_dir"]).status()

    with pytest.raises(RunsFailed) as failure:
        RunPack()(pack)

    assert run_id(broken) in str(failure.value) and run_id(fresh) not in str(failure.value)
    assert RunFolder(pack[0]["run_dir"]).status() == done_status, "a completed run is not touched"
    failed = RunFolder(pack[1]["run_dir"]).status()
    assert failed["state"] == "failed" and "no_such_problem" in failed["error"]
    assert RunFolder(pack[2]["run_dir"]).state == "completed"


def test_preemption_hands_the_run_back_and_the_requeued_pack_resumes_it(tmp_path, monkeypatch):
    first, second = spec_for(*DIGITS, "train.epochs=3"), spec_for(*TINY)
    pack = [item(tmp_path / "results", first), item(tmp_path / "results", second)]
    job = RunPack()
    handed_back = []
    log_step = RunFolderSink.log_step

    def preempt_mid_epoch_1(sink, record):
        log_step(sink, record)
        if record["step"] == 25 and not handed_back:  # as submitit's SIGUSR2 handler does on rank 0
            handed_back.append(job.checkpoint(pack))
            raise SystemExit(-1)

    monkeypatch.setattr(RunFolderSink, "log_step", preempt_mid_epoch_1)
    with pytest.raises(SystemExit):
        job(pack)

    status = RunFolder(pack[0]["run_dir"]).status()
    assert status["state"] == "submitted" and status["requeued"] is True and status["error"] is None
    assert (RunFolder(pack[0]["run_dir"]).path(CHECKPOINT)).is_file()
    assert RunFolder(pack[1]["run_dir"]).state == "pending", "the pack stopped where it was"
    (delayed,) = handed_back
    assert isinstance(delayed, submitit.helpers.DelayedSubmission) and delayed.args == (pack,)

    requeued = pickle.loads(pickle.dumps(delayed))  # submitit stores it, the requeued task loads it
    requeued.function(*requeued.args)

    status = RunFolder(pack[0]["run_dir"]).status()
    assert status["state"] == "completed" and status["attempts"] == 2 and status["resumed_from_epoch"] == 1
    assert status["requeued"] is False
    assert RunFolder(pack[1]["run_dir"]).state == "completed"
    run(first, tmp_path / "unbroken")
    assert numbers(pack[0]["run_dir"]) == numbers(tmp_path / "unbroken")


def test_submitit_preempts_requeues_and_the_run_resumes_bitwise(tmp_path):
    """The real path: a submitit job, SIGUSR2, checkpoint(), requeue, resume (a local job stands for Slurm's)."""
    spec = spec_for(*DIGITS, "train.epochs=40")
    pack = [item(tmp_path / "results", spec)]
    folder = RunFolder(pack[0]["run_dir"])
    executor = submitit.LocalExecutor(folder=tmp_path / "submitit")
    executor.update_parameters(timeout_min=15)  # long enough to count as preempted, not timed out
    job = executor.submit(RunPack({"threads": 1}), pack)

    deadline = time.monotonic() + 60
    while folder.status().get("progress", {}).get("epoch", 0) < 2:
        assert time.monotonic() < deadline and not job.done(), job.stderr()
        time.sleep(0.02)
    task = json.loads(folder.path(PROVENANCE).read_text())["pid"]
    os.kill(task, signal.SIGUSR2)  # what Slurm sends the task at preemption
    job.result()

    status = folder.status()
    assert status["state"] == "completed" and status["attempts"] == 2 and status["resumed_from_epoch"] >= 1
    assert "Requeued" in job.stderr() or "Requeued" in job.stdout()
    run(spec, tmp_path / "unbroken", {"threads": 1})
    assert numbers(folder.root) == numbers(tmp_path / "unbroken")
