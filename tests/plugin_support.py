"""A fresh virtual environment with optbench installed from a wheel and a real plugin package installed by pip.

The environment is what a user has after ``pip install optbench`` and ``pip
install ./their-package`` in a new virtual environment, with one shortcut:
optbench's dependencies (torch, Hydra, W&B, ...) are not downloaded again but
read from the development environment through a ``.pth`` line. Neither
optbench nor the plugin package is importable from there: the development
environment has optbench only as an editable install, whose import hook a
``.pth`` path does not run, and the plugin not at all. Every command runs as a
subprocess from a folder outside the repository.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from orchestrator.image import PROJECT_FILES

REPO = Path(__file__).resolve().parents[1]
HERE = REPO / "tests" / "plugins"
TOYS = HERE / "toys"  # the plugin package: SignSGD, LinearRegression and a broken entry point
USERCONF = HERE / "userconf"  # a user config folder: Signum by target, the sweep `toys`
SOURCE = HERE / "source"  # Signum's source folder, not installed


@dataclass(frozen=True)
class Installed:
    root: Path  # the virtual environment
    python: Path
    optbench: Path
    wheel: Path

    def run(self, *args: str | Path, cwd: Path, env: dict[str, str] | None = None,
            timeout: float = 600) -> subprocess.CompletedProcess:
        """``optbench ARGS`` in ``cwd``, with W&B offline under ``cwd`` and no inherited optbench settings."""
        environment = {k: v for k, v in os.environ.items()
                       if not k.startswith(("OPTBENCH_", "WANDB_", "PYTHON"))}
        environment.update(WANDB_DIR=str(cwd / "wandb"), WANDB_SILENT="true", NETRC=str(cwd / "no-netrc"),
                           **(env or {}))
        return subprocess.run([str(self.optbench), *map(str, args)], cwd=cwd, env=environment, capture_output=True,
                              text=True, timeout=timeout)


def _pip(*args: str | Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *map(str, args)],
                   check=True, capture_output=True, text=True)


def install(root: Path) -> Installed:
    """Create the environment in ``root``: optbench's wheel and the toy plugin package, installed by pip."""
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    (site / "optbench-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    # A wheel built from a copy of the package's files, so that building it leaves nothing in the repository.
    source = root / "optbench-source"
    source.mkdir()
    for name in PROJECT_FILES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(REPO / name, source / name)
    wheels = root / "wheels"
    _pip("wheel", "--no-deps", "--no-build-isolation", "--wheel-dir", wheels, source)
    wheel = next(wheels.glob("optbench-*.whl"))
    toys = shutil.copytree(TOYS, root / "toys", ignore=shutil.ignore_patterns("__pycache__"))
    _pip("--python", python, "install", "--no-deps", "--no-build-isolation", wheel, toys)
    return Installed(venv, python, venv / "bin" / "optbench", wheel)
