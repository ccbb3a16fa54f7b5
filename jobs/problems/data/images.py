"""Labelled image datasets from the data folder, with DeepOBS's held-out validation set."""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np

from jobs.problems.data.files import dataset_paths
from jobs.problems.data.splits import with_validation

#: dataset → reader (imported when used: scipy, for SVHN, takes a third of a second to import)
READERS = {
    "mnist": "idx:read_mnist_like",
    "fmnist": "idx:read_mnist_like",
    "cifar10": "cifar:read_cifar10",
    "cifar100": "cifar:read_cifar100",
    "svhn": "svhn:read_svhn",
}
CLASSES = {"mnist": 10, "fmnist": 10, "cifar10": 10, "cifar100": 100, "svhn": 10}


def labelled_images(dataset: str, data_dir: str | Path | None, problem: str) -> dict[str, tuple[np.ndarray, ...]]:
    """``{"train", "valid", "test"}`` → (uint8 images (N, C, H, W), int64 labels (N,))."""
    module, _, name = READERS[dataset].partition(":")
    reader = getattr(importlib.import_module(f"jobs.problems.data.{module}"), name)
    return with_validation(reader(dataset_paths(dataset, data_dir, problem)))
