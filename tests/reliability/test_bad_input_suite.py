"""Malformed and hostile input across the CLI, config, sweep files, images, data folders, run ids and results folders.

Each case must end in one sentence on stderr (``optbench: error: …``), exit
status 2, no traceback, nothing written (a fresh results folder is not
created; an existing one is unchanged, file by file) and no Slurm job
submitted. ``tests/test_bad_input.py`` holds further malformed overrides.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from components import require_apptainer, require_slurm

from orchestrator.cli import main

PROJECT_CONF = Path(__file__).resolve().parents[2] / "conf"
TINY = ("problem=rosenbrock", "problem.steps_per_epoch=10", "train.epochs=1", "logger=disabled")

#: (id, arguments, a phrase the sentence must contain). ``{R}`` is the results folder, ``{T}`` the test's tmp
#: folder (which holds ``not-an-image.sif``, ``empty-data/`` and ``a-file``), ``{S}`` the existing sweep's id.
CASES = [
    ("cli: watch interval 0", ["status", "{S}", "--watch", "0"], "--watch takes a positive number"),
    ("cli: quantile above 1", ["aggregate", "{S}", "--quantiles", "0.5,1.5"], "strictly between 0 and 1"),
    ("cli: quantiles not numbers", ["aggregate", "{S}", "--quantiles", "a,b"], "numbers separated by commas"),
    ("cli: zero seeds", ["tune", *TINY, "--seeds", "0"], "--seeds takes a positive count"),
    ("cli: zero log lines", ["logs", "0123456789ab", "--lines", "0"], "--lines takes a positive count"),
    ("cli: dashboard refresh 0", ["dashboard", "--refresh", "0"], "--refresh takes a positive number"),
    ("override: unknown W&B mode", ["launch", *TINY[:-1], "logger.mode=sometimes"], "logger.mode must be one of"),
    ("override: W&B online without a key", ["launch", *TINY[:-1], "logger=online"], "needs an API key"),
    ("override: negative heartbeat", ["launch", *TINY, "logger.heartbeat_seconds=-1"], "logger.heartbeat_seconds"),
    ("override: unknown device", ["launch", *TINY, "device=tpu"], "device must be one of"),
    ("override: float16", ["launch", *TINY, "precision=float16"], "precision must be one of"),
    ("override: negative seed", ["launch", *TINY, "seed=-1"], "seed"),
    ("override: batch size 0", ["launch", *TINY, "train.batch_size=0"], "train.batch_size"),
    ("override: no parallel runs", ["launch", *TINY, "launcher.max_parallel=0"], "launcher.max_parallel"),
    ("slurm: unknown partition", ["launch", *TINY, "launcher=slurm", "launcher.partition='gpu;touch {T}/pwned'"],
     "no partition"),
    ("slurm: more GPUs than a node has", ["launch", *TINY, "launcher=slurm", "launcher.gpus_per_node=99"],
     "at most 2 GPUs"),
    ("slurm: time over the partition's limit", ["launch", *TINY, "launcher=slurm", "launcher.time_min=999999"],
     "limit of"),
    ("slurm: unknown launcher key", ["launch", *TINY, "launcher=slurm", "launcher.bogus=1"], "launcher.bogus"),
    ("sweep file: not YAML", ["launch", "sweep=broken"], "is not valid YAML"),
    ("sweep file: params not a mapping", ["launch", "sweep=flat"], "must map override keys"),
    ("sweep file: protocol not a mapping", ["launch", "sweep=badprotocol"], "must be a mapping"),
    ("sweep file: unknown key", ["launch", "sweep=typo"], "unknown key 'parms'"),
    ("image: missing", ["launch", *TINY, "container=apptainer", "container.image={T}/missing.sif"], "does not exist"),
    ("image: not an image", ["launch", *TINY, "container=apptainer", "container.image={T}/not-an-image.sif"],
     "could not run"),
    ("image: missing bind source", ["launch", *TINY, "container=apptainer", "container.image={T}/not-an-image.sif",
                                    "container.binds=[{T}/nowhere]"], "does not exist on this machine"),
    ("data: not a folder", ["launch", "problem=mnist_mlp", "data_dir={T}/a-file"], "is not a folder"),
    ("data: no dataset files", ["launch", "problem=mnist_mlp", "data_dir={T}/empty-data"], "missing"),
    ("run id: a path", ["logs", "../../etc"], "is not a run id"),
    ("run id: rerun of a run that never started", ["rerun", "0123456789ab"], "has no spec.yaml"),
    ("run id: not in the sweep", ["cancel", "{S}", "deadbeef0000"], "is not part of sweep"),
    ("sweep ref: a path", ["status", "../{S}"], "never a path"),
    ("sweep ref: unknown", ["status", "nosuchsweep"], "No sweep 'nosuchsweep'"),
    ("results: missing folder", ["status", "{S}", "--results", "{T}/nowhere"], "There is no results folder"),
    ("results: under a file", ["launch", *TINY, "--results", "{T}/a-file/results"], "Cannot write to the results"),
    ("results: not a results folder", ["dashboard", "--results", "{T}"], "is not an optbench results folder"),
]
SWEEP_FILES = {
    "broken": "params:\n  optimizer: [sgd\n",
    "flat": "params: 3\n",
    "badprotocol": "params:\n  optimizer.lr: 0.1\nprotocol: deepobs\n",
    "typo": "parms:\n  optimizer.lr: 0.1\n",
}


@pytest.fixture(scope="module")
def existing(tmp_path_factory) -> tuple[Path, str]:
    """A results folder with one completed local sweep: bad input must leave it as it is."""
    results = tmp_path_factory.mktemp("existing") / "results"
    assert main(["launch", *TINY, "--results", str(results)]) == 0
    (sweep_dir,) = (results / "sweeps").iterdir()
    return results, sweep_dir.name


@pytest.fixture
def conf(tmp_path, monkeypatch) -> Path:
    """optbench's config tree plus the broken sweep files of the cases."""
    root = tmp_path / "conf"
    shutil.copytree(PROJECT_CONF, root)
    for name, text in SWEEP_FILES.items():
        (root / "sweep" / f"{name}.yaml").write_text(text)
    monkeypatch.setenv("OPTBENCH_CONF", str(root))
    return root


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}


