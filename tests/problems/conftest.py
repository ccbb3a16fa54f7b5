"""A data folder with tiny files of every dataset, in the real formats, written once per session."""

from __future__ import annotations

import pytest
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
def every_problem_test_on_one_thread(one_thread):
    """tests/conftest.py's ``one_thread`` for every test of this folder."""
