"""Jobs inside an Apptainer/Singularity image: the settings, the checks, the command submitit starts.

submitit starts a job as ``<python> -u -m submitit.core._submit <folder>``;
with a container, ``<python>`` becomes ``apptainer exec --contain … IMAGE env
… python3``, so the pickled call runs on the image's Python and packages, for
the local and the Slurm launcher alike.

What a job sees of the host is what it needs and what the user declared,
each bound at its own path: the results folder (run folders, and the sweep
folder with submitit's files), the data folder, this source tree with
``container.dev=true``, ``container.binds``, and, when W&B runs online, W&B's
login files read-only (see :func:`wandb_login_files`). ``--contain`` keeps
out the rest that Apptainer binds by default: the home folder, /tmp and
/var/tmp become empty, writable, in-memory folders of the container (W&B,
torch and others may keep caches there), the working directory is not bound
(the job starts in that empty home), and ``--no-mount hostfs`` keeps out the
host's file systems should apptainer.conf mount them. What the
administrator binds for every container (``bind path`` in apptainer.conf,
typically /etc/hosts and /etc/localtime) stays. The host environment passes
through (no ``--cleanenv``): Slurm's and submitit's variables, and the GPUs
Slurm assigned, must reach the job; ``--nv`` adds the GPU devices. The job's
Python settings go through ``env`` in the image, not ``--env``, whose values
Apptainer would evaluate in a shell.

Everything a job could trip over is checked here, once, before anything is
written or submitted: the runtime is on PATH, the image exists and holds a
compatible optbench, every bind source exists, and no path would be misread
as Apptainer's bind syntax (commas, and colons in the folders optbench binds).
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from importlib import metadata
from pathlib import Path
from typing import Any

from jobs.provenance import code_version
from jobs.schema import Param, validate_params
from orchestrator.errors import UserError

RUNTIMES = ("apptainer", "singularity")
SOURCE_ROOT = Path(__file__).resolve().parents[1]
PROBE_TIMEOUT_S = 300

# Run inside the image: what a job would import, and the versions it would see.
PROBE = """
import json, platform, sys
from importlib import metadata
found = {"python": platform.python_version()}
for name in ("optbench", "torch", "submitit", "numpy", "wandb"):
    try:
        found[name] = metadata.version(name)
    except metadata.PackageNotFoundError:
        found[name] = None
try:
    import jobs.entry
    found["jobs"] = jobs.entry.__file__
except Exception as error:
    found["jobs"] = None
    found["import_error"] = f"{type(error).__name__}: {error}"
found["plugins"] = {}
for kind, target in json.loads(sys.argv[1]) if found["jobs"] else []:
    try:
        from jobs import plugins, provenance
        plugin = plugins.load(kind, target)
        found["plugins"][target] = {"code_hash": plugin.code_hash, **provenance.describe_plugin(plugin)}
    except Exception as error:
        found["plugins"][target] = {"error": str(error)}
print("OPTBENCH-PROBE " + json.dumps(found))
"""


#: ``conf/container/apptainer.yaml``'s settings (singularity.yaml has the same); see that file for what each means.
SCHEMA = {
    "runtime": Param("str", choices=RUNTIMES),
    "image": Param("str", nullable=True),
    "nv": Param("bool_or_auto"),
    "binds": Param("strs", nullable=True, nonempty=True),
    "dev": Param("bool"),
    "python": Param("str", nonempty=True),
}


@dataclass(frozen=True)
class ContainerSettings:
    """A container's settings, built from a full ``container`` config; a null ``binds`` is none."""

    runtime: str
    image: str
    nv: bool | str
    binds: tuple[str, ...]
    dev: bool
    python: str

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> ContainerSettings | None:
        """None when the sweep runs without a container (``container=none``)."""
        if not config or config.get("runtime") is None:
            return None
        values = validate_params("container", "the container", SCHEMA, config)
        if not values["image"]:
            raise UserError("A container needs an image: add container.image=PATH to a .sif file "
                            "(build one with: optbench image build).")
        return cls(**{**values, "binds": tuple(values["binds"] or ())})


