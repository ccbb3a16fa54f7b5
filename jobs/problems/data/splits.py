"""Held-out validation sets: DeepOBS takes one as large as the test set from the training set."""

from __future__ import annotations

import numpy as np

#: The split is part of the problem, not of a run: every run of a problem sees the same one.
SPLIT_SEED = 0


def hold_out(size: int, valid_size: int, seed: int = SPLIT_SEED) -> tuple[np.ndarray, np.ndarray]:
    """Disjoint index arrays (train, valid) covering ``range(size)``, both in random order."""
    if not 0 < valid_size < size:
        raise ValueError(f"cannot hold out {valid_size} of {size} training examples for validation")
    order = np.random.RandomState(seed).permutation(size)
    return order[valid_size:], order[:valid_size]


Arrays = tuple[np.ndarray, ...]


def with_validation(data: dict[str, Arrays], seed: int = SPLIT_SEED) -> dict[str, Arrays]:
    """``{"train", "test"}`` arrays → ``{"train", "valid", "test"}``, valid as large as test, taken from train."""
    train_index, valid_index = hold_out(len(data["train"][0]), len(data["test"][0]), seed)
    return {
        "train": tuple(a[train_index] for a in data["train"]),
        "valid": tuple(a[valid_index] for a in data["train"]),
        "test": data["test"],
    }
