"""SVHN's cropped digits (format 2): MATLAB files read with scipy.

``X`` is uint8 (32, 32, 3, N), ``y`` is (N, 1) with labels 1..10, where 10
stands for the digit 0. DeepOBS trains on ``train_32x32.mat`` alone (not
the 531k "extra" images) and so do we.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.io import loadmat


def read_mat(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 (N, 3, 32, 32) and digits int64 (N,) in 0..9."""
    content = loadmat(path)
    images = np.ascontiguousarray(np.transpose(content["X"], (3, 2, 0, 1)), dtype=np.uint8)
    labels = content["y"].reshape(-1).astype(np.int64) % 10
    return images, labels


def read_svhn(paths: dict[str, Path]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return {"train": read_mat(paths["train_32x32.mat"]), "test": read_mat(paths["test_32x32.mat"])}
