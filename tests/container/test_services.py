"""containers/singularity-compose.yml brings the dashboard of a results folder up as a real Apptainer instance."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import yaml
from monitor_support import make_mixed_sweep

COMPOSE = Path(__file__).resolve().parents[2] / "containers" / "singularity-compose.yml"
SCOMPOSE = Path(sys.executable).parent / "singularity-compose"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def fetch(url: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:
                return answer.read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def test_the_dashboard_runs_as_an_instance(cpu_image, tmp_path):
    """The project's compose file, with this test's image, a results folder with a real sweep and a free port."""
    spec = yaml.safe_load(COMPOSE.read_text())
    service = spec["instances"]["results"]
    assert service["start"]["args"][:2] == ["optbench", "dashboard"]
    port = free_port()
    results = tmp_path / "results"
    mixed = make_mixed_sweep(results)
    (mixed.sweep_dir / "report.html").write_text("<h1>demo report</h1>")
    service["image"] = str(cpu_image)
    service["volumes"] = [f"{results}:/results"]
    service["start"]["args"] = [str(port) if arg == "8765" else arg for arg in service["start"]["args"]]
    (tmp_path / "singularity-compose.yml").write_text(yaml.safe_dump(spec))
    compose = [str(SCOMPOSE)]
    base = f"http://127.0.0.1:{port}/"
    try:
        up = subprocess.run([*compose, "up"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert up.returncode == 0, up.stdout + up.stderr
        listed = subprocess.run([*compose, "ps"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert "results1" in listed.stdout and cpu_image.name in listed.stdout, listed.stdout
        (sweep,) = json.loads(fetch(f"{base}api/sweeps"))["sweeps"]
        assert sweep["sweep_id"] == mixed.sweep_dir.name
        assert sweep["counts"] == {"running": 1, "failed": 1, "pending": 1, "completed": 1}
        assert fetch(f"{base}{sweep['report']}") == "<h1>demo report</h1>"
        assert json.loads(fetch(f"{base}api/config"))["results"] == "/results"
        # the page and what it loads come from the image's install (package data, Plotly.js from plotly)
        assert "<title>optbench dashboard</title>" in fetch(base)
        assert "Plotly.react" in fetch(f"{base}static/dashboard.js")
        assert len(fetch(f"{base}plotly.min.js")) > 1_000_000
    finally:
        subprocess.run([*compose, "down"], cwd=tmp_path, capture_output=True, timeout=120)
    gone = subprocess.run(["apptainer", "instance", "list"], capture_output=True, text=True).stdout
    assert "results1" not in gone
