"""Plugins inside the real CPU image: carried by it (image build --plugin) or bound from source (dev mode)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from plugin_support import SOURCE, USERCONF

from jobs.run_folder import read_json


def labels(image: Path) -> dict[str, str]:
    out = subprocess.run(["apptainer", "inspect", "--json", "--labels", str(image)],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)["data"]["attributes"]["labels"]


def test_a_plugin_the_image_carries_runs_inside_and_reruns_identically(installed, cpu_image, elsewhere):
    assert labels(cpu_image)["plugin.optbench-toys.version"] == "0.3.0"  # optbench image build --plugin
    done = installed.run("launch", "optimizer=signsgd,sgd", "problem=toy_regression", "train.epochs=2", "seed=0",
                         "logger=disabled", "container=apptainer", f"container.image={cpu_image}",
                         "--results", "results", cwd=elsewhere)
    assert done.returncode == 0 and "Finished: 2 completed." in done.stdout, done.stdout + done.stderr
    plugins_of = {}
    for folder in (elsewhere / "results" / "runs").iterdir():
        provenance = read_json(folder / "provenance.json")
        assert provenance["container"]["running_in"] == str(cpu_image)
        assert provenance["executable"] == "/opt/venv/bin/python3"
        plugins_of[folder.name] = {plugin["kind"]: plugin for plugin in provenance["plugins"]}
    (signsgd_run,) = [run for run, plugins in plugins_of.items() if "optimizer" in plugins]
    assert all(set(plugins) == {"problem"} for run, plugins in plugins_of.items() if run != signsgd_run)
    toys, problem = plugins_of[signsgd_run]["optimizer"], plugins_of[signsgd_run]["problem"]
    assert (toys["distribution"], toys["version"], toys["editable"]) == ("optbench-toys", "0.3.0", False)
    assert toys["folder"].startswith("/opt/venv/lib/")  # the image's copy, found by the job inside it
    assert problem["code_hash"] == toys["code_hash"]  # one package, one hash
    rerun = installed.run("rerun", signsgd_run, "--results", "results", cwd=elsewhere)
    assert rerun.returncode == 0 and "identical" in rerun.stdout, rerun.stdout + rerun.stderr


def test_a_plugin_the_image_lacks_is_refused_before_anything_is_written(installed, cpu_image, elsewhere):
    done = installed.run("launch", "--config-dir", USERCONF, "optimizer=signum", "container=apptainer",
                         f"container.image={cpu_image}", "--results", "results", cwd=elsewhere,
                         env={"PYTHONPATH": str(SOURCE)})
    sentence = " ".join(done.stderr.split())
    assert done.returncode == 2, done.stdout + done.stderr
    assert "The optimizer signum (signum:Signum) does not load inside" in sentence
    assert "optbench image build NAME --plugin PATH_OR_REQUIREMENT" in sentence and "container.dev=true" in sentence
    assert not (elsewhere / "results").exists()


def test_dev_mode_binds_the_plugins_source_folder(optbench, cpu_image, tmp_path, monkeypatch):
    """container.dev=true: this tree and Signum's source folder, bound; the job imports both from the host."""
    source = tmp_path / "src"
    source.mkdir()
    shutil.copy(SOURCE / "signum.py", source)
    monkeypatch.syspath_prepend(str(source))
    results = tmp_path / "results"
    run = ("--config-dir", USERCONF, "optimizer=signum", "problem=quadratic", "train.epochs=1", "logger=disabled",
           "container=apptainer", f"container.image={cpu_image}", "container.dev=true", "--results", results)
    status, out, err = optbench("launch", *run)
    assert status == 0 and "1 completed" in out, out + err
    (folder,) = (results / "runs").iterdir()
    provenance = read_json(folder / "provenance.json")
    assert provenance["container"]["running_in"] == str(cpu_image)
    (signum,) = provenance["plugins"]
    assert signum["source"] == str(source) and signum["distribution"] is None
    assert f"--bind {source} " in provenance["container"]["command"]
    assert provenance["container"]["plugin_paths"] == [str(source)]

    status, out, err = optbench("rerun", folder.name, "--results", results)
    assert status == 0 and "identical" in out, out + err
