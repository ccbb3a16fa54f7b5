"""Every registered problem: its config composes, it builds from the data folder and a few steps lower its loss.

The big networks (VGG, WRN, DenseNet, ResNet-56, MobileNetV2) only get
their shapes and parameter counts checked (test_problem_nets.py); their
problems share :class:`~jobs.problems.image_classification.ImageClassification` with
the small ones trained here.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from jobs.problems.build import build_problem
from jobs.problems.data.files import DATASETS, MissingDataError
from jobs.problems.data.images import CLASSES
from jobs.problems.image_classification import NETS
from jobs.problems.registry import PROBLEMS
from orchestrator.sweep import expand

CPU = torch.device("cpu")
CONF = Path(__file__).resolve().parents[2] / "conf" / "problem"
BIG = ("vgg16", "vgg19", "wrn164", "wrn404", "densenet40", "resnet56", "mobilenetv2")
TRAINED = [name for name in PROBLEMS.names() if not name.endswith(BIG)]
TINY = {"steps_per_epoch": 3, "dim": 6, "hidden": 16}  # shrink the file-free problems


@pytest.fixture(scope="module")
def specs():
    """Every problem's default config, composed as ``optbench launch problem=NAME`` composes it."""
    return {run.spec["problem"]["name"]: run.spec for run in expand(["problem=" + ",".join(PROBLEMS.names())]).runs}


def test_every_problem_has_a_config_that_composes(specs):
    assert sorted(specs) == PROBLEMS.names()
    assert sorted(path.stem for path in CONF.glob("*.yaml")) == PROBLEMS.names()  # and no config without a problem
    for name, spec in specs.items():
        assert spec["train"]["batch_size"] >= 1 and spec["train"]["epochs"] >= 1, name


def test_every_image_problem_names_a_network_and_a_dataset():
    for name in PROBLEMS.names():
        entry = PROBLEMS.entry(name)
        if entry.dataset is not None:
            assert entry.dataset in DATASETS and name.startswith(entry.dataset + "_")
        if "net" in entry.setup:
            assert entry.setup["net"] in NETS and entry.dataset in CLASSES


def loss_with_fixed_randomness(problem, batch) -> torch.Tensor:
    torch.manual_seed(1)  # the same dropout masks and VAE noise at every evaluation
    return problem.batch_loss(batch)


def value(loss: torch.Tensor) -> float:
    return float(loss.detach())


@pytest.mark.parametrize("name", TRAINED)
def test_a_few_steps_lower_the_loss(name, specs, data_dir):
    config = {**specs[name]["problem"], **{k: v for k, v in TINY.items() if k in specs[name]["problem"]}}
    torch.manual_seed(0)
    problem = build_problem(config, 4, CPU, torch.float32, data_dir=data_dir)
    batch = next(problem.train_batches(torch.Generator().manual_seed(0)))
    optimizer = torch.optim.Adam(problem.model.parameters(), lr=1e-3)
    problem.model.train()
    before = value(loss_with_fixed_randomness(problem, batch))
    for _ in range(2):
        optimizer.zero_grad()
        loss_with_fixed_randomness(problem, batch).backward()
        optimizer.step()
    assert value(loss_with_fixed_randomness(problem, batch)) < before
    metrics = problem.evaluate("valid")
    assert set(metrics) == ({"loss", "accuracy"} if problem.has_accuracy else {"loss"})
    assert all(torch.isfinite(torch.tensor(v)) for v in metrics.values())


@pytest.mark.parametrize("dataset", sorted(DATASETS))
def test_a_missing_dataset_is_one_sentence_naming_the_files_and_the_folder(dataset, specs, tmp_path):
    name = next(n for n in PROBLEMS.names() if PROBLEMS.entry(n).dataset == dataset)
    with pytest.raises(MissingDataError) as raised:
        build_problem(specs[name]["problem"], 8, CPU, torch.float32, data_dir=tmp_path)
    message = str(raised.value)
    files = DATASETS[dataset]
    assert message.startswith(f"Problem {name} needs {files.title} in {tmp_path / files.folder}: ")
    assert all(f in message for f in files.files) and message.endswith(".")
    assert "\n" not in message and ". " not in message  # one sentence

    with pytest.raises(MissingDataError, match="no data folder is set: set data_dir=PATH or .* OPTBENCH_DATA"):
        build_problem(specs[name]["problem"], 8, CPU, torch.float32, data_dir=None)


def test_a_partly_missing_dataset_names_the_missing_file(written, tmp_path):
    source, _ = written
    folder = tmp_path / "cifar100" / "cifar-100-python"
    folder.mkdir(parents=True)
    (folder / "train").write_bytes((source / "cifar100" / "cifar-100-python" / "train").read_bytes())
    with pytest.raises(MissingDataError, match=r"train, test; missing test; get cifar-100-python\.tar\.gz"):
        build_problem({"name": "cifar100_3c3d", "weight_decay": 0.0, "augment": True}, 8, CPU, torch.float32,
                      data_dir=tmp_path)


def test_data_check_lists_ready_problems_and_what_to_put_where(optbench, written, tmp_path):
    status, out, _ = optbench("data", "check", "--data-dir", written[0])
    assert status == 0 and "missing" not in out and f"{len(PROBLEMS.names())} of {len(PROBLEMS.names())}" in out

    (tmp_path / "mnist").mkdir()
    status, out, _ = optbench("data", "check", "--data-dir", tmp_path)
    assert status == 1
    flat = " ".join(out.split())
    assert "MNIST: put train-images-idx3-ubyte, train-labels-idx1-ubyte" in flat
    assert f"in {tmp_path}/mnist (missing:" in flat and f"-C {tmp_path}/cifar10" in flat
    free = sum(PROBLEMS.entry(n).dataset is None for n in PROBLEMS.names())
    assert f"{free} of {len(PROBLEMS.names())} problems ready" in flat


def test_data_check_reads_optbench_data_and_needs_no_torch(written):
    script = "import sys; from orchestrator.cli import main; code = main(['data', 'check']); " \
             "assert 'torch' not in sys.modules; sys.exit(code)"
    env = {"OPTBENCH_DATA": str(written[0]), "PATH": "/usr/bin:/bin", "COLUMNS": "200"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert f"Data folder: {written[0]}" in done.stdout


def test_vae_evaluation_is_repeatable_and_leaves_the_random_stream_alone(data_dir):
    problem = build_problem({"name": "mnist_vae"}, 4, CPU, torch.float64, data_dir=data_dir)
    state = torch.get_rng_state()
    first = problem.evaluate("test")
    assert torch.equal(torch.get_rng_state(), state)
    assert problem.evaluate("test") == first
    batch = next(problem.train_batches(torch.Generator().manual_seed(0)))
    assert value(problem.batch_loss(batch)) != value(problem.batch_loss(batch))  # training samples fresh noise
