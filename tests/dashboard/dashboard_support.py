"""The real ``optbench dashboard`` serving a results folder, and browser pages that may fetch nothing from outside."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

OPTBENCH = Path(sys.executable).parent / "optbench"


@contextmanager
def served(results: Path, *options: str) -> Iterator[str]:
    """``optbench dashboard`` over ``results`` on a free port; yields its URL, then stops it with Ctrl-C (SIGINT)."""
    process = subprocess.Popen([str(OPTBENCH), "dashboard", "--results", str(results), "--port", "0", *options],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        match = re.search(r"on (http://127\.0\.0\.1:\d+/) \(Ctrl-C stops it\)", line)
        assert match, line + (process.stderr.read() if process.poll() is not None else "")
        assert f"Dashboard of {results}" in line
        yield match.group(1)
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=15) == 0, process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@contextmanager
def inside_page(chromium, url: str, width: int, height: int):
    """A page whose requests to anything but ``url``'s server are recorded and aborted; none may be made."""
    page = chromium.new_page(viewport={"width": width, "height": height})
    outside: list[str] = []

    def keep_inside(route):
        if route.request.url.startswith(url):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", keep_inside)
    try:
        yield page
        assert outside == []
    finally:
        page.close()
