"""A user's plugins on the real Slurm: resolved at launch on the login node, imported by the array tasks."""

from __future__ import annotations

import re
import shutil
import subprocess

from plugin_support import SOURCE, USERCONF
from slurm_helpers import sacct, wait_until_final

from jobs.run_folder import read_json

SLURM = ("launcher=slurm", "launcher.cpus_per_task=1")


def queued() -> set[str]:
    return set(subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True).stdout.split())


def test_plugins_run_as_array_tasks_beside_the_built_ins(installed, elsewhere, slurm_cluster):
    shutil.copy(SOURCE / "signum.py", elsewhere)  # Signum's source: the folder the user launches from
    done = installed.run("launch", "--config-dir", USERCONF, "sweep=toys", "problem=toy_regression", "seed=0",
                         *SLURM, "--results", "results", cwd=elsewhere)
    assert done.returncode == 0, done.stdout + done.stderr
    results = elsewhere / "results"
    sweep_dir = results / "sweeps" / re.search(r"Sweep (\S+):", done.stdout).group(1)
    views = wait_until_final(results, sweep_dir, timeout=300)
    assert {v.state for v in views} == {"completed"}, [v.status.get("error") for v in views]
    assert len(views) == 4
    recorded = {}
    for view in views:
        provenance = read_json(results / "runs" / view.run_id / "provenance.json")
        assert provenance["scheduler"]["SLURMD_NODENAME"] in ("n1", "n2")
        assert provenance["executable"] == str(installed.python)  # the user's environment, on the node
        recorded.update({p["target"]: p for p in provenance["plugins"]})
    assert recorded["signum:Signum"]["source"] == str(elsewhere)  # handed to the job by the launcher
    assert recorded["optbench_toys.signsgd:SignSGD"]["version"] == "0.3.0"
    assert set(sacct(*(v.status["job_id"] for v in views)).values()) == {"COMPLETED"}


def test_a_plugin_that_does_not_import_submits_nothing(installed, elsewhere, slurm_cluster):
    """Signum's source is not on this machine's path: refused on the login node, before sbatch."""
    before = queued()
    done = installed.run("launch", "--config-dir", USERCONF, "optimizer=signum", *SLURM, "--results", "results",
                         cwd=elsewhere)
    assert done.returncode == 2 and "signum:Signum does not import" in " ".join(done.stderr.split())
    assert not (elsewhere / "results").exists() and not queued() - before


IN_IMAGE = ("train.epochs=1", "seed=0", "logger=disabled", "container=apptainer")


def test_in_the_image_an_array_task_imports_the_images_copy_of_the_plugin(installed, elsewhere, cpu_image,
                                                                         slurm_cluster):
    done = installed.run("launch", "optimizer=signsgd", "problem=toy_regression", *IN_IMAGE,
                         f"container.image={cpu_image}", *SLURM, "--results", "results", cwd=elsewhere)
    assert done.returncode == 0, done.stdout + done.stderr
    results = elsewhere / "results"
    sweep_dir = results / "sweeps" / re.search(r"Sweep (\S+):", done.stdout).group(1)
    (view,) = wait_until_final(results, sweep_dir, timeout=300)
    assert view.state == "completed", view.status.get("error")
    provenance = read_json(results / "runs" / view.run_id / "provenance.json")
    assert provenance["container"]["running_in"] == str(cpu_image) and provenance["scheduler"]["SLURM_JOB_ID"]
    optimizer = next(p for p in provenance["plugins"] if p["kind"] == "optimizer")
    assert (optimizer["distribution"], optimizer["version"]) == ("optbench-toys", "0.3.0")
    assert optimizer["folder"].startswith("/opt/venv/")


def test_a_plugin_missing_from_the_image_submits_nothing(installed, elsewhere, cpu_image, slurm_cluster):
    """Signum imports on the login node, but the image does not carry it: the one-time check inside refuses."""
    before = queued()
    done = installed.run("launch", "--config-dir", USERCONF, "optimizer=signum", *IN_IMAGE,
                         f"container.image={cpu_image}", *SLURM, "--results", "results", cwd=elsewhere,
                         env={"PYTHONPATH": str(SOURCE)})
    assert done.returncode == 2 and "does not load inside" in " ".join(done.stderr.split()), done.stderr
    assert not (elsewhere / "results").exists() and not queued() - before
