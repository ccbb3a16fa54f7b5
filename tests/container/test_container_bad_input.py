"""Bad container settings: exit status 2, one sentence naming what to change, nothing written or started."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from components import require_apptainer

from orchestrator import container
from orchestrator.config import ConfigTree

RUN = ("problem=rosenbrock", "train.epochs=1", "logger=disabled")


def assert_refused(optbench, results: Path, *overrides: str, says: str) -> str:
    status, out, err = optbench("launch", *RUN, *overrides, "--results", results)
    assert status == 2, out + err
    sentence = " ".join(err.split()).removeprefix("optbench: error: ")  # the console wraps long lines
    assert says in sentence, sentence
    assert sentence.count(". ") == 0 and sentence.endswith("."), f"not one sentence: {sentence!r}"
    assert not (results / "sweeps").exists() and not (results / "runs").exists()
    return sentence


def test_a_container_without_an_image(optbench, results):
    assert_refused(optbench, results, "container=apptainer", says="container.image=PATH")


def test_a_misspelled_container_setting(optbench, results):
    sentence = assert_refused(optbench, results, "container=apptainer", "container.imag=x.sif",
                              says="container.imag")
    assert "conf/container/" in sentence


def test_a_missing_data_dir(optbench, results, tmp_path):
    assert_refused(optbench, results, f"data_dir={tmp_path / 'no-such-data'}", says="data_dir=")


def test_the_runtime_not_on_path(optbench, results, tmp_path, monkeypatch):
    """PATH without apptainer and singularity (binaries outside the test's control are not needed here)."""
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    sentence = assert_refused(optbench, results, "container=apptainer", f"container.image={tmp_path}/x.sif",
                              says="'apptainer' is not on PATH")
    assert "install it or load its module" in sentence


def test_singularity_missing_where_apptainer_is(optbench, results, tmp_path, monkeypatch):
    require_apptainer()
    only = tmp_path / "bin"
    only.mkdir()
    (only / "apptainer").symlink_to(shutil.which("apptainer"))
    monkeypatch.setenv("PATH", str(only))
    assert_refused(optbench, results, "container=singularity", f"container.image={tmp_path}/x.sif",
                   says="or set container=apptainer")


def test_a_missing_image(optbench, results, tmp_path):
    require_apptainer()
    assert_refused(optbench, results, "container=apptainer", f"container.image={tmp_path / 'gone.sif'}",
                   says="does not exist; build an image with 'optbench image build'")


def test_a_file_that_is_no_image(optbench, results, tmp_path):
    require_apptainer()
    fake = tmp_path / "notes.sif"
    fake.write_text("not an image\n")
    assert_refused(optbench, results, "container=apptainer", f"container.image={fake}",
                   says="could not run python3 in")


def test_a_bind_path_that_does_not_exist(optbench, results, cpu_image, tmp_path):
    assert_refused(optbench, results, "container=apptainer", f"container.image={cpu_image}",
                   f"container.binds=[{tmp_path / 'scratch'}]", says="container.binds names")


def test_an_image_without_optbench(optbench, results, cpu_image):
    """Debian's own python3 in the CPU image: a real interpreter in a real image, without the project."""
    assert_refused(optbench, results, "container=apptainer", f"container.image={cpu_image}",
                   "container.python=/usr/bin/python3", says="has no optbench inside")


def test_an_image_with_another_optbench_version(optbench, results, cpu_image, monkeypatch):
    """This host's optbench is made to say 9.9.9; the image really has the tree's version."""
    monkeypatch.setattr(container, "project_version", lambda: "9.9.9")
    sentence = assert_refused(optbench, results, "container=apptainer", f"container.image={cpu_image}",
                              says="but this is 9.9.9")
    assert "rebuild it with 'optbench image build'" in sentence


@pytest.mark.parametrize("value", ["maybe", 3])
def test_a_bad_nv_value(optbench, results, value, tmp_path):
    assert_refused(optbench, results, "container=apptainer", f"container.image={tmp_path}/x.sif",
                   f"container.nv={value}", says="container.nv must be auto, true or false")


def test_container_settings_cannot_be_swept(optbench, results):
    assert_refused(optbench, results, "container=none,apptainer", says="container cannot be swept")


def test_the_runtime_probe_sees_the_sweeps_environment(cpu_image, monkeypatch):
    """The host's PYTHONPATH must not leak into the image's Python (it would shadow the image's project)."""
    monkeypatch.setenv("PYTHONPATH", os.getcwd())
    settings = container.ContainerSettings.from_config(
        {**ConfigTree().option_config("container", "apptainer"), "image": str(cpu_image)})
    prepared = container.prepare(settings, [], gpus=False)
    assert prepared.inside["jobs"].startswith("/opt/venv/")


def test_building_an_image_that_is_not_defined(optbench):
    status, _, err = optbench("image", "build", "tpu")
    sentence = " ".join(err.split())
    assert status == 2 and "There is no image 'tpu'; choose one of: cpu, gpu" in sentence


def test_inspecting_what_is_not_an_image(optbench, tmp_path):
    require_apptainer()
    status, _, err = optbench("image", "inspect", tmp_path / "missing.sif")
    assert status == 2 and "There is no image at" in err
    notes = tmp_path / "notes.sif"
    notes.write_text("not an image\n")
    status, _, err = optbench("image", "inspect", notes)
    assert status == 2 and "cannot read" in " ".join(err.split())
