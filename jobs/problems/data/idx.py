"""The IDX format of MNIST and Fashion-MNIST, plain or gzipped.

Header: two zero bytes, a type byte (0x08: unsigned bytes, the only type
these datasets use), the number of dimensions, then each dimension as a
big-endian uint32; the data follows in C order.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

UBYTE = 0x08


def read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as stream:
        raw = stream.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != UBYTE:
        raise ValueError(f"{path} is not an IDX file of unsigned bytes (bad header {raw[:4].hex()}).")
    ndim = raw[3]
    shape = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    data = np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise ValueError(f"{path} holds {data.size} values, but its header says {shape}.")
    return data.reshape(shape).copy()  # writable, owning its memory (torch shares it)


def read_mnist_like(paths: dict[str, Path]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{"train": (images, labels), "test": ...}``: images uint8 (N, 1, 28, 28), labels int64 (N,)."""
    result = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images = read_idx(paths[f"{prefix}-images-idx3-ubyte"])
        labels = read_idx(paths[f"{prefix}-labels-idx1-ubyte"]).astype(np.int64)
        if len(images) != len(labels):
            raise ValueError(f"{prefix} images and labels disagree in number ({len(images)} vs {len(labels)}).")
        result[split] = (images[:, None], labels)
    return result
