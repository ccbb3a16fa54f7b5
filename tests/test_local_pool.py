"""The local launcher's warm workers, with real processes: each run's fault stays its own.

One launch of six runs on two workers, each run an optimizer plugin (a
source-folder plugin, so the workers also get the sweep's plugin paths) that
misbehaves at its 8th step (epoch 1) as its ``fault`` says: ``hang`` (past
``launcher.time_min``), ``kill`` (SIGKILLs its own worker), ``raise``,
``diverge`` (a huge learning rate), ``print`` (to its stdout and stderr) or
``none``. Then a relaunch, Ctrl-C, and the cold path (``launcher.warm=false``).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jobs.run_folder import read_jsonl
from orchestrator.cli import main
from orchestrator.ledger import JOBS_FILE, Ledger
from orchestrator.reconcile import job_logs
from orchestrator.store import ResultsStore

pytestmark = pytest.mark.integration  # runs real jobs

FAULTY = '''
import os
import signal
import sys
import time
from typing import Literal

import torch


class Faulty(torch.optim.SGD):
    """SGD that misbehaves at its 8th step, as ``fault`` says."""

    def __init__(self, params, lr: float = 1e-4,
                 fault: Literal["none", "print", "raise", "diverge", "kill", "hang"] = "none"):
        super().__init__(params, lr=lr)
        self.fault, self.steps = fault, 0

    def step(self, closure=None):
        self.steps += 1
        if self.steps == 8:
            if self.fault == "print":
                print("FAULTY-STDOUT", flush=True)
                print("FAULTY-STDERR", file=sys.stderr, flush=True)
            elif self.fault == "raise":
                raise RuntimeError("Faulty raised on purpose")
            elif self.fault == "diverge":
                for group in self.param_groups:
                    group["lr"] = 1e30
            elif self.fault == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            elif self.fault == "hang":
                time.sleep(600)
        return super().step(closure)
'''
FAULTS = ("hang", "kill", "none", "raise", "diverge", "print")  # the grid's order: the hang and the kill go first
RUN = ("--config-dir", "conf", "optimizer=faulty", "problem=rosenbrock", "problem.steps_per_epoch=5", "train.epochs=4",
       "logger=disabled", "launcher.max_parallel=2", "launcher.threads_per_run=1")
TIME_MIN = 0.1  # 6 s: the hang's limit, counted from when its worker began it


@pytest.fixture
def plugin_folder(tmp_path, monkeypatch) -> Path:
    """The folder the user launches from, holding the plugin's source and its config file."""
    (tmp_path / "conf" / "optimizer").mkdir(parents=True)
    (tmp_path / "conf" / "optimizer" / "faulty.yaml").write_text(
        "name: faulty\ntarget: faulty:Faulty\nlr: 0.0001\nfault: none\n")
    (tmp_path / "faulty.py").write_text(FAULTY)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))  # main() adds this folder; the next test must not see it
    return tmp_path


def by_fault(store: ResultsStore) -> dict[str, dict]:
    """Each run's status.json, by its fault (runs that have not begun yet left out)."""
    found = {}
    for run in store.runs_dir.iterdir():
        if not (run / "spec.yaml").is_file():
            continue
        spec = (run / "spec.yaml").read_text()
        fault = next(line.split(":")[1].strip() for line in spec.splitlines() if line.strip().startswith("fault:"))
        found[fault] = {**store.run_folder(run.name).status(), "run_id": run.name}
    return found