def slurm_jobs() -> set[str]:
    out = subprocess.run(["sacct", "-n", "-X", "-P", "-o", "JobID", "-S", "now-1days"], capture_output=True,
                         text=True, timeout=60).stdout
    return set(out.split())


@pytest.mark.parametrize("args, phrase", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_sentence_and_changes_nothing(args, phrase, existing, conf, tmp_path, capsys):
    require_slurm()
    require_apptainer()
    results, sweep_id = existing
    (tmp_path / "not-an-image.sif").write_text("not an image\n")
    (tmp_path / "empty-data").mkdir()
    (tmp_path / "a-file").write_text("a file\n")
    uses_existing = "{S}" in " ".join(args) or args[0] in ("logs", "rerun", "cancel", "status")
    target = results if uses_existing else tmp_path / "fresh-results"
    argv = [a.format(R=target, T=tmp_path, S=sweep_id) for a in args]
    if "--results" not in argv:
        argv += ["--results", str(target)]
    before, jobs_before = snapshot(results), slurm_jobs()

    code = main(argv)
    out, err = capsys.readouterr()

    message = " ".join(err.split())
    assert code == 2, (out, err)
    assert message.startswith("optbench: error: ") and phrase in message, message
    assert "Traceback" not in err and message.endswith(".") and len(message) < 600
    assert snapshot(results) == before, "an existing results folder must not change"
    assert not (tmp_path / "fresh-results").exists(), "a rejected command must not create the results folder"
    assert slurm_jobs() == jobs_before, "nothing may be submitted"
    assert not (tmp_path / "pwned").exists()

