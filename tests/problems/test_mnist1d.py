"""MNIST-1D against the paper's and the package's figures, generated offline, and the paper's two networks on it."""

from __future__ import annotations

import random
import socket
import urllib.request

import numpy as np
import pytest
import requests
import torch

from jobs.problems.base import SPLITS
from jobs.problems.build import build_problem
from jobs.problems.data import mnist1d as data
from jobs.problems.mnist1d import VALID_SIZE, Mnist1dCNN, Mnist1dMLP
from jobs.problems.nets.mnist1d import ConvNet1d, ResidualMLP
from jobs.train import train
from orchestrator.sweep import expand

CPU, F64 = torch.device("cpu"), torch.float64


@pytest.fixture(scope="module")
def arrays():
    return data.generate()


def test_generation_arguments_are_the_packages_defaults():
    from mnist1d.data import get_dataset_args

    defaults = get_dataset_args(as_dict=True)
    assert defaults.pop("url").endswith(".pkl")  # the download we never use
    assert data.GENERATION == defaults


def test_sizes_are_the_papers(arrays):
    assert arrays["x"].shape == (4000, 40) and arrays["x_test"].shape == (1000, 40)
    assert arrays["y"].shape == (4000,) and arrays["y_test"].shape == (1000,)
    assert arrays["x"].dtype == np.float64 and arrays["y"].dtype == np.int64
    assert set(np.unique(arrays["y"])) == set(np.unique(arrays["y_test"])) == set(range(10))
    everything = np.concatenate([arrays["x"], arrays["x_test"]])
    assert everything.mean() == pytest.approx(0, abs=1e-12) and everything.std() == pytest.approx(1, rel=1e-12)


def test_labels_are_balanced(arrays):
    """Exactly 500 signals per digit, shuffled, then split 4000/1000.

    A digit's test count is hypergeometric (1000 draws from 5000 holding 500): mean 100, standard
    deviation 8.5. The tolerance is 3 of those, ±25: 7.5-12.5 % of the test split, 9.4-10.6 % of the
    training split (its count is 500 less the test count). Measured with the package's seed: 89-106 test.
    """
    train, test = np.bincount(arrays["y"], minlength=10), np.bincount(arrays["y_test"], minlength=10)
    assert (train + test == 500).all()
    assert ((test >= 75) & (test <= 125)).all(), test
    assert ((train >= 375) & (train <= 425)).all(), train


def test_generation_is_bitwise_repeatable_and_leaves_the_global_streams_alone(arrays):
    random.seed(7)
    np.random.seed(7)
    python, numpy = random.getstate(), np.random.get_state()
    again = data.generate()
    assert random.getstate() == python
    assert all(np.array_equal(a, b) for a, b in zip(np.random.get_state(), numpy, strict=True))
    for name in data.ARRAYS:
        assert again[name].tobytes() == arrays[name].tobytes(), name


def test_generation_never_touches_the_network(monkeypatch, arrays):
    import mnist1d.data

    def offline(*args, **kwargs):
        raise AssertionError("MNIST-1D generation tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", offline)
    monkeypatch.setattr(socket, "create_connection", offline)
    monkeypatch.setattr(socket, "getaddrinfo", offline)
    monkeypatch.setattr(urllib.request, "urlopen", offline)
    monkeypatch.setattr(requests, "get", offline)
    monkeypatch.setattr(mnist1d.data, "get_dataset", offline)  # the package's loader downloads a pickle
    generated = data.mnist1d_arrays(None)
    assert all(np.array_equal(generated[name], arrays[name]) for name in data.ARRAYS)


def test_the_cache_is_keyed_by_version_and_arguments_and_read_back_bitwise(monkeypatch, tmp_path, arrays):
    first = data.mnist1d_arrays(tmp_path)
    path = data.cache_path(tmp_path, data.package_version(), data.GENERATION)
    assert sorted((tmp_path / "mnist1d").iterdir()) == [path]  # one file, no temporary left behind
    assert path.name.startswith(f"mnist1d-{data.package_version()}-")

    monkeypatch.setattr("mnist1d.data.make_dataset", lambda *a, **k: pytest.fail("generated despite the cache"))
    cached = data.mnist1d_arrays(tmp_path)
    for name in data.ARRAYS:
        assert cached[name].tobytes() == first[name].tobytes() == arrays[name].tobytes(), name

    assert data.cache_path(tmp_path, "0.0.3", data.GENERATION) != path
    assert data.cache_path(tmp_path, data.package_version(), {**data.GENERATION, "seed": 43}) != path


