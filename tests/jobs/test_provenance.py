"""Which commit a run records: optbench's own source tree, or a plugin's folder, never a stranger's repository."""

from __future__ import annotations

import subprocess

from jobs import provenance


def git(folder, *args: str) -> str:
    return subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True, check=True).stdout.strip()


def test_an_installed_copy_inside_another_repository_does_not_claim_its_commit(tmp_path, monkeypatch):
    """A virtual environment inside the user's project: optbench's files there are not that project's code."""
    git(tmp_path, "init", "-q")
    (tmp_path / "plugin").mkdir()
    (tmp_path / "plugin" / "mine.py").write_text("X = 1\n")
    (tmp_path / "site-packages").mkdir()
    git(tmp_path, "add", ".")
    git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "one")
    head = git(tmp_path, "rev-parse", "HEAD")
    monkeypatch.setattr(provenance, "SOURCE_ROOT", tmp_path / "site-packages")  # an installed optbench
    monkeypatch.delenv(provenance.BUILD_INFO_VARIABLE, raising=False)
    assert provenance.code_version.__wrapped__(tmp_path / "site-packages") == {"commit": None, "dirty": None,
                                                                               "source": None}
    # a plugin's folder in that repository answers with the repository's commit, dirty for its own files only
    assert provenance.code_version.__wrapped__(tmp_path / "plugin") == {"commit": head, "dirty": False,
                                                                       "source": "git"}
    (tmp_path / "site-packages" / "other.txt").write_text("")
    git(tmp_path, "add", "site-packages/other.txt")
    assert provenance.code_version.__wrapped__(tmp_path / "plugin")["dirty"] is False
    (tmp_path / "plugin" / "mine.py").write_text("X = 2\n")
    assert provenance.code_version.__wrapped__(tmp_path / "plugin")["dirty"] is True
