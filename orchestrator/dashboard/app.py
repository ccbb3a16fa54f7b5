"""The dashboard's web application: the page, its static files and the JSON API (routes: see the package)."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from analysis.collect import SweepData
from analysis.stats import DEFAULT_QUANTILES, validate_quantiles
from orchestrator.dashboard.curves import CurveCache
from orchestrator.dashboard.progress import ProgressCache
from orchestrator.dashboard.reports import sweep_file
from orchestrator.errors import UserError
from orchestrator.store import ResultsStore

STATIC = Path(__file__).parent / "static"
#: The API's answers change with every refresh; the browser must not keep them.
NO_STORE = {"Cache-Control": "no-store"}


def create_app(store: ResultsStore, refresh_seconds: float, baselines: Mapping[str, SweepData] | None = None
               ) -> Starlette:
    """The application serving ``store``; the page polls it every ``refresh_seconds``.

    ``baselines`` (name → imported data, e.g. DeepOBS's published runs) can be compared with any sweep.
    """
    progress = ProgressCache(store)
    curves = CurveCache(store.runs_dir, baselines)

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
        directory = sweep_dir(request)
        answer, identities = progress.sweep(directory), curves.runs(directory)
        return JSONResponse(answer | {key: _identified(answer[key], identities) for key in ("runs", "failures")},
                            headers=NO_STORE)

    def source_curves(source: Path | str, request: Request) -> JSONResponse:
        try:
            quantiles = _quantiles(request.query_params.get("quantiles"))
            answer = curves.curves(source, request.query_params.get("metric"), quantiles,
                                   request.query_params.get("setting"))
        except ValueError as error:
            raise HTTPException(400, str(error)) from None
        return JSONResponse(answer, headers=NO_STORE)

    def sweep_curves(request: Request) -> JSONResponse:
        return source_curves(sweep_dir(request), request)

    def baseline_list(request: Request) -> JSONResponse:
        return JSONResponse({"baselines": [{"name": name, "runs": len(data.runs)}
                                           for name, data in (baselines or {}).items()]}, headers=NO_STORE)

    def baseline_curves(request: Request) -> JSONResponse:
        name = request.path_params["name"]
        if name not in (baselines or {}):
            raise HTTPException(404, f"No baselines {name!r}; pass their folder with optbench dashboard --deepobs DIR.")
        return source_curves(name, request)

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
        Route("/api/baselines", baseline_list),
        Route("/api/baselines/{name}/curves", baseline_curves),
        Route("/sweeps/{sweep}/{path:path}", report_files),
    ]
    return Starlette(routes=routes, exception_handlers={HTTPException: _error})


def _identified(runs: list[dict[str, Any]], identities: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Each run with its problem, optimizer, setting and varying hyperparameters (what the page filters by), and
    its setting's label within its problem (the page has a problem column)."""
    return [identity | run | {"label": identity["label"]} if (identity := identities.get(run["run_id"])) else run
            for run in runs]


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
