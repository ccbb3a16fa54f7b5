"""Sweeps inside the real CPU image on the local launcher: provenance, bitwise equality, reruns, dev mode."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from jobs.provenance import code_version
from jobs.run_folder import read_json, read_jsonl
from orchestrator.container import project_version
from orchestrator.rerun import compare_metrics

ONE_SPEC = ("problem=quadratic_deep", "train.epochs=2", "logger=disabled", "launcher.max_parallel=2")
RUNS = (*ONE_SPEC, "seed=1,2")


def in_image(image: Path, *extra: str, seeds: str = "1,2") -> tuple[str, ...]:
    return (*ONE_SPEC, f"seed={seeds}", "container=apptainer", f"container.image={image}", *extra)


def run_folders(results: Path) -> list[Path]:
    return sorted(p for p in (results / "runs").iterdir() if p.is_dir())


def labels(image: Path) -> dict[str, str]:
    out = subprocess.run(["apptainer", "inspect", "--json", "--labels", str(image)],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)["data"]["attributes"]["labels"]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def image_sweep(cpu_image, tmp_path_factory) -> Path:
    """One 2-run sweep inside the image, shared by the tests that only read it."""
    from orchestrator.cli import main

    results = tmp_path_factory.mktemp("image-sweep") / "results"
    assert main(["launch", *in_image(cpu_image), "--results", str(results)]) == 0
    return results


def test_every_run_records_the_image_it_ran_in(image_sweep, cpu_image):
    image_labels = labels(cpu_image)
    folders = run_folders(image_sweep)
    assert len(folders) == 2
    for folder in folders:
        assert read_json(folder / "status.json")["state"] == "completed"
        provenance = read_json(folder / "provenance.json")
        container = provenance["container"]
        assert container["running_in"] == str(cpu_image)  # Apptainer's own word from inside the job
        assert container["image"] == str(cpu_image) and container["sha256"] == sha256(cpu_image)
        assert container["runtime"] == "apptainer"
        assert container["runtime_version"] in subprocess.run(["apptainer", "--version"], capture_output=True,
                                                              text=True).stdout
        assert container["dev"] is False and container["nv"] is False
        # The job's Python and packages are the image's, not this virtual environment's.
        assert provenance["executable"] == "/opt/venv/bin/python3"
        assert provenance["python"] == image_labels["python.version"]
        assert provenance["packages"]["torch"] == image_labels["torch.version"]
        assert provenance["packages"]["optbench"] == image_labels["optbench.version"] == project_version()
        # The installed copy has no git: the commit is the one the image was built from.
        assert provenance["code"] == {"commit": image_labels["optbench.commit"],
                                      "dirty": image_labels["optbench.dirty"] == "true", "source": "image"}


def test_image_and_host_give_bitwise_identical_metrics(image_sweep, optbench, tmp_path):
    host_results = tmp_path / "host"
    status, _, err = optbench("launch", *RUNS, "--results", host_results)
    assert status == 0, err
    for in_container, on_host in zip(run_folders(image_sweep), run_folders(host_results), strict=True):
        assert in_container.name == on_host.name
        assert read_json(on_host / "provenance.json")["container"] is None
        original = list(read_jsonl(in_container / "metrics.jsonl"))
        assert len(original) == 3  # epochs 0, 1, 2
        assert compare_metrics(original, list(read_jsonl(on_host / "metrics.jsonl"))) is None


def test_rerun_from_the_image_is_identical(image_sweep, optbench, cpu_image):
    run_id = run_folders(image_sweep)[0].name
    status, out, err = optbench("rerun", run_id, "--results", image_sweep)
    assert status == 0, err
    assert "identical" in out
    rerun = image_sweep / "runs" / run_id / "reruns" / "1"
    comparison = read_json(rerun / "comparison.json")
    assert comparison["identical"] is True and comparison["difference"] is None
    assert str(cpu_image) in comparison["command"]
    assert read_json(rerun / "provenance.json")["container"]["image"] == str(cpu_image)
    assert read_json(rerun / "status.json")["run_id"] == run_id
    # The original is untouched and still the one that sweeps and the aggregator see.
    assert read_json(image_sweep / "runs" / run_id / "status.json")["attempts"] == 1


def test_rerun_refuses_a_changed_image_unless_forced(cpu_image, optbench, tmp_path):
    copy = tmp_path / "copy.sif"
    shutil.copyfile(cpu_image, copy)
    results = tmp_path / "results"
    status, _, err = optbench("launch", *in_image(copy, seeds="3"), "--results", results)
    assert status == 0, err
    run_id = run_folders(results)[0].name
    with open(copy, "ab") as image:  # SIF ignores trailing bytes: still runs, no longer the same file
        image.write(b"changed")

    status, out, err = optbench("rerun", run_id, "--results", results)
    assert status == 2
    sentence = " ".join(err.split())  # the console wraps long lines
    assert "has changed since run" in sentence and "pass --force" in sentence and sentence.count(". ") == 0
    assert not (results / "runs" / run_id / "reruns").exists()

    status, out, err = optbench("rerun", run_id, "--force", "--results", results)
    assert status == 0, err
    assert "Warning" in out and "identical" in out


def test_rerun_reports_where_metrics_differ(image_sweep, optbench, tmp_path):
    """A run whose recorded metrics were altered: the comparison names the first step and the gap."""
    results = tmp_path / "results"
    shutil.copytree(image_sweep, results)
    folder = run_folders(results)[0]
    shutil.rmtree(folder / "reruns", ignore_errors=True)
    rows = list(read_jsonl(folder / "metrics.jsonl"))
    rows[1]["train_loss"] *= 1.5
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    status, out, _ = optbench("rerun", folder.name, "--results", results)
    assert status == 1
    assert f"epoch 1, step {rows[1]['step']}: train_loss" in out.replace("\n", " ")
    difference = read_json(folder / "reruns" / "1" / "comparison.json")["difference"]
    assert difference["key"] == "train_loss" and difference["row"] == 1


def test_dev_mode_runs_this_tree_with_the_images_packages(cpu_image, optbench, results):
    status, _, err = optbench("launch", *in_image(cpu_image, "container.dev=true", seeds="4"), "--results", results)
    assert status == 0, err
    provenance = read_json(run_folders(results)[0] / "provenance.json")
    assert provenance["code"] == {**code_version(), "source": "launcher"}
    assert provenance["container"]["dev"] is True
    assert f"PYTHONPATH={Path(__file__).resolve().parents[2]}" in provenance["container"]["command"]
    assert provenance["executable"] == "/opt/venv/bin/python3"