@dataclass(frozen=True)
class Container:
    """A checked image and how to run a job's Python in it."""

    runtime: str
    binary: str
    runtime_version: str
    image: Path
    sha256: str
    inside: dict[str, Any]  # versions the probe found in the image
    binds: tuple[str, ...]
    nv: bool
    dev: bool
    python: str
    code: dict[str, Any] | None = None  # dev mode: the bound tree's commit, read on the host
    plugin_paths: tuple[str, ...] = ()  # dev mode: the plugins' source folders, bound and importable

    def exec_args(self) -> list[str]:
        """``apptainer exec …`` up to the program to run: the options, the image, ``env`` and Python's settings."""
        args = [self.binary, "exec", "--contain", "--no-mount", "hostfs"]
        if self.nv:
            args.append("--nv")
        for bind in self.binds:
            args += ["--bind", bind]
        # The image's packages, not what the host's environment (passed through) points at, nor a jobs/ folder
        # in the working directory (`python -m` would put it first on sys.path):
        path = os.pathsep.join([str(SOURCE_ROOT), *self.plugin_paths]) if self.dev else ""
        return [*args, str(self.image), "env", f"PYTHONPATH={path}", "PYTHONNOUSERSITE=1", "PYTHONSAFEPATH=1"]

    def python_command(self) -> str:
        """What submitit runs instead of the host's interpreter (a shell command line)."""
        return shlex.join([*self.exec_args(), self.python])

    def record(self) -> dict[str, Any]:
        """What a run's provenance and the sweep folder keep about the container."""
        return {"runtime": self.runtime, "runtime_version": self.runtime_version, "image": str(self.image),
                "sha256": self.sha256, "dev": self.dev, "nv": self.nv, "python": self.python,
                "binds": list(self.binds), "command": self.python_command(), "inside": self.inside,
                "plugin_paths": list(self.plugin_paths), **({"code": self.code} if self.code else {})}


@dataclass(frozen=True)
class PluginCode:
    """A plugin a sweep uses, as this machine has it: the image must have the same code."""

    kind: str
    name: str
    target: str
    code_hash: str
    source: str | None  # its source folder when no installed package holds it (bound in dev mode)


def prepare(settings: ContainerSettings, bind_paths: Iterable[Path], gpus: bool, online: bool = False,
            plugins: Iterable[PluginCode] = ()) -> Container:
    """Check ``settings`` against this machine and the image; one sentence for the first problem found.

    ``bind_paths`` are the folders every job needs (results, data); they
    are bound at the same path inside, as are the settings' extra binds.
    ``online``: the jobs log to W&B online, so W&B's login files are bound
    read-only (see :func:`wandb_login_files`). ``plugins``: every one must
    import inside with the code it has here; in development mode their
    source folders are bound, like this source tree.
    """
    binary = find_runtime(settings.runtime)
    image = Path(settings.image).expanduser().resolve()
    if not image.is_file():
        raise UserError(f"container.image={settings.image} does not exist; build an image with "
                        f"'optbench image build' or give the path to an existing .sif file.")
    plugins = list(plugins)
    sources = sorted({p.source for p in plugins if p.source}) if settings.dev else []
    if settings.dev and not (SOURCE_ROOT / "pyproject.toml").is_file():
        raise UserError(f"container.dev=true binds optbench's source tree, but this optbench is installed "
                        f"without one ({SOURCE_ROOT}); run it from a clone, or set container.dev=false.")
    binds = bind_specs([*bind_paths, *([SOURCE_ROOT] if settings.dev else []), *map(Path, sources)], settings.binds,
                       read_only=wandb_login_files() if online else ())
    nv = gpus if settings.nv == "auto" else bool(settings.nv)
    container = Container(settings.runtime, binary, runtime_version(binary), image, "", {}, binds, nv,
                          settings.dev, settings.python, plugin_paths=tuple(sources))
    inside = probe(container, [(p.kind, p.target) for p in plugins])
    _check_inside(container, inside)
    _check_plugins_inside(container, inside, plugins)
    code = code_version() if settings.dev else None
    return replace(container, sha256=sha256_of(image), inside=inside, code=code)


def find_runtime(runtime: str) -> str:
    """The runtime's binary on PATH."""
    binary = shutil.which(runtime)
    if binary is None:
        other = RUNTIMES[1 - RUNTIMES.index(runtime)]
        hint = f"; or set container={other} if this cluster has that instead" if shutil.which(other) else ""
        raise UserError(f"container.runtime={runtime} but {runtime!r} is not on PATH: "
                        f"install it or load its module{hint}.")
    return binary


def wandb_login_files() -> list[Path]:
    """What W&B reads on the host to log in, which a contained home would not have.

    Those that exist of: the netrc file (``$NETRC``, default ~/.netrc), unless
    WANDB_API_KEY is set (the environment passes through), and W&B's settings
    file, which names its server (a self-hosted one, say).
    """
    files = [] if os.environ.get("WANDB_API_KEY") else [Path(os.environ.get("NETRC") or Path.home() / ".netrc")]
    files.append(Path(os.environ.get("WANDB_CONFIG_DIR") or Path.home() / ".config" / "wandb") / "settings")
    return [file.expanduser().absolute() for file in files if file.expanduser().is_file()]


