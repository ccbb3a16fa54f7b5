"""Datasets written in each real format (IDX, CIFAR pickles, SVHN .mat, text), random content.

The tests write tiny ones (sizes a small multiple of a test set: every
reader, split and pipeline runs as on the real files, in milliseconds);
benchmarks/bench_problems.py writes them at the real sizes.
"""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np
from scipy.io import savemat

TRAIN, TEST = 60, 12  # examples: the validation split takes TEST of TRAIN
WORDS = np.array(["war", "peace", "Natásha", "Pierre", "Moscow", "the", "and", "of", "—", "\n"])


def write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as stream:
        stream.write(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def images(rng: np.random.Generator, count: int, shape: tuple[int, ...]) -> np.ndarray:
    return rng.integers(0, 256, (count, *shape), dtype=np.uint8)


def write_mnist_like(folder: Path, rng: np.random.Generator, gz: bool, train: int = TRAIN,
                     test: int = TEST) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    written = {}
    for split, prefix, count in (("train", "train", train), ("test", "t10k", test)):
        pixels, labels = images(rng, count, (28, 28)), rng.integers(0, 10, count).astype(np.uint8)
        write_idx(folder / f"{prefix}-images-idx3-ubyte{suffix}", pixels)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte{suffix}", labels)
        written[split] = (pixels, labels)
    return written


def write_pickle(path: Path, content: dict, protocol: int) -> None:
    with open(path, "wb") as stream:
        pickle.dump(content, stream, protocol=protocol)


def write_cifar10(data_dir: Path, rng: np.random.Generator, train: int = TRAIN,
                  test: int = TEST) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    folder = data_dir / "cifar10" / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    parts = []
    for i in range(1, 6):  # protocol 2, bytes keys: as the Python 2 originals were written
        rows, labels = images(rng, train // 5, (3072,)), rng.integers(0, 10, train // 5).tolist()
        write_pickle(folder / f"data_batch_{i}", {b"data": rows, b"labels": labels}, protocol=2)
        parts.append((rows, labels))
    rows, labels = images(rng, test, (3072,)), rng.integers(0, 10, test).tolist()
    write_pickle(folder / "test_batch", {b"data": rows, b"labels": labels}, protocol=2)
    train_part = (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
    return {"train": train_part, "test": (rows, np.asarray(labels))}


def write_cifar100(data_dir: Path, rng: np.random.Generator) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    folder = data_dir / "cifar100" / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for split, count in (("train", TRAIN), ("test", TEST)):
        rows, fine = images(rng, count, (3072,)), rng.integers(0, 100, count).tolist()
        content = {b"data": rows, b"fine_labels": fine, b"coarse_labels": [f // 5 for f in fine]}
        write_pickle(folder / split, content, protocol=pickle.HIGHEST_PROTOCOL)
        written[split] = (rows, np.asarray(fine))
    return written


def write_svhn(data_dir: Path, rng: np.random.Generator) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    folder = data_dir / "svhn"
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for split, count in (("train", TRAIN), ("test", TEST)):
        pixels = images(rng, count, (32, 32, 3))  # (N, H, W, C), stored as MATLAB's (H, W, C, N)
        labels = rng.integers(1, 11, count)  # 10 stands for the digit 0
        savemat(folder / f"{split}_32x32.mat", {"X": np.moveaxis(pixels, 0, -1), "y": labels[:, None].astype(np.uint8)})
        written[split] = (pixels, labels)
    return written


def write_tolstoi(data_dir: Path, rng: np.random.Generator, characters: int = 3000) -> str:
    folder = data_dir / "tolstoi"
    folder.mkdir(parents=True, exist_ok=True)
    text = " ".join(rng.choice(WORDS, size=characters // 3))[:characters]
    (folder / "war_and_peace.txt").write_text(text, encoding="utf-8")
    return text


def write_all(data_dir: Path, seed: int = 0) -> dict[str, object]:
    rng = np.random.default_rng(seed)
    return {
        "mnist": write_mnist_like(data_dir / "mnist", rng, gz=True),
        "fmnist": write_mnist_like(data_dir / "fmnist", rng, gz=False),
        "cifar10": write_cifar10(data_dir, rng),
        "cifar100": write_cifar100(data_dir, rng),
        "svhn": write_svhn(data_dir, rng),
        "tolstoi": write_tolstoi(data_dir, rng),
    }
