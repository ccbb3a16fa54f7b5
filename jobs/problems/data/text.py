"""Tolstoi's War and Peace as character sequences, DeepOBS's ``tolstoi`` data.

As in DeepOBS's preprocessing, the vocabulary is every character of the
text, numbered by falling frequency (ties: first appearance first; 83
characters for the Gutenberg text), and the text is cut into the first 80 %
for training and the last 20 % for testing. Our choices: the validation
set, like DeepOBS's image validation sets as large as the test set, is
the last 20 % of the training part, so the splits are three contiguous
blocks (60/20/20) and no window straddles two of them; each block is cut
into non-overlapping windows of ``length`` characters, the target of each
the same window shifted by one character.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

TEST_FRACTION = 0.2


def read_text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def vocabulary(text: str) -> list[str]:
    """Characters by falling count; ``Counter`` keeps first appearance order, ``sorted`` is stable."""
    return [char for char, _ in sorted(Counter(text).items(), key=lambda item: -item[1])]


def windows(codes: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
    """Inputs and next-character targets, both (N, length), from non-overlapping windows."""
    count = (len(codes) - 1) // length
    inputs = codes[: count * length].reshape(count, length)
    targets = codes[1 : count * length + 1].reshape(count, length)
    return inputs, targets


def character_splits(text: str, length: int) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], int]:
    """``{"train": (inputs, targets), "valid": ..., "test": ...}`` and the vocabulary size."""
    chars = vocabulary(text)
    lookup = {char: code for code, char in enumerate(chars)}
    codes = np.fromiter((lookup[c] for c in text), dtype=np.int64, count=len(text))
    train_end = int(np.ceil((1 - TEST_FRACTION) * len(codes)))
    valid_start = train_end - (len(codes) - train_end)
    blocks = {"train": codes[:valid_start], "valid": codes[valid_start:train_end], "test": codes[train_end:]}
    splits = {name: windows(block, length) for name, block in blocks.items()}
    for name, (inputs, _) in splits.items():
        if len(inputs) == 0:
            raise ValueError(f"The text is too short for one {name} sequence of {length} characters.")
    return splits, len(chars)