def bind_specs(paths: Iterable[Path], extra: Iterable[str], read_only: Iterable[Path] = ()) -> tuple[str, ...]:
    """``--bind`` entries: the needed folders at their own path, the extra ``SRC[:DST[:OPTS]]``, the read-only files.

    A ``read_only`` file is bound at the path the host knows it by (its
    source may be a link to elsewhere).
    """
    specs: list[str] = []
    for path in paths:
        if not Path(path).exists():
            raise UserError(f"The folder {path} does not exist, so it cannot be bound into the container; "
                            "create it or point the setting that names it elsewhere.")
        specs.append(_bindable(Path(path).resolve()))
    for spec in extra:
        source = spec.split(":", 1)[0]
        if not Path(source).expanduser().exists():
            raise UserError(f"container.binds names {source}, which does not exist on this machine; "
                            "create it or remove it from container.binds.")
        specs.append(spec)
    specs += [f"{_bindable(file.resolve())}:{_bindable(file)}:ro" for file in read_only]
    with_comma = next((spec for spec in specs if "," in spec), None)
    if with_comma:
        raise UserError(f"Cannot bind {with_comma}: Apptainer separates binds with commas; "
                        "use a path without a comma.")
    return tuple(dict.fromkeys(specs))


def _bindable(path: Path) -> str:
    """``path`` as a bind's source or destination, which Apptainer splits at colons."""
    if ":" in str(path):
        raise UserError(f"Cannot bind {path}: Apptainer reads a colon in a bind as the start of its "
                        "destination; use a path without a colon.")
    return str(path)


def runtime_version(binary: str) -> str:
    """``1.4.5`` from ``apptainer version 1.4.5``; the whole answer when it has another form."""
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=60)
    text = (out.stdout or out.stderr).strip()
    return text.rsplit(" ", 1)[-1] if text else "unknown"


def probe(container: Container, plugins: Iterable[tuple[str, str]] = ()) -> dict[str, Any]:
    """Versions, the job module and the ``(kind, target)`` plugins as the image's Python sees them.

    Run with this sweep's binds and environment, so it sees what a job would.
    """
    try:
        out = subprocess.run([*container.exec_args(), container.python, "-c", PROBE, json.dumps(list(plugins))],
                             capture_output=True, text=True, timeout=PROBE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise UserError(f"The image {container.image} did not answer within {PROBE_TIMEOUT_S} s; "
                        "check that it is a working optbench image.") from None
    line = next((x for x in out.stdout.splitlines() if x.startswith("OPTBENCH-PROBE ")), None)
    if out.returncode != 0 or line is None:
        reason = (out.stderr.strip().splitlines() or [f"exit status {out.returncode}"])[-1]
        raise UserError(f"{container.runtime} could not run {container.python} in {container.image} ({reason}); "
                        "use an image built by 'optbench image build', or set container.python.")
    return json.loads(line.removeprefix("OPTBENCH-PROBE "))


def _check_inside(container: Container, inside: Mapping[str, Any]) -> None:
    here = project_version()
    if container.dev:
        if inside.get("jobs") is None:
            raise UserError(f"The source tree {SOURCE_ROOT} does not import in {container.image} "
                            f"({inside.get('import_error')}); rebuild the image with 'optbench image build'.")
        return
    if inside.get("optbench") is None or inside.get("jobs") is None:
        raise UserError(f"The image {container.image} has no optbench inside; build one with 'optbench image "
                        "build', or set container.dev=true to run this source tree with the image's packages.")
    if inside["optbench"] != here:
        raise UserError(f"The image {container.image} has optbench {inside['optbench']} but this is {here}; "
                        "rebuild it with 'optbench image build', or set container.dev=true to run this "
                        "source tree with the image's packages.")


def _check_plugins_inside(container: Container, inside: Mapping[str, Any], plugins: Iterable[PluginCode]) -> None:
    """Every plugin imports in the image with the code it has here (a one-time check before anything runs)."""
    remedy = ("build an image that carries it (optbench image build NAME --plugin PATH_OR_REQUIREMENT), or set "
              "container.dev=true to bind its source folder")
    for plugin in plugins:
        found = inside.get("plugins", {}).get(plugin.target, {})
        what = f"The {plugin.kind} {plugin.name} ({plugin.target})"
        if "code_hash" not in found:
            reason = found.get("error") or "the image did not say"
            raise UserError(f"{what} does not load inside {container.image} ({reason}); {remedy}.")
        if found["code_hash"] != plugin.code_hash:
            version = f"{found.get('distribution')} {found.get('version')}" if found.get("distribution") else "it"
            raise UserError(f"{what} has other code inside {container.image} ({version}, code_hash "
                            f"{found['code_hash']}) than here ({plugin.code_hash}); {remedy}.")


def project_version() -> str | None:
    try:
        return metadata.version("optbench")
    except metadata.PackageNotFoundError:
        return None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()
