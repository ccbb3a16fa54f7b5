"""Tiny files in each real format read back exactly; bad files fail with a clear error."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from problem_files import TEST, TRAIN, write_idx

from jobs.problems.data.cifar import read_batch, read_cifar10, read_cifar100
from jobs.problems.data.files import DATASETS, dataset_paths
from jobs.problems.data.idx import read_idx, read_mnist_like
from jobs.problems.data.svhn import read_svhn
from jobs.problems.data.text import character_splits, read_text, vocabulary


@pytest.mark.parametrize("dataset", ["mnist", "fmnist"])  # gzipped, plain
def test_idx_files_read_back(written, dataset):
    data_dir, arrays = written
    data = read_mnist_like(dataset_paths(dataset, data_dir, "test"))
    for split, count in (("train", TRAIN), ("test", TEST)):
        images, labels = data[split]
        assert images.shape == (count, 1, 28, 28) and images.dtype == np.uint8
        assert np.array_equal(images[:, 0], arrays[dataset][split][0])
        assert np.array_equal(labels, arrays[dataset][split][1]) and labels.dtype == np.int64


def test_idx_header_is_checked(tmp_path):
    path = tmp_path / "bad-idx3-ubyte"
    path.write_bytes(bytes([0, 0, 0x0D, 1, 0, 0, 0, 1]) + b"\0\0\0\0")  # 0x0D: floats
    with pytest.raises(ValueError, match="not an IDX file of unsigned bytes"):
        read_idx(path)
    write_idx(path, np.zeros((3, 2), np.uint8))
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(ValueError, match=r"holds 5 values, but its header says \(3, 2\)"):
        read_idx(path)


def test_cifar_pickles_read_back(written):
    data_dir, arrays = written
    for dataset, reader in (("cifar10", read_cifar10), ("cifar100", read_cifar100)):
        data = reader(dataset_paths(dataset, data_dir, "test"))
        for split in ("train", "test"):
            rows, labels = arrays[dataset][split]
            images, read_labels = data[split]
            assert images.shape == (len(rows), 3, 32, 32)
            # a row is the red, then green, then blue plane, each row-major
            assert np.array_equal(images[:, 0, 0, :], rows[:, :32])
            assert np.array_equal(images[:, 1, 0, 0], rows[:, 1024])
            assert np.array_equal(images.reshape(len(rows), -1), rows)
            assert np.array_equal(read_labels, labels)


def test_cifar_reader_runs_no_code_from_a_doctored_file(tmp_path):
    class Payload:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": Payload(), b"labels": [1]}))
    with pytest.raises(pickle.UnpicklingError, match="only numpy arrays, not builtins.print"):
        read_batch(path, "labels")


def test_svhn_mat_files_read_back_with_label_10_as_digit_0(written):
    data_dir, arrays = written
    data = read_svhn(dataset_paths("svhn", data_dir, "test"))
    for split in ("train", "test"):
        pixels, labels = arrays["svhn"][split]
        images, digits = data[split]
        assert np.array_equal(images, pixels.transpose(0, 3, 1, 2))
        assert np.array_equal(digits, np.where(labels == 10, 0, labels))
        assert digits.min() >= 0 and digits.max() <= 9


def test_tolstoi_text_becomes_shifted_windows_of_its_vocabulary(written):
    data_dir, arrays = written
    text = read_text(dataset_paths("tolstoi", data_dir, "test")["war_and_peace.txt"])
    assert text == arrays["tolstoi"]
    splits, size = character_splits(text, 50)
    chars = vocabulary(text)
    assert size == len(chars) == len(set(text))
    decoded = {name: "".join(chars[c] for c in inputs.reshape(-1)) for name, (inputs, _) in splits.items()}
    # three contiguous blocks 60/20/20 in order; each cut into whole windows
    assert text.startswith(decoded["train"])
    assert text[1800:].startswith(decoded["valid"]) and text[2400:].startswith(decoded["test"])
    for inputs, targets in splits.values():
        assert inputs.shape[1] == targets.shape[1] == 50
        assert np.array_equal(inputs[:, 1:], targets[:, :-1])  # targets are the next characters
        assert np.array_equal(inputs[1:, 0], targets[:-1, -1])  # windows continue each other


def test_vocabulary_is_ordered_by_count_then_first_appearance():
    assert vocabulary("abcbcc") == ["c", "b", "a"]
    assert vocabulary("xyxy") == ["x", "y"]


def test_every_dataset_names_its_files():
    for files in DATASETS.values():
        assert files.files and files.folder and files.source
