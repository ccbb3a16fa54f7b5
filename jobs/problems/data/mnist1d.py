"""MNIST-1D (Greydanus 2020): generated offline from the ``mnist1d`` package's templates, cached in the data folder.

The arrays come from the package's ``make_dataset`` with its default
arguments (:data:`GENERATION`; a test checks them against
``get_dataset_args()``): 5,000 length-40 signals, 500 per digit, shuffled
and split 4,000 training / 1,000 test as the paper's. The package's
``get_dataset`` is never called: by default it downloads a pickle.

Generating takes about 2 s on one core (1 s to import the package, which
pulls in matplotlib and scipy, and 1 s to generate), so with a data folder
the arrays are cached there as ``mnist1d/mnist1d-<version>-<key>.npz``,
keyed by the package's version and the generation arguments, written
atomically (concurrent runs may both write it; each sees a whole file). A
data folder that cannot be written is no error: the arrays are generated
each time, as without one.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import random
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from jobs.run_folder import atomic_file

#: ``mnist1d.data.get_dataset_args()`` less its download ``url``: 4,000 train + 1,000 test, length 40.
GENERATION = {
    "num_samples": 5000,
    "train_split": 0.8,
    "template_len": 12,
    "padding": [36, 60],
    "scale_coeff": 0.4,
    "max_translation": 48,
    "corr_noise_scale": 0.25,
    "iid_noise_scale": 2e-2,
    "shear_scale": 0.75,
    "shuffle_seq": False,
    "final_seq_length": 40,
    "seed": 42,
}
ARRAYS = ("x", "y", "x_test", "y_test")
FOLDER = "mnist1d"


def package_version() -> str:
    try:
        return importlib.metadata.version("mnist1d")
    except importlib.metadata.PackageNotFoundError:
        raise RuntimeError("The mnist1d problems need the mnist1d package: pip install mnist1d.") from None


def cache_path(data_dir: str | Path, version: str, arguments: dict) -> Path:
    key = hashlib.sha256(json.dumps(arguments, sort_keys=True).encode()).hexdigest()[:16]
    return Path(data_dir) / FOLDER / f"mnist1d-{version}-{key}.npz"


@contextmanager
def global_streams_kept() -> Iterator[None]:
    """``make_dataset`` reseeds Python's and NumPy's global streams; a run must not see whether it generated."""
    python, numpy = random.getstate(), np.random.get_state()
    try:
        yield
    finally:
        random.setstate(python)
        np.random.set_state(numpy)


def generate() -> dict[str, np.ndarray]:
    """The signals (float64, N×40) and labels (int64) of both splits, as ``make_dataset`` returns them."""
    package_version()  # the sentence that names the package when it is missing
    from mnist1d.data import make_dataset  # 1 s: only on a cache miss

    with global_streams_kept():
        data = make_dataset(SimpleNamespace(**GENERATION))
    return {name: np.asarray(data[name]) for name in ARRAYS}


def mnist1d_arrays(data_dir: str | Path | None) -> dict[str, np.ndarray]:
    """``x``, ``y`` (training) and ``x_test``, ``y_test``: from the cache in ``data_dir`` or generated (and cached)."""
    if data_dir is None:
        return generate()
    path = cache_path(data_dir, package_version(), GENERATION)
    if path.is_file():
        with np.load(path, allow_pickle=False) as stored:
            return {name: stored[name] for name in ARRAYS}
    arrays = generate()
    try:
        with atomic_file(path, "wb") as handle:
            np.savez(handle, **arrays)
    except OSError:
        pass  # a read-only data folder: the run goes on with the arrays it generated
    return arrays
