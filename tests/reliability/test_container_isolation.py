"""A job in the image sees the folders it needs and the binds the user declared, nothing else of the host.

The command under test is the one jobs get (:func:`orchestrator.container.prepare`'s
``python_command``), run the way submitit's job script runs it: through bash, under
``srun`` on the real Slurm, in the real CPU image.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
from components import require_slurm

from jobs.run_folder import current_umask
from orchestrator.config import ConfigTree
from orchestrator.container import SOURCE_ROOT, ContainerSettings, prepare

# Runs in the image: which of the given paths it sees, what it can write, what it got from Slurm.
LOOK_AROUND = """
import json, os, sys
paths, probe = json.loads(sys.argv[1]), sys.argv[2]
def writable(folder):
    try:
        with open(os.path.join(folder, probe), "w") as handle:
            handle.write("inside")
        return True
    except OSError:
        return False
umask = next(int(line.split()[1], 8) for line in open("/proc/self/status") if line.startswith("Umask:"))
print(json.dumps({
    "sees": {name: os.path.exists(path) for name, path in paths.items()},
    "declared": open(os.path.join(paths["declared"], "file")).read(),
    "writes": {name: writable(folder) for name, folder in
               (("results", paths["results"]), ("home", os.path.expanduser("~")), ("tmp", "/tmp"))},
    "cwd": os.getcwd(),
    "umask": umask,
    "env": {k: os.environ.get(k) for k in ("SLURM_JOB_ID", "SLURM_PROCID", "CUDA_VISIBLE_DEVICES",
                                           "APPTAINER_CONTAINER", "PYTHONPATH", "PYTHONSAFEPATH")},
}))
"""

# Runs in the image: W&B's login files, as the job would find them, and whether they can be changed.
READ_LOGIN = """
import json, os, sys
found = {}
for path in sys.argv[1:]:
    try:
        text = open(path).read()
    except OSError as error:
        found[path] = {"error": type(error).__name__}
        continue
    try:
        open(path, "a").close()
        found[path] = {"text": text, "writable": True}
    except OSError:
        found[path] = {"text": text, "writable": False}
print(json.dumps(found))
"""


def apptainer(image: Path, **settings: Any) -> ContainerSettings:
    """``conf/container/apptainer.yaml``'s settings with ``image`` and the given ``settings``."""
    return ContainerSettings.from_config({**ConfigTree().option_config("container", "apptainer"), "image": str(image),
                                          **settings})


@pytest.fixture
def host_side(tmp_path):
    """A file in the host's home, one in its /tmp, one in the working directory: none is the job's business.

    Also the name of the file the job writes in its home and /tmp, which must not reach the host's.
    """
    token = uuid.uuid4().hex
    files = {"home": Path.home() / f".optbench-isolation-{token}", "tmp": Path("/tmp") / f"optbench-isolation-{token}",
             "cwd": tmp_path / "cwd" / "notes.txt"}
    files["cwd"].parent.mkdir()
    for file in files.values():
        file.write_text(token)
    probe = f"optbench-written-inside-{token}"
    yield files, probe
    for file in [*files.values(), Path.home() / probe, Path("/tmp") / probe]:
        file.unlink(missing_ok=True)


def test_a_job_sees_its_folders_and_declared_binds_but_not_the_hosts_home_tmp_or_cwd(
        cpu_image, tmp_path, host_side, monkeypatch):
    require_slurm()
    host_files, probe = host_side
    results, data, declared = (tmp_path / name for name in ("results", "data", "declared"))
    for folder in (results, data, declared):
        folder.mkdir()
    (data / "train.bin").write_bytes(b"\0")
    (declared / "file").write_text("declared")
    monkeypatch.chdir(host_files["cwd"].parent)
    container = prepare(apptainer(cpu_image, binds=[str(declared)]), [results, data], gpus=False)
    paths = {**{f"host {name}": str(path) for name, path in host_files.items()}, "source tree": str(SOURCE_ROOT),
             "results": str(results), "data file": str(data / "train.bin"), "declared": str(declared)}

    arguments = shlex.join(["-c", LOOK_AROUND, json.dumps(paths), probe])
    command = f"{container.python_command()} {arguments}"  # as submitit's job script appends its own
    done = subprocess.run(["srun", "--nodes=1", "--ntasks=1", "--gpus-per-node=1", "--time=5", "bash", "-c", command],
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    inside = json.loads(done.stdout.strip().splitlines()[-1])

    assert inside["sees"] == {"host home": False, "host tmp": False, "host cwd": False, "source tree": False,
                              "results": True, "data file": True, "declared": True}
    assert inside["declared"] == "declared"
    assert (results / probe).read_text() == "inside"  # the results folder is the host's, writable
    assert inside["writes"] == {"results": True, "home": True, "tmp": True}  # W&B and torch may keep caches
    assert inside["cwd"] == str(Path.home())  # the contained, empty home: not the host's working directory
    assert not (Path.home() / probe).exists() and not (Path("/tmp") / probe).exists()
    env = inside["env"]
    assert env["SLURM_JOB_ID"] and env["SLURM_PROCID"] == "0"  # Slurm's environment passes through
    assert env["CUDA_VISIBLE_DEVICES"] == "0"  # and so does the GPU Slurm assigned
    assert env["APPTAINER_CONTAINER"] == str(cpu_image)
    assert env["PYTHONPATH"] == "" and env["PYTHONSAFEPATH"] == "1"
    assert inside["umask"] == current_umask()  # Slurm and Apptainer pass the submitter's umask on


def test_the_source_tree_is_bound_in_development_mode_only(cpu_image, tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    for dev, expected in ((True, True), (False, False)):
        container = prepare(apptainer(cpu_image, dev=dev), [results], gpus=False)
        done = subprocess.run([*container.exec_args(), container.python, "-c",
                               f"import os; print(os.path.isfile({str(SOURCE_ROOT / 'jobs' / 'entry.py')!r}))"],
                              capture_output=True, text=True, timeout=120)
        assert done.stdout.split() == [str(expected)], done.stderr


def test_wandb_login_files_are_bound_read_only_when_online_and_not_otherwise(cpu_image, tmp_path, monkeypatch):
    token = uuid.uuid4().hex
    netrc, config = tmp_path / "login" / "netrc", tmp_path / "wandb-config"
    netrc.parent.mkdir()
    config.mkdir()
    netrc.write_text(f"machine api.wandb.ai\n  login user\n  password {token}\n")
    (config / "settings").write_text("[default]\nbase_url = https://wandb.example.org\n")
    monkeypatch.setenv("NETRC", str(netrc))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(config))
    results = tmp_path / "results"
    results.mkdir()
    files = [str(netrc), str(config / "settings")]

    def inside(online: bool) -> dict:
        container = prepare(apptainer(cpu_image), [results], gpus=False, online=online)
        done = subprocess.run([*container.exec_args(), container.python, "-c", READ_LOGIN, *files],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout.strip().splitlines()[-1])

    online = inside(True)
    assert online[str(netrc)] == {"text": netrc.read_text(), "writable": False}
    assert online[str(config / "settings")]["writable"] is False
    assert inside(False) == {path: {"error": "FileNotFoundError"} for path in files}
    monkeypatch.setenv("WANDB_API_KEY", token)  # the key is in the environment: the netrc file is not needed
    with_key = inside(True)
    assert with_key[str(netrc)] == {"error": "FileNotFoundError"} and "text" in with_key[str(config / "settings")]
