"""Config values with shell metacharacters cannot change a Slurm or Apptainer command line.

Each dangerous value carries commands that would create a marker file (in a
folder every container binds, so a command run inside the image would leave
its marker too). A value is either refused, in one sentence with exit status 2
and no job in Slurm, or used literally; no marker may ever appear.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from components import require_slurm
from slurm.slurm_helpers import wait_until_final

from orchestrator import container as container_module
from orchestrator import slurmctl
from orchestrator.config import ConfigTree
from orchestrator.container import Container
from orchestrator.errors import UserError
from orchestrator.launchers.slurm import SlurmSettings

TINY = ("problem=quadratic_deep", "train.epochs=1", "logger=disabled", "launcher=slurm", "launcher.cpus_per_task=1")


def attack(markers: Path, name: str) -> str:
    """Text that, read by a shell, creates ``markers/<name>…`` three ways: $(…), backticks, and after a ;."""
    return f"$(touch {markers}/{name}) `touch {markers}/{name}-tick`; touch {markers}/{name}-semicolon"


def jobs_from(workdir: Path, since: float) -> list[str]:
    """Jobs submitted from ``workdir`` (queued or in accounting): each test submits from its own."""
    start = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(since - 60))
    queued = subprocess.run(["squeue", "-h", "-o", "%i|%Z"], capture_output=True, text=True, check=True).stdout
    recorded = subprocess.run(["sacct", "-n", "-P", "-X", "-S", start, "--format=JobID,WorkDir"],
                              capture_output=True, text=True, check=True).stdout
    return sorted({line.split("|")[0] for line in (queued + recorded).splitlines()
                   if line.split("|")[-1] == str(workdir)})


@pytest.fixture
def markers(tmp_path) -> Path:
    folder = tmp_path / "markers"
    folder.mkdir()
    return folder


@pytest.fixture
def workdir(tmp_path, monkeypatch) -> Path:
    """The folder the launch runs in, so that its jobs (their working directory) can be told apart."""
    require_slurm()
    slurmctl.cluster_info.cache_clear()
    folder = tmp_path / "cwd"
    folder.mkdir()
    monkeypatch.chdir(folder)
    return folder


def test_paths_and_parameters_with_shell_syntax_reach_slurm_and_apptainer_as_literal_words(
        optbench, cpu_image, tmp_path, markers, workdir):
    results = tmp_path / f"results {attack(markers, 'results')}"
    image = tmp_path / f"image {attack(markers, 'image')}" / "optbench.sif"
    image.parent.mkdir(parents=True)
    os.link(cpu_image, image)
    bind = tmp_path / f"bind {attack(markers, 'bind')}"
    bind.mkdir(parents=True)
    comment = attack(markers, "comment")

    status, out, err = optbench(*("launch", *TINY, "seed=1", "container=apptainer", f"container.image='{image}'",
                                  f"container.binds=['{markers}', '{bind}']",
                                  f"+launcher.additional_parameters.comment='{comment}'", "--results", results))
    assert status == 0, err
    (sweep_dir,) = (results / "sweeps").iterdir()
    views = wait_until_final(results, sweep_dir, timeout=300)
    assert [v.state for v in views] == ["completed"], [v.status.get("error") for v in views]
    job = views[0].status["job_id"]
    assert re.search(rf"^\s*Comment={re.escape(comment)} ?$", _scontrol_job(job), re.M)  # Slurm kept it literally

    # In the job script, every dangerous value is one quoted word: sbatch and bash read it back unchanged.
    (script,) = (sweep_dir / "slurm").glob("*_submission.sh")
    lines = script.read_text().splitlines()
    assert [shlex.split(line.removeprefix("#SBATCH ")) for line in lines if line.startswith("#SBATCH --comment")] \
        == [[f"--comment={comment}"]]
    (command,) = [shlex.split(line) for line in lines if line.startswith("srun ")]
    assert str(image) in command
    assert [command[i + 1] for i, word in enumerate(command) if word == "--bind"] == [
        str(results), str(markers), str(bind)]
    assert command[-1] == str(sweep_dir / "slurm")
    for flag in ("--output", "--error"):
        assert command[command.index(flag) + 1].startswith(f"{sweep_dir / 'slurm'}/")
    assert sorted(markers.iterdir()) == [] and not list(workdir.iterdir())


@pytest.mark.parametrize(("override", "says"), [
    ("launcher.partition='debug;{attack}'", "There is no partition 'debug;$(touch"),
    ("launcher.partition='{attack}'", "There is no partition '$(touch"),
    ("launcher.constraint='{attack}'", "which no node of partition 'debug' has"),
    ("launcher.exclude='n1;{attack}'",
     "Slurm would never run this request on partition 'debug' (slurm_allocate_resources error opening file"),
    ("launcher.exclude='n1\n{attack}'", "launcher.exclude 'n1\\n$(touch"),
    ("+launcher.additional_parameters.comment='ok\n{attack}'", "launcher.additional_parameters.comment 'ok\\n$("),
    # Out of the quotes and onto a line of its own, which the job script's shell would run:
    ('+launcher.additional_parameters.comment="x\'\n{attack}\n#"',
     "launcher.additional_parameters.comment \"x'\\n$(touch"),
    ("launcher.qos='normal\r{attack}'", "launcher.qos 'normal\\r$(touch"),
])
def test_a_value_that_cannot_be_passed_literally_is_refused_and_submits_nothing(
        optbench, results, markers, workdir, override, says):
    started = time.time()
    status, out, err = optbench("launch", *TINY, override.format(attack=attack(markers, "refused")),
                                "--results", results)
    assert status == 2, out + err
    sentence = " ".join(err.split()).removeprefix("optbench: error: ")
    assert says in sentence and sentence.endswith(".") and sentence.count(". ") == 0, sentence
    if "\n" in override or "\r" in override:
        assert "contains a line break or another control character, which cannot go into a Slurm job" in sentence
    assert not (results / "runs").exists()
    assert jobs_from(workdir, started) == []
    assert sorted(markers.iterdir()) == []


def test_a_results_folder_with_a_line_break_is_refused_before_sbatch(optbench, tmp_path, markers, workdir):
    started = time.time()
    results = tmp_path / f"results'\n{attack(markers, 'results')}\n#"  # a line of its own in #SBATCH --output
    status, out, err = optbench("launch", *TINY, "--results", results)
    assert status == 2, out + err
    sentence = " ".join(err.split())
    assert "contains a line break or another control character" in sentence and "choose a results folder" in sentence
    assert not (results / "runs").exists() and not list((results / "sweeps").glob("*/slurm/*"))
    assert jobs_from(workdir, started) == []
    assert sorted(markers.iterdir()) == []


@pytest.mark.parametrize(("parameters", "says"), [
    ({"comment --uid=0": "x"}, "which is not an sbatch option name"),
    ({"chdir=/tmp": "x"}, "which is not an sbatch option name"),
    ({"mail-type\n": "END"}, "which is not an sbatch option name"),
    ({"comment": ["a", "b"]}, "must be text, a number or true"),
])
def test_additional_parameters_that_are_not_sbatch_options_are_refused(parameters, says):
    config = {**ConfigTree().option_config("launcher", "slurm"), "additional_parameters": parameters}
    with pytest.raises(UserError, match=re.escape(says)):
        SlurmSettings.from_config(config)


def test_a_source_tree_path_with_shell_syntax_is_not_evaluated_in_the_image(cpu_image, tmp_path, markers,
                                                                            monkeypatch):
    """Apptainer evaluates ``--env`` values in a shell inside the image; the job's Python settings avoid it."""
    source = tmp_path / f"source {attack(markers, 'source')}"
    source.mkdir(parents=True)
    monkeypatch.setattr(container_module, "SOURCE_ROOT", source)
    inside = Container("apptainer", shutil.which("apptainer"), "", cpu_image, "", {}, (str(source), str(markers)),
                       nv=False, dev=True, python="python3")
    program = "import os; print(os.environ['PYTHONPATH'])"
    done = subprocess.run(["bash", "-c", f"{inside.python_command()} -c {shlex.quote(program)}"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(source)
    assert sorted(markers.iterdir()) == []


def _scontrol_job(job_id: str) -> str:
    return subprocess.run(["scontrol", "show", "job", job_id], capture_output=True, text=True, check=True).stdout
