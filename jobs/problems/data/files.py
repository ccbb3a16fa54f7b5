"""The data folder's layout: which files each dataset needs and where (torch-free).

One sub-folder per dataset, named like the problems' prefix, holding the
files as their official archives unpack::

    <data_dir>/mnist/     train-images-idx3-ubyte[.gz] train-labels-idx1-ubyte[.gz]
                          t10k-images-idx3-ubyte[.gz]  t10k-labels-idx1-ubyte[.gz]
    <data_dir>/fmnist/    the same four names (Fashion-MNIST keeps MNIST's)
    <data_dir>/cifar10/cifar-10-batches-py/   data_batch_1 … data_batch_5, test_batch
    <data_dir>/cifar100/cifar-100-python/     train, test
    <data_dir>/svhn/      train_32x32.mat, test_32x32.mat
    <data_dir>/tolstoi/   war_and_peace.txt

Nothing is downloaded: a missing file is a :class:`MissingDataError` whose
message names the files, the folder and where to get them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


class MissingDataError(FileNotFoundError):
    """A dataset's files are not in the data folder; the message is one sentence for the user."""


@dataclass(frozen=True)
class DatasetFiles:
    title: str
    folder: str  # relative to the data folder
    files: tuple[str, ...]
    source: str  # where to get the files and how to unpack them
    gzip_ok: bool = False  # each file may also be present as <name>.gz

    def find(self, data_dir: Path, name: str) -> Path | None:
        for candidate in (name, f"{name}.gz") if self.gzip_ok else (name,):
            path = data_dir / self.folder / candidate
            if path.is_file():
                return path
        return None

    def how_to_get(self, data_dir: str | Path | None) -> str:
        return self.source.replace("<data_dir>", "<data_dir>" if data_dir is None else str(data_dir))

    def missing(self, data_dir: str | Path | None) -> list[str]:
        """The files not found (all of them without a data folder)."""
        if data_dir is None:
            return list(self.files)
        return [name for name in self.files if self.find(Path(data_dir), name) is None]


DATASETS: dict[str, DatasetFiles] = {
    "mnist": DatasetFiles(
        "MNIST", "mnist", IDX_FILES, gzip_ok=True,
        source="the four IDX files of http://yann.lecun.com/exdb/mnist/ (gzipped or not)",
    ),
    "fmnist": DatasetFiles(
        "Fashion-MNIST", "fmnist", IDX_FILES, gzip_ok=True,
        source="the four IDX files of https://github.com/zalandoresearch/fashion-mnist (data/fashion, gzipped or not)",
    ),
    "cifar10": DatasetFiles(
        "CIFAR-10", "cifar10/cifar-10-batches-py",
        tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch",),
        source="cifar-10-python.tar.gz of https://www.cs.toronto.edu/~kriz/cifar.html, "
               "unpacked with tar xzf cifar-10-python.tar.gz -C <data_dir>/cifar10",
    ),
    "cifar100": DatasetFiles(
        "CIFAR-100", "cifar100/cifar-100-python", ("train", "test"),
        source="cifar-100-python.tar.gz of https://www.cs.toronto.edu/~kriz/cifar.html, "
               "unpacked with tar xzf cifar-100-python.tar.gz -C <data_dir>/cifar100",
    ),
    "svhn": DatasetFiles(
        "SVHN", "svhn", ("train_32x32.mat", "test_32x32.mat"),
        source="the cropped-digit files (format 2) of http://ufldl.stanford.edu/housenumbers/",
    ),
    "tolstoi": DatasetFiles(
        "Tolstoi's War and Peace", "tolstoi", ("war_and_peace.txt",),
        source="the novel as UTF-8 plain text, such as Project Gutenberg eBook 2600 (DeepOBS's source), "
               "saved as war_and_peace.txt",
    ),
}


def dataset_paths(dataset: str, data_dir: str | Path | None, problem: str) -> dict[str, Path]:
    """File name → path of every file ``dataset`` needs, or :class:`MissingDataError` naming what is missing."""
    files = DATASETS[dataset]
    missing = files.missing(data_dir)
    if missing:
        raise MissingDataError(missing_sentence(problem, files, data_dir, missing))
    return {name: files.find(Path(data_dir), name) for name in files.files}


def missing_sentence(problem: str, files: DatasetFiles, data_dir: str | Path | None, missing: list[str]) -> str:
    names = ", ".join(files.files) + (" (each may be gzipped)" if files.gzip_ok else "")
    if data_dir is None:
        return (f"Problem {problem} needs {files.title} ({names}) in <data_dir>/{files.folder}, but no data folder "
                f"is set: set data_dir=PATH or the environment variable OPTBENCH_DATA; get {files.how_to_get(None)}.")
    return (f"Problem {problem} needs {files.title} in {Path(data_dir) / files.folder}: {names}; missing "
            f"{', '.join(missing)}; get {files.how_to_get(data_dir)}.")
