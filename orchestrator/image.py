"""``optbench image build`` and ``optbench image inspect``: the images in ``containers/``.

A build stages exactly what the definition file's ``%files`` takes into a
fresh folder (the project's sources, the shared install script, the commit
it was built from, pip's settings of this host, the user's plugins, and for
the CPU image the local torch wheel), runs ``apptainer build`` there, and
moves the finished image into place only when the build succeeded, so a
failed build never leaves a half-written image at the path jobs use.

Both images bootstrap Debian from its mirror and take everything else from
PyPI, so they build where Docker Hub cannot be reached. They carry the same
torch version, the one installed here: the CPU image from the staged wheel,
the GPU image from the index (PyPI's Linux build of torch is the CUDA one).

Plugins (``--plugin``, repeatable) go in on top of optbench: a folder pip
can install (copied without its git, build and cache folders; its commit
and dirty flag go into the build record) or a requirement (``mypkg==1.2``),
installed from the index. The image's labels name each plugin distribution
and its version.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from orchestrator.container import SOURCE_ROOT, Container, probe, project_version, runtime_version, sha256_of
from orchestrator.errors import UserError

CONTAINERS = SOURCE_ROOT / "containers"
INSTALL_SCRIPT = "install-optbench.sh"
#: What of the source tree an image installs (pip builds the project from these).
PROJECT_FILES = ("pyproject.toml", "README.md", "orchestrator", "jobs", "analysis", "conf")
BUILDER_LABELS = "org.label-schema."  # apptainer's own labels: in --json, not in the table
#: What of a plugin's folder an image leaves out: version control, builds, caches, environments.
PLUGIN_LEFT_OUT = shutil.ignore_patterns(".git", "__pycache__", "*.pyc", "build", "dist", "*.egg-info", ".venv",
                                         ".pytest_cache", ".ruff_cache")


def definitions() -> list[str]:
    return sorted(p.stem.removeprefix("optbench-") for p in CONTAINERS.glob("optbench-*.def"))


def default_output(name: str) -> Path:
    return Path("images") / f"optbench-{name}.sif"


def runtime_binary() -> tuple[str, str]:
    """The runtime to build and inspect with: apptainer, else singularity."""
    for runtime in ("apptainer", "singularity"):
        binary = shutil.which(runtime)
        if binary:
            return runtime, binary
    raise UserError("Neither apptainer nor singularity is on PATH; install Apptainer (on this machine kind: "
                    "make apptainer) or load its module.")


@dataclass
class Built:
    path: Path
    seconds: float
    size_bytes: int
    sha256: str


def build(name: str, output: Path, torch_wheel: Path | None, console: Console,
          plugins: Sequence[str] = ()) -> Built:
    """Build ``containers/optbench-<name>.def`` into ``output``; the console shows the build's own output.

    ``plugins``: folders or requirements of the user's packages to install on top of optbench.
    """
    if not (SOURCE_ROOT / "pyproject.toml").is_file():
        raise UserError(f"optbench image build installs optbench's source tree into the image, and this optbench "
                        f"is installed without one ({SOURCE_ROOT}); run it from a clone of optbench.")
    definition = CONTAINERS / f"optbench-{name}.def"
    if not definition.is_file():
        raise UserError(f"There is no image {name!r}; choose one of: {', '.join(definitions())} "
                        f"(files optbench-NAME.def in {CONTAINERS}).")
    folders, requirements = _plugin_sources(plugins)
    text = definition.read_text()
    _, binary = runtime_binary()
    bootstrap = re.search(r"^Bootstrap:\s*(\S+)", text, re.MULTILINE)
    if bootstrap and bootstrap.group(1) == "debootstrap" and shutil.which("debootstrap") is None:
        raise UserError(f"The {name} image bootstraps Debian with debootstrap, which is not on PATH; "
                        "install it (apt-get install debootstrap).")
    output = output.expanduser().resolve()
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"Cannot create {output.parent} ({error.strerror}); choose another --output.") from None
    needs_wheels = re.search(r"^\s*wheels\s", text, re.MULTILINE) is not None
    if torch_wheel is not None and not needs_wheels:
        raise UserError(f"The {name} image installs torch {torch_version()} from the pip index, not from a wheel "
                        "file; leave out --torch-wheel.")
    wheel = _torch_wheel(torch_wheel) if needs_wheels else None

    with tempfile.TemporaryDirectory(prefix=".optbench-image-", dir=output.parent) as stage:
        context = Path(stage)
        _stage(context, definition, name, wheel, folders, requirements)
        partial = context / "image.sif"
        command = [binary, "build", *(["--fakeroot"] if needs_fakeroot() else []), str(partial), definition.name]
        console.print(f"Building {output} from {definition.name}: {' '.join(command)}")
        started = time.perf_counter()
        tail = _stream(command, context, console)
        seconds = time.perf_counter() - started
        if tail is not None:
            raise UserError(f"apptainer build of the {name} image failed ({tail}); see its output above.")
        os.replace(partial, output)
    return Built(output, seconds, output.stat().st_size, sha256_of(output))


def needs_fakeroot() -> bool:
    """Unprivileged users, and root without the full capability set (containers, CI), build with --fakeroot."""
    if os.geteuid() != 0:
        return True
    try:
        status = Path("/proc/self/status").read_text()
        last = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    except OSError:
        return False
    bounding = int(re.search(r"^CapBnd:\s*([0-9a-f]+)", status, re.MULTILINE).group(1), 16)
    return bounding != (1 << (last + 1)) - 1


def torch_version() -> str:
    """The torch version the images carry: the one installed here, without its local tag (``+cpu``)."""
    return metadata.version("torch").split("+")[0]


def _torch_wheel(given: Path | None) -> Path:
    """The CPU image's torch: the wheel given, else the one pip would install here (its find-links folders)."""
    if given is not None:
        if not given.is_file() or not given.name.startswith("torch-") or given.suffix != ".whl":
            raise UserError(f"--torch-wheel {given} is not a torch wheel file; give the path to torch-*.whl.")
        return given
    version = torch_version()
    python_tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    folders = [Path(p) for p in re.split(r"[\s]+", _pip_config().get("find-links", "")) if p]
    found = sorted(w for folder in folders if folder.is_dir() for w in folder.glob(f"torch-{version}*.whl"))
    matching = [w for w in found if f"-{python_tag}-" in w.name] or found
    if not matching:
        raise UserError(f"No torch {version} wheel in pip's find-links folders "
                        f"({', '.join(map(str, folders)) or 'none set'}); pass --torch-wheel PATH to a CPU wheel.")
    return matching[0]