def alive(pid: int) -> bool:
    """The process exists and is no zombie (an orphan's zombie waits for whoever reaps it here)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def test_each_fault_stays_with_its_run_and_the_workers_are_reused_and_replaced(plugin_folder, results, capsys):
    started = time.monotonic()
    status = main(["launch", *RUN, f"optimizer.fault={','.join(FAULTS)}", f"launcher.time_min={TIME_MIN}",
                   "--results", str(results)])
    out = " ".join(capsys.readouterr().out.split())
    assert status == 1 and "Finished: 2 completed, 1 diverged, 3 failed." in out, out

    store = ResultsStore(results)
    runs = by_fault(store)
    assert {fault: runs[fault]["state"] for fault in FAULTS} == {
        "hang": "failed", "kill": "failed", "none": "completed", "raise": "failed", "diverge": "diverged",
        "print": "completed"}
    (sweep_dir,) = store.sweeps_dir.iterdir()
    assignments, unresolved = Ledger(sweep_dir).read()
    assert not unresolved and {a.run_id for a in assignments.values()} == {r["run_id"] for r in runs.values()}
    for fault, status_ in runs.items():
        job = assignments[status_["run_id"]]
        assert status_["job_id"] == job.job_id == f"{status_['pid']}-{job.job_id.split('-')[1]}", fault
        assert all(log.is_file() for log in job_logs(job)), fault

    # The kill: its worker died, the reason names it, its signal and the log; a new worker took over.
    kill = runs["kill"]
    assert f"worker {kill['pid']} was killed by SIGKILL during job {kill['job_id']}; see " in kill["error"]
    assert kill["error"].endswith(f"{kill['job_id']}_0_log.err.")
    # The hang: killed at the limit, which the reason names.
    hang = runs["hang"]
    assert hang["error"] == (f"job {hang['job_id']} ran past launcher.time_min={TIME_MIN:g} minutes and was killed; "
                             f"see {job_logs(assignments[hang['run_id']])[1]}.")
    # The raise: jobs.entry's traceback tail in the status, the whole traceback in its log; its worker went on.
    assert "RuntimeError: Faulty raised on purpose" in runs["raise"]["error"]
    raised_log = job_logs(assignments[runs["raise"]["run_id"]])[1].read_text()
    assert "Traceback" in raised_log and "Faulty raised on purpose" in raised_log
    # The four runs after the kill ran in the workers left: reused, one run after another in one process.
    later = [runs[fault]["pid"] for fault in ("none", "raise", "diverge", "print")]
    assert len(set(later)) < len(later), "a worker ran several runs"
    assert kill["pid"] not in later and hang["pid"] not in later, "dead workers took no more runs"
    assert not any(alive(pid) for pid in {*later, kill["pid"], hang["pid"]}), "no worker outlives the launch"
    # Each run's output is in its own logs, and in no other run's.
    printed = assignments[runs["print"]["run_id"]]
    out_log, err_log = job_logs(printed)
    assert "FAULTY-STDOUT" in out_log.read_text() and "FAULTY-STDERR" in err_log.read_text()
    others = [log for r in runs.values() if r["run_id"] != printed.run_id for log in job_logs(assignments[r["run_id"]])]
    assert not any("FAULTY" in log.read_text() for log in others)
    assert time.monotonic() - started < 40

    # optbench logs shows a run's own log.
    code, shown = main(["logs", runs["raise"]["run_id"], "--results", str(results)]), capsys.readouterr().out
    assert code == 0 and "Faulty raised on purpose" in shown and "FAULTY-STDOUT" not in shown

    # A relaunch (another sweep holding four of these runs) runs only the one not done: the raise.
    intents = len([r for r in read_jsonl(sweep_dir / JOBS_FILE) if r["event"] == "intent"])
    status = main(["launch", *RUN, "optimizer.fault=none,raise,diverge,print", "--results", str(results)])
    out = " ".join(capsys.readouterr().out.split())
    assert status == 1 and "3 already done, 0 queued or running, 1 to start" in out and "Finished: 1 failed." in out
    assert by_fault(store)["raise"]["attempts"] == 2
    assert {k: v["updated"] for k, v in by_fault(store).items() if k != "raise"} == {
        k: v["updated"] for k, v in runs.items() if k != "raise"}, "done runs were not touched"
    assert len([r for r in read_jsonl(sweep_dir / JOBS_FILE) if r["event"] == "intent"]) == intents


def launch_until_the_hang_runs(results: Path) -> tuple[subprocess.Popen, dict]:
    """``optbench launch`` of a hang and a none in another process, once the none is done and the hang runs."""
    launcher = subprocess.Popen([sys.executable, "-m", "orchestrator.cli", "launch", *RUN,
                                 "optimizer.fault=hang,none", "--results", str(results)],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    store = ResultsStore(results)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and launcher.poll() is None:
        runs = by_fault(store) if store.runs_dir.is_dir() else {}
        if runs.get("hang", {}).get("state") == "running" and runs.get("none", {}).get("state") == "completed":
            return launcher, runs
        time.sleep(0.1)
    pytest.fail(f"the hang never ran: {launcher.communicate(timeout=30)[0]}")


def test_ctrl_c_cancels_the_runs_in_progress_and_ends_the_workers(plugin_folder, results):
    launcher, runs = launch_until_the_hang_runs(results)
    launcher.send_signal(signal.SIGINT)
    output, _ = launcher.communicate(timeout=30)

    assert launcher.returncode == 130 and "running jobs were cancelled" in output, output
    after = by_fault(ResultsStore(results))
    assert after["hang"]["state"] == "cancelled" and after["hang"]["error"] == "cancelled by the user (Ctrl-C)"
    assert after["none"]["state"] == "completed"
    assert not alive(runs["hang"]["pid"]) and not alive(runs["none"]["pid"])


def test_a_worker_whose_launcher_is_killed_ends_its_run_at_once(plugin_folder, results):
    launcher, runs = launch_until_the_hang_runs(results)
    launcher.kill()
    launcher.communicate(timeout=30)

    deadline = time.monotonic() + 10
    while alive(runs["hang"]["pid"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(runs["hang"]["pid"]), "no orphan trains on"
    assert by_fault(ResultsStore(results))["hang"]["state"] == "running"  # as a killed launcher leaves it: rerun


def test_the_cold_path_starts_a_process_per_run(plugin_folder, results, capsys):
    status = main(["launch", *RUN, "optimizer.fault=none,print", "launcher.warm=false", "--results", str(results)])
    assert status == 0 and "Finished: 2 completed." in " ".join(capsys.readouterr().out.split())
    runs = by_fault(ResultsStore(results))
    assert runs["none"]["pid"] != runs["print"]["pid"]
    (sweep_dir,) = ResultsStore(results).sweeps_dir.iterdir()
    assignment = Ledger(sweep_dir).read()[0][runs["print"]["run_id"]]
    assert assignment.job_id == runs["print"]["job_id"] and "-" not in assignment.job_id  # submitit's job id
    assert "FAULTY-STDOUT" in job_logs(assignment)[0].read_text()
