"""The dashboard's web application: the page, its static files and the JSON API (routes: see the package)."""

from __future__ import annotations

import functools
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from analysis.stats import DEFAULT_QUANTILES, validate_quantiles
from orchestrator.dashboard.curves import CurveCache
from orchestrator.dashboard.progress import ProgressCache
from orchestrator.dashboard.reports import sweep_file
from orchestrator.errors import UserError
from orchestrator.store import ResultsStore

STATIC = Path(__file__).parent / "static"
#: The API's answers change with every refresh; the browser must not keep them.
NO_STORE = {"Cache-Control": "no-store"}


def create_app(store: ResultsStore, refresh_seconds: float) -> Starlette:
    """The application serving ``store``; the page polls it every ``refresh_seconds``."""
    progress = ProgressCache(store)
    curves = CurveCache(store.runs_dir)

    def sweep_dir(request: Request) -> Path:
        try:
            return store.find_sweep(request.path_params["sweep"])
        except UserError as error:
            raise HTTPException(404, str(error)) from None

    def config(request: Request) -> JSONResponse:
        return JSONResponse({"results": str(store.root), "refresh_seconds": refresh_seconds}, headers=NO_STORE)

    def sweeps(request: Request) -> JSONResponse:
        return JSONResponse({"sweeps": progress.summaries()}, headers=NO_STORE)

    def sweep(request: Request) -> JSONResponse:
        return JSONResponse(progress.sweep(sweep_dir(request)), headers=NO_STORE)

    def sweep_curves(request: Request) -> JSONResponse:
        directory = sweep_dir(request)
        try:
            quantiles = _quantiles(request.query_params.get("quantiles"))
            answer = curves.curves(directory, request.query_params.get("metric"), quantiles)
        except ValueError as error:
            raise HTTPException(400, str(error)) from None
        return JSONResponse(answer, headers=NO_STORE)

    def report_files(request: Request) -> FileResponse:
        directory = sweep_dir(request)
        path = sweep_file(directory, request.path_params["path"])
        if path is None:
            raise HTTPException(404, f"Sweep {directory.name} has no report file {request.path_params['path']!r}; "
                                     f"write one with optbench report {directory.name}.")
        return FileResponse(path, headers=NO_STORE)

    routes = [
        Route("/", lambda request: FileResponse(STATIC / "index.html")),
        Route("/plotly.min.js", lambda request: Response(_plotly_js(), media_type="text/javascript")),
        Mount("/static", StaticFiles(directory=STATIC)),
        Route("/api/config", config),
        Route("/api/sweeps", sweeps),
        Route("/api/sweeps/{sweep}", sweep),
        Route("/api/sweeps/{sweep}/curves", sweep_curves),
        Route("/sweeps/{sweep}/{path:path}", report_files),
    ]
    return Starlette(routes=routes, exception_handlers={HTTPException: _error})


def _quantiles(text: str | None) -> tuple[float, ...]:
    return DEFAULT_QUANTILES if text is None else validate_quantiles(text.split(","))


def _error(request: Request, error: HTTPException) -> JSONResponse:
    """Every error as ``{"error": one sentence}``, unknown routes included."""
    return JSONResponse({"error": error.detail}, status_code=error.status_code, headers=error.headers)


@functools.cache
def _plotly_js() -> str:
    """Plotly.js as the installed ``plotly`` package ships it: the page must load nothing from outside."""
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()
