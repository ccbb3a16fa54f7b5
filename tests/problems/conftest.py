"""A data folder with tiny files of every dataset, in the real formats, written once per session."""

from __future__ import annotations

import pytest
import torch
from problem_files import write_all


@pytest.fixture(scope="session")
def written(tmp_path_factory):
    """(data folder, what was written there: dataset → arrays or text)."""
    folder = tmp_path_factory.mktemp("data")
    return folder, write_all(folder)


@pytest.fixture(scope="session")
def data_dir(written):
    return written[0]


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny batches gain nothing from threads, and lose a lot when the cores are busy with other work."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
