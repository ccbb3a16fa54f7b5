"""The wheel holds the whole project: every package, conf/ as orchestrator/conf, the dashboard's files."""

from __future__ import annotations

import tomllib
import zipfile

from plugin_support import REPO


def test_the_listed_packages_are_the_trees_packages():
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(REPO).parts) for top in ("orchestrator", "jobs", "analysis")
             for p in (REPO / top).rglob("__init__.py")}
    assert listed == found | {"orchestrator.conf"}


def test_the_wheel_ships_the_configs_and_the_dashboard(installed):
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    configs = {f"orchestrator/conf/{p.relative_to(REPO / 'conf')}" for p in (REPO / "conf").rglob("*.yaml")}
    static = {f"orchestrator/dashboard/static/{p.name}" for p in (REPO / "orchestrator/dashboard/static").iterdir()}
    assert configs and configs <= names and static <= names
    assert "analysis/templates/report.html.j2" in names
    assert not any(name.startswith(("tests/", "conf/", "benchmarks/")) for name in names)
