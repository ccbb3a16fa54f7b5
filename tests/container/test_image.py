"""``optbench image inspect`` on the CPU image that ``optbench image build`` made (see the cpu_image fixture)."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

from orchestrator.container import project_version

ROOT = Path(__file__).resolve().parents[2]


def test_inspect_tells_what_is_in_the_image(optbench, cpu_image):
    status, out, err = optbench("image", "inspect", cpu_image, "--json")
    assert status == 0, err
    facts = json.loads(out)
    assert facts["sha256"] == hashlib.sha256(cpu_image.read_bytes()).hexdigest()
    assert facts["size_bytes"] == cpu_image.stat().st_size
    labels, inside = facts["labels"], facts["inside"]
    # Labels written at build time agree with what the image's Python reports now.
    assert labels["optbench.version"] == inside["optbench"] == project_version()
    assert labels["python.version"] == inside["python"] and inside["python"].startswith("3.11.")  # bookworm's
    assert labels["torch.version"] == inside["torch"] == "2.13.0+cpu"  # the local CPU wheel, not a CUDA build
    assert labels["torch.cuda"] == "none"
    assert inside["jobs"].startswith("/opt/venv/")
    # The build records the commit it was built from: a real commit of this repository.
    found = subprocess.run(["git", "-C", str(ROOT), "cat-file", "-t", labels["optbench.commit"]],
                           capture_output=True, text=True)
    assert found.stdout.strip() == "commit"


def test_the_build_left_no_staging_or_build_only_files(cpu_image):
    """The staged sources, wheels and this host's pip settings (CA bundle) are not kept in the image."""
    listing = subprocess.run(["apptainer", "exec", str(cpu_image), "ls", "-A", "/opt/optbench"],
                             capture_output=True, text=True, check=True).stdout.split()
    assert sorted(listing) == ["build.json", "install-optbench.sh"]
    assert not list(cpu_image.parent.glob(".optbench-image-*"))
