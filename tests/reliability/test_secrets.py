"""No secret of the launching environment reaches a file that a sweep writes.

A W&B API key, cloud and Hugging Face tokens and a netrc password are set in
the environment of a real sweep: array tasks on the real Slurm, inside the
real CPU image, W&B offline (with a key set, ``logger=auto`` would go
online), then aggregated and reported. Every file under the results folder
(run folders, W&B's offline runs, the sweep folder with submitit's job
scripts, pickles and logs, the aggregate and the report) is read as bytes and
searched for every secret, raw and base64-, hex- and URL-encoded.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import pickle
import re
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from components import require_slurm
from slurm.slurm_helpers import sacct, wait_until_final

from orchestrator import slurmctl

RUNS = ("problem=quadratic_deep", "train.epochs=1", "seed=1,2", "logger=offline")
SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSW", re.IGNORECASE)


def encodings(secret: str) -> dict[str, bytes]:
    """The secret as it could appear in a file: raw, hex, URL-quoted, and base64 at each of the 3 alignments.

    base64 of a longer text that contains the secret holds, at one of three
    offsets, the characters that depend on the secret's bytes alone.
    """
    raw = secret.encode()
    found = {"raw": raw, "hex": raw.hex().encode(), "HEX": raw.hex().upper().encode(),
             "url-quoted": quote(secret, safe="").encode()}
    for shift in range(3):
        for name, encode in (("base64", base64.b64encode), ("base64url", base64.urlsafe_b64encode)):
            encoded = encode(b"\0" * shift + raw)
            first, end = (1 if shift else 0), (shift + len(raw)) // 3
            found[f"{name}+{shift}"] = encoded[4 * first:4 * end]
    return found


def files_under(root: Path) -> Iterator[Path]:
    """Every regular file below ``root``, links not followed (W&B links its logs to the home's cache)."""
    for folder, _, names in os.walk(root):
        for name in names:
            path = Path(folder) / name
            if path.is_file() and not path.is_symlink():
                yield path


def scan(root: Path, secrets_by_name: dict[str, str]) -> tuple[list[Path], int, list[str]]:
    """The files read below ``root``, their total size, and a line for each secret found in one of them."""
    needles = {(name, form): text for name, secret in secrets_by_name.items()
               for form, text in encodings(secret).items()}
    scanned, size, hits = [], 0, []
    for path in files_under(root):
        data = path.read_bytes()
        scanned.append(path.relative_to(root))
        size += len(data)
        hits += [f"{name} ({form}) in {path.relative_to(root)}" for (name, form), needle in needles.items()
                 if needle in data]
    return scanned, size, hits


def keys(data) -> Iterator[str]:
    if isinstance(data, dict):
        for key, value in data.items():
            yield str(key)
            yield from keys(value)
    elif isinstance(data, list):
        for value in data:
            yield from keys(value)


@pytest.fixture
def secret_environment(monkeypatch, tmp_path) -> dict[str, str]:
    """Secret-looking variables in the environment the sweep is launched from, and a netrc file with a password."""
    values = {"WANDB_API_KEY": secrets.token_hex(20), "AWS_SECRET_ACCESS_KEY": secrets.token_urlsafe(30),
              "HF_TOKEN": f"hf_{secrets.token_urlsafe(24)}", "GITHUB_TOKEN": f"ghp_{secrets.token_hex(18)}"}
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    password = secrets.token_urlsafe(24)
    netrc = tmp_path / "login" / "netrc"
    netrc.parent.mkdir()
    netrc.write_text(f"machine api.wandb.ai\n  login user\n  password {password}\n")
    monkeypatch.setenv("NETRC", str(netrc))
    return {**values, "netrc password": password}


def test_no_secret_reaches_any_file_of_a_slurm_sweep_in_the_image(optbench, results, cpu_image, secret_environment,
                                                                    tmp_path):
    require_slurm()
    slurmctl.cluster_info.cache_clear()
    # Proof that the secrets were in the jobs' environment: the job script's shell writes a digest of each.
    seen = tmp_path / "seen-by-the-job"
    digest = " ".join(f'"${name}"' for name in secret_environment if name.isupper())
    status, out, err = optbench("launch", *RUNS, "launcher=slurm", "launcher.cpus_per_task=1", "container=apptainer",
                                f"container.image={cpu_image}",
                                f"launcher.setup=['for v in {digest}; do printf %s \"$v\" | sha256sum; done > {seen}']",
                                "--results", results)
    assert status == 0, err
    (sweep_dir,) = (results / "sweeps").iterdir()
    views = wait_until_final(results, sweep_dir, timeout=300)
    assert [v.state for v in views] == ["completed", "completed"], [v.status.get("error") for v in views]
    assert set(sacct(*(v.status["job_id"] for v in views)).values()) == {"COMPLETED"}
    for command in ("aggregate", "report"):
        status, out, err = optbench(command, sweep_dir.name, "--results", results)
        assert status == 0, err
    expected = [hashlib.sha256(v.encode()).hexdigest() for k, v in secret_environment.items() if k.isupper()]
    assert [line.split()[0] for line in seen.read_text().splitlines()] == expected

    started = time.monotonic()
    scanned, size, hits = scan(results, secret_environment)
    print(f"\nscanned {len(scanned)} files, {size} bytes, for {len(secret_environment)} secrets in "
          f"{len(encodings('x'))} forms each in {time.monotonic() - started:.2f} s: {len(hits)} found")
    assert hits == []

    # The scan covered run folders, W&B's offline runs, job scripts, pickles, logs, the aggregate and the report.
    names = [str(p) for p in scanned]
    for kind in (r"^runs/\w+/provenance\.json$", r"^runs/\w+/wandb/offline-run-[^/]+/run-\w+\.wandb$",
                 r"/slurm/\d+_submission\.sh$", r"/slurm/[\d_]+_submitted\.pkl$", r"/slurm/[\d_]+_result\.pkl$",
                 r"/slurm/[\d_]+_log\.out$", r"/slurm/[\d_]+_log\.err$", r"^sweeps/[^/]+/aggregate/.+\.csv$",
                 r"/report\.html$", r"^sweeps/[^/]+/jobs\.jsonl$"):
        assert any(re.search(kind, name) for name in names), f"no file matching {kind} was scanned"

    for view in views:  # provenance records no environment variable whose name looks secret
        provenance = json.loads((results / "runs" / view.run_id / "provenance.json").read_text())
        assert not [key for key in keys(provenance) if SECRET_NAME.search(key)]
        assert provenance["scheduler"]["SLURM_JOB_ID"]  # it does record the scheduler's variables


def test_the_scan_finds_a_secret_in_every_form_it_looks_for(tmp_path):
    """Planted in a pickle, in base64 at each alignment, hex-encoded, URL-quoted: each one is found."""
    secret = "p@ss/" + secrets.token_urlsafe(30)
    planted = {"x.pkl": pickle.dumps({"runtime": {"logger": {"password": secret}}}),
               "hex.txt": b"{" + secret.encode().hex().encode() + b"}",
               "url.txt": b"https://host/?token=" + quote(secret, safe="").encode() + b"&next"}
    for prefix in ("", "x", "xy"):
        planted[f"b64-{len(prefix)}.txt"] = base64.b64encode(f"{prefix}{secret}tail".encode())
        planted[f"b64url-{len(prefix)}.txt"] = base64.urlsafe_b64encode(f"{prefix}{secret}tail".encode())
    for name, data in planted.items():
        (tmp_path / name).write_bytes(data)
    (tmp_path / "clean.txt").write_text("nothing here")
    scanned, size, hits = scan(tmp_path, {"secret": secret})
    assert len(scanned) == len(planted) + 1 and size == sum(map(len, planted.values())) + len("nothing here")
    assert {hit.rsplit(" in ", 1)[1] for hit in hits} == set(planted)