def test_a_failed_cache_write_leaves_no_file_and_the_run_goes_on(monkeypatch, tmp_path, arrays):
    def disk_full(handle, **arrays):
        handle.write(b"PK\x03\x04 half a zip")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", disk_full)
    generated = data.mnist1d_arrays(tmp_path)
    assert all(np.array_equal(generated[name], arrays[name]) for name in data.ARRAYS)
    assert list((tmp_path / "mnist1d").iterdir()) == []


def test_splits_are_the_papers_test_set_and_a_fixed_tenth_of_its_training_set(data_dir, arrays):
    torch.manual_seed(0)
    problem = Mnist1dCNN(100, CPU, F64, weight_decay=0.0, data_dir=data_dir)
    assert {s: len(problem.splits[s]) for s in SPLITS} == {"train": 3600, "valid": VALID_SIZE, "test": 1000}
    assert np.array_equal(problem.splits["test"].inputs.numpy(), arrays["x_test"])
    assert np.array_equal(problem.splits["test"].targets.numpy(), arrays["y_test"])
    # train and valid are disjoint and together the paper's training set (each signal is distinct)
    held = torch.cat([problem.splits["train"].inputs, problem.splits["valid"].inputs]).numpy()
    assert len({row.tobytes() for row in held}) == 4000
    assert {row.tobytes() for row in held} == {row.tobytes() for row in arrays["x"]}
    assert set(problem.splits["valid"].targets.tolist()) == set(range(10))
    torch.manual_seed(1)
    again = Mnist1dMLP(100, CPU, F64, hidden=100, weight_decay=0.0)  # another seed, no data folder
    assert all(torch.equal(problem.splits[s].inputs, again.splits[s].inputs) for s in SPLITS)


def test_build_problem_caches_in_the_data_folder(tmp_path):
    (run,) = expand(["problem=mnist1d_mlp"]).runs
    problem = build_problem(run.spec["problem"], 100, CPU, torch.float32, data_dir=tmp_path)
    assert problem.splits["train"].inputs.dtype == torch.float32
    assert [path.suffix for path in (tmp_path / "mnist1d").iterdir()] == [".npz"]


def test_networks_are_the_papers():
    """Parameter counts as the paper's notebooks print them: MLPBase 15210, ConvBase 5210."""
    mlp, cnn = ResidualMLP(), ConvNet1d()
    assert sum(p.numel() for p in mlp.parameters()) == 15210
    assert sum(p.numel() for p in cnn.parameters()) == 5210
    x = torch.randn(7, 40)
    residual = mlp.linear1(x).relu()
    residual = residual + mlp.linear2(residual).relu()
    assert torch.equal(mlp(x), mlp.linear3(residual))
    shapes, h = [], x
    for layer in cnn:
        h = layer(h)
        if isinstance(layer, torch.nn.Conv1d):
            shapes.append(tuple(h.shape[1:]))
    assert shapes == [(25, 19), (25, 10), (25, 5)] and h.shape == (7, 10)


def test_weight_decay_covers_every_weight_and_no_bias(data_dir):
    problem = Mnist1dCNN(100, CPU, F64, weight_decay=0.1, data_dir=data_dir)
    shapes = [tuple(w.shape) for w in problem.weights]
    assert shapes == [(25, 1, 5), (25, 25, 3), (25, 25, 3), (10, 125)]
    expected = 0.05 * sum(float((w.detach() ** 2).sum()) for w in problem.weights)
    assert float(problem.regularizer().detach()) == pytest.approx(expected, rel=1e-12)


class Evaluations:
    def __init__(self):
        self.records = []

    def log_eval(self, record):
        self.records.append(record)

    def log_step(self, record):
        pass

    def log_progress(self, record):
        pass


@pytest.mark.parametrize("problem", ["mnist1d_mlp", "mnist1d_cnn"])
def test_a_short_adam_run_beats_chance_clearly(problem, data_dir):
    """The paper's settings (Adam, lr 0.01, batch 100) for 10 epochs, not its 150: test accuracy above 40 %.

    Chance is 10 % (σ ≈ 1 % on 1000 signals). Measured (seeds 0-2): 57-61 % for the MLP, 80-84 % for the CNN
    after 10 epochs; 64 % and 92 % after 150 (the paper: 68 % and 94 %).
    """
    (run,) = expand([f"problem={problem}", "optimizer=adam", "optimizer.lr=0.01", "train.epochs=10"]).runs
    sink = Evaluations()
    train(run.spec, sink, data_dir=data_dir)
    first, last = sink.records[0], sink.records[-1]
    assert first["test_accuracy"] < 0.2
    assert last["test_accuracy"] > 0.4 and last["train_loss"] < first["train_loss"]