def _plugin_sources(plugins: Sequence[str]) -> tuple[list[Path], list[str]]:
    """``--plugin`` values as folders pip can install and requirement strings (anything that is not a path)."""
    folders, requirements = [], []
    for plugin in plugins:
        path = Path(plugin).expanduser()
        if path.exists() or os.sep in plugin:
            if not (path / "pyproject.toml").is_file() and not (path / "setup.py").is_file():
                raise UserError(f"--plugin {plugin} is not a folder pip can install (no pyproject.toml or setup.py "
                                "in it); give the folder of your package, or a requirement such as mypkg==1.0.")
            folders.append(path.resolve())
        else:
            requirements.append(plugin)
    return folders, requirements


def _stage_plugins(folder: Path, sources: Sequence[Path], requirements: Sequence[str]) -> list[dict[str, Any]]:
    """Copy the plugin folders and write the requirements into ``folder``; what the build record keeps of them."""
    from jobs.provenance import code_version

    folder.mkdir()
    record: list[dict[str, Any]] = []
    for number, source in enumerate(sources):
        shutil.copytree(source, folder / f"{number}-{source.name}", ignore=PLUGIN_LEFT_OUT)
        version = code_version(source)
        record.append({"path": str(source), "commit": version["commit"], "dirty": version["dirty"]})
    if requirements:
        (folder / "requirements.txt").write_text("\n".join(requirements) + "\n")
        record += [{"requirement": requirement} for requirement in requirements]
    return record


