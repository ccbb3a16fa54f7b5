"""CIFAR-10 and CIFAR-100 in their "python version": pickled dicts of uint8 rows.

Each file holds ``data`` (N × 3072 bytes, the red, green and blue 32×32
planes of an image in turn) and ``labels`` (CIFAR-10) or ``fine_labels``
(CIFAR-100, whose 100 classes we use). The files are unpickled with only
numpy's array constructors (and the byte-string decoder that pickles
written by Python 3 at protocol 2 use) allowed, so a doctored file cannot
run code.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
}


class _ArraysOnly(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"a CIFAR file may hold only numpy arrays, not {module}.{name}")
        return super().find_class(module, name)


def read_batch(path: Path, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 (N, 3, 32, 32) and labels int64 (N,) of one pickled file."""
    with open(path, "rb") as stream:
        batch = _ArraysOnly(stream, encoding="bytes").load()
    data = np.asarray(batch[b"data"], dtype=np.uint8)
    labels = np.asarray(batch[label_key.encode()], dtype=np.int64)
    return data.reshape(-1, 3, 32, 32), labels


def read_cifar10(paths: dict[str, Path]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    parts = [read_batch(paths[f"data_batch_{i}"], "labels") for i in range(1, 6)]
    train = (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
    return {"train": train, "test": read_batch(paths["test_batch"], "labels")}


def read_cifar100(paths: dict[str, Path]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return {split: read_batch(paths[split], "fine_labels") for split in ("train", "test")}
