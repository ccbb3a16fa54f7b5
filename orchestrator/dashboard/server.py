"""``optbench dashboard``: check the results folder and the port, then serve the application with uvicorn."""

from __future__ import annotations

import errno
import socket
from collections.abc import Sequence
from pathlib import Path

import uvicorn
from rich.console import Console

from analysis.collect import SweepData
from orchestrator.analysis_commands import deepobs_baselines
from orchestrator.dashboard.app import create_app
from orchestrator.errors import UserError
from orchestrator.store import ResultsStore


def serve(store: ResultsStore, host: str, port: int, refresh_seconds: float, console: Console,
          deepobs: Sequence[Path] = ()) -> int:
    """Serve the dashboard of ``store`` (and the DeepOBS baselines in ``deepobs``) on ``host:port`` until Ctrl-C."""
    check_results_folder(store)
    baselines = load_baselines(deepobs)
    listener = bind(host, port)
    server = uvicorn.Server(uvicorn.Config(create_app(store, refresh_seconds, baselines), log_level="warning",
                                           lifespan="off"))
    console.print(f"Dashboard of {store.root} on {url(listener)} (Ctrl-C stops it)", highlight=False, soft_wrap=True)
    try:
        server.run(sockets=[listener])
    except KeyboardInterrupt:
        pass  # uvicorn has shut down and raises the signal again for us
    finally:
        listener.close()
    return 0


def check_results_folder(store: ResultsStore) -> None:
    """A folder ``optbench launch`` wrote into (one with ``runs/`` or ``sweeps/``), or an empty one to launch into.

    An empty folder is accepted so the dashboard can be started first (``make
    services-up`` creates ``results/``) and show sweeps as they are launched.
    """
    store.check_exists()
    if not store.runs_dir.is_dir() and not store.sweeps_dir.is_dir() and any(store.root.iterdir()):
        raise UserError(f"{store.root} is not an optbench results folder (it has neither runs/ nor sweeps/); "
                        "pass the one you launched into with --results DIR.")


def load_baselines(folders: Sequence[Path]) -> dict[str, SweepData]:
    """Folder name (``-2``, ``-3`` … when names repeat) → its DeepOBS results, read once before serving."""
    baselines: dict[str, SweepData] = {}
    for folder in folders:
        name, count = Path(folder).name or "deepobs", 1
        while name in baselines:
            count += 1
            name = f"{Path(folder).name}-{count}"
        baselines[name] = deepobs_baselines(Path(folder))
    return baselines


def bind(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port``, so a port in use is reported here in one sentence, not by uvicorn."""
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if not 0 <= port <= 65535:
        raise UserError(f"Cannot listen on {where}: --port takes a number from 0 (any free port) to 65535.")
    try:
        family, kind, protocol, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                                flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as error:
        raise UserError(f"Cannot listen on {where} ({error.strerror.lower()}); pass an address of this machine "
                        "with --host.") from None
    listener = socket.socket(family, kind, protocol)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # restart at once after a stop, like uvicorn
    try:
        listener.bind(address)
    except OSError as error:
        listener.close()
        if error.errno == errno.EADDRINUSE:
            raise UserError(f"{where} is already in use; pass another port with --port.") from None
        raise UserError(f"Cannot listen on {where} ({(error.strerror or str(error)).lower()}); "
                        "pass another address with --host or port with --port.") from None
    return listener


def url(listener: socket.socket) -> str:
    host, port = listener.getsockname()[:2]
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"