def _stage(context: Path, definition: Path, name: str, wheel: Path | None, plugin_folders: Sequence[Path] = (),
           requirements: Sequence[str] = ()) -> None:
    shutil.copy2(definition, context / definition.name)
    shutil.copy2(CONTAINERS / INSTALL_SCRIPT, context / INSTALL_SCRIPT)
    src = context / "src"
    src.mkdir()
    for entry in PROJECT_FILES:
        source = SOURCE_ROOT / entry
        if source.is_dir():
            shutil.copytree(source, src / entry, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(source, src / entry)
    if wheel is not None:
        (context / "wheels").mkdir()
        _link_or_copy(wheel, context / "wheels" / wheel.name)
    _stage_pip(context / "pip")
    plugins = _stage_plugins(context / "plugins", plugin_folders, requirements)
    from jobs.provenance import code_version

    code = code_version()
    (context / "build.json").write_text(json.dumps({
        "image": name, "definition": definition.name, "commit": code["commit"], "dirty": code["dirty"],
        "optbench": project_version(), "torch": wheel.name.split("-")[1] if wheel else torch_version(),
        "built": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "build_host": socket.gethostname(), "plugins": plugins,
    }, indent=2))


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _pip_config() -> dict[str, str]:
    """This host's pip settings (config files and PIP_* variables) for the keys a build needs."""
    out = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True)
    settings: dict[str, str] = {}
    for line in out.stdout.splitlines():
        match = re.fullmatch(r"[^.]*\.([\w-]+)='(.*)'", line.strip())
        if match:
            settings[match.group(1)] = match.group(2)
    return settings


def _stage_pip(folder: Path) -> None:
    """pip settings for the build: this host's index and CA bundle (a TLS proxy's), never file:// indexes."""
    folder.mkdir()
    config = _pip_config()
    lines = ["[global]"]
    if config.get("cert") and Path(config["cert"]).is_file():
        shutil.copy2(config["cert"], folder / "ca.pem")
        lines.append("cert = /opt/optbench/pip/ca.pem")
    for key in ("index-url", "extra-index-url", "trusted-host"):
        values = [v for v in config.get(key, "").split() if not v.startswith("file:")]
        if values:
            lines.append(f"{key} = {' '.join(values)}")
    (folder / "pip.conf").write_text("\n".join(lines) + "\n")


def _stream(command: list[str], cwd: Path, console: Console) -> str | None:
    """Run ``command`` showing its output; None on success, else its last line of output."""
    tail: deque[str] = deque(maxlen=1)
    with subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          stdin=subprocess.DEVNULL) as process:
        for line in process.stdout:
            console.print(line.rstrip(), style="dim", markup=False, highlight=False)
            if line.strip():
                tail.append(line.strip())
    if process.returncode == 0:
        return None
    return tail[0] if tail else f"exit status {process.returncode}"


def inspect(path: Path) -> dict[str, Any]:
    """What an image is: its size and sha256, its labels, and the versions its Python really has."""
    image = path.expanduser().resolve()
    if not image.is_file():
        raise UserError(f"There is no image at {path}; give the path to a .sif file.")
    runtime, binary = runtime_binary()
    out = subprocess.run([binary, "inspect", "--json", "--labels", str(image)], capture_output=True, text=True)
    if out.returncode != 0:
        reason = (out.stderr.strip().splitlines() or ["no reason given"])[-1]
        raise UserError(f"{runtime} cannot read {path} as an image ({reason}); give the path to a .sif file.")
    labels = json.loads(out.stdout).get("data", {}).get("attributes", {}).get("labels") or {}
    container = Container(runtime, binary, runtime_version(binary), image, "", {}, (), False, False, "python3")
    return {"path": str(image), "size_bytes": image.stat().st_size, "sha256": sha256_of(image),
            "runtime": f"{runtime} {container.runtime_version}", "labels": labels, "inside": probe(container)}


def inspect_table(facts: dict[str, Any]) -> Table:
    table = Table(title=facts["path"], show_header=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    table.add_row("size", f"{facts['size_bytes'] / 2**20:.1f} MiB")
    table.add_row("sha256", facts["sha256"])
    table.add_row("runtime", facts["runtime"])
    for key, value in sorted(facts["labels"].items()):
        if not key.startswith(BUILDER_LABELS):
            table.add_row(f"label {key}", str(value))
    for key, value in facts["inside"].items():
        table.add_row(f"inside {key}", str(value))
    return table
