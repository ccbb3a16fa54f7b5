"""The image definitions in containers/ and what ``optbench image build`` stages for them (no build here).

Building the GPU image downloads several GB from PyPI (``make image-gpu``), so the suite checks what decides
whether it can build at all: no definition needs Docker Hub, every ``%files`` source is staged, and the torch
the GPU image installs is the version the CPU image carries.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from orchestrator import image

DEFINITIONS = image.definitions()


def sections(text: str) -> dict[str, list[str]]:
    """A definition's ``%section`` bodies as their stripped, non-empty lines; the header under ``header``."""
    found: dict[str, list[str]] = {"header": []}
    current = "header"
    for line in text.splitlines():
        if line.startswith("%"):
            current = line[1:].split()[0]
            found[current] = []
        elif line.strip() and not line.lstrip().startswith("#"):
            found[current].append(line.strip())
    return found


def test_both_images_are_defined():
    assert DEFINITIONS == ["cpu", "gpu"]


@pytest.mark.parametrize("name", DEFINITIONS)
def test_every_image_bootstraps_debian_from_its_mirror(name):
    """Docker Hub cannot be reached from here nor from many clusters' build nodes: Debian's mirror and PyPI only."""
    header = sections((image.CONTAINERS / f"optbench-{name}.def").read_text())["header"]
    fields = dict(line.split(":", 1) for line in header)
    assert fields["Bootstrap"].strip() == "debootstrap"
    assert fields["MirrorURL"].strip() == "http://deb.debian.org/debian"
    assert "From" not in fields


def test_the_images_differ_only_in_where_torch_comes_from():
    """Everything but torch's source (and the texts that say which image it is) is shared."""
    cpu, gpu = (sections((image.CONTAINERS / f"optbench-{name}.def").read_text()) for name in ("cpu", "gpu"))
    assert cpu["header"] == gpu["header"]
    assert [line for line in cpu["files"] if not line.startswith("wheels ")] == gpu["files"]
    assert [line.replace("OPTBENCH_TORCH=cpu", "OPTBENCH_TORCH=cuda") for line in cpu["post"]] == gpu["post"]
    assert cpu["environment"] == gpu["environment"] and cpu["startscript"] == gpu["startscript"]


@pytest.mark.parametrize("name", DEFINITIONS)
def test_staging_provides_every_file_the_definition_takes(name, tmp_path):
    definition = image.CONTAINERS / f"optbench-{name}.def"
    wheel = None
    if name == "cpu":  # a stand-in: staging links the wheel file and reads only its name
        wheel = tmp_path / "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl"
        wheel.write_bytes(b"")
    context = tmp_path / "context"
    context.mkdir()
    image._stage(context, definition, name, wheel)
    for line in sections(definition.read_text())["files"]:
        source = line.split()[0]
        assert (context / source).exists(), f"%files takes {source}, which staging did not provide"
    assert (context / "src" / "pyproject.toml").is_file()
    record = json.loads((context / "build.json").read_text())
    assert record["image"] == name
    host_torch = metadata.version("torch").split("+")[0]
    assert record["torch"] == ("2.13.0+cpu" if name == "cpu" else host_torch)


def run_install_script(tmp_path: Path, torch_kind: str, wheel: str | None = None):
    """containers/install-optbench.sh on a stage under tmp_path, with pip replaced by a logger.

    The interpreter is this test's, so the torch it finds is this machine's CPU build; every ``-m pip`` call is
    written to a log instead of run. Returns the finished process, the pip calls and the labels it wrote.
    """
    stage = tmp_path / "stage"
    (stage / "src").mkdir(parents=True)
    (stage / "build.json").write_text(json.dumps({"image": "test", "commit": None, "dirty": False,
                                                  "torch": "9.8.7"}))
    if wheel:
        (stage / "wheels").mkdir()
        (stage / "wheels" / wheel).write_bytes(b"")
    calls = tmp_path / "pip-calls"
    python = tmp_path / "python"
    python.write_text(f'#!/bin/sh\nif [ "$1" = -m ] && [ "$2" = pip ]; then echo "$*" >> {calls}; exit 0; fi\n'
                      f'exec {sys.executable} "$@"\n')
    python.chmod(0o755)
    labels = tmp_path / "labels"
    env = {**os.environ, "OPTBENCH_PYTHON": str(python), "OPTBENCH_STAGE": str(stage), "OPTBENCH_TORCH": torch_kind,
           "APPTAINER_LABELS": str(labels)}
    done = subprocess.run(["sh", str(image.CONTAINERS / image.INSTALL_SCRIPT)], env=env, capture_output=True,
                          text=True)
    pip_calls = calls.read_text().splitlines() if calls.exists() else []
    return done, pip_calls, labels.read_text() if labels.exists() else ""


def test_without_a_staged_wheel_torch_comes_from_the_index_at_the_recorded_version(tmp_path):
    done, pip_calls, labels = run_install_script(tmp_path, "cpu")
    assert done.returncode == 0, done.stderr
    assert pip_calls[0].endswith(" torch==9.8.7") and pip_calls[1].endswith(str(tmp_path / "stage" / "src"))
    assert f"torch.version {metadata.version('torch')}" in labels
    assert not (tmp_path / "stage" / "src").exists()  # the staged sources are not left in the image


def test_a_staged_wheel_is_installed_instead(tmp_path):
    wheel = "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl"
    done, pip_calls, _ = run_install_script(tmp_path, "cpu", wheel)
    assert done.returncode == 0, done.stderr
    assert pip_calls[0].endswith(f"/wheels/{wheel}") and "torch==" not in pip_calls[0]


def test_a_build_that_got_the_wrong_kind_of_torch_fails_before_installing_the_project(tmp_path):
    """The GPU image asks for cuda; this machine's torch is a CPU build, as an index serving +cpu wheels would give."""
    done, pip_calls, labels = run_install_script(tmp_path, "cuda")
    assert done.returncode != 0
    assert "is a cpu build and this image needs a cuda build" in done.stderr
    assert len(pip_calls) == 1 and "torch==" in pip_calls[0] and labels == ""


def test_a_torch_wheel_for_the_gpu_image_is_refused(optbench, tmp_path):
    wheel = tmp_path / "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl"
    wheel.write_bytes(b"")
    status, _, err = optbench("image", "build", "gpu", "--torch-wheel", wheel, "--output", tmp_path / "gpu.sif")
    sentence = " ".join(err.split())
    assert status == 2 and "installs torch" in sentence and "leave out --torch-wheel." in sentence, sentence
    assert not (tmp_path / "gpu.sif").exists()
