"""``optbench dashboard``: a live web page over a results folder.

The page (``static/``) polls a small JSON API every ``--refresh`` seconds and
redraws in place; everything it loads comes from this server (Plotly.js
from the installed ``plotly`` package), so it works on a cluster without
internet. The page draws one panel per problem, filters runs and curves,
compares sweeps (and imported baselines) in one view and keeps all of that
in its URL (``static/dashboard.js`` says how). Routes (paths are relative, so
the page also works behind a proxy prefix):

=========================================  ==========================================================
``GET /``                                  the page
``GET /static/{file}``                     its script and style sheet
``GET /plotly.min.js``                     Plotly.js from the ``plotly`` package
``GET /api/config``                        ``{results, refresh_seconds}``
``GET /api/sweeps``                        ``{sweeps: [...]}`` newest first: counts per state, progress,
                                           ETA, whether runs are still queued or running, report URL
``GET /api/sweeps/{sweep}``                :meth:`orchestrator.monitor.SweepProgress.to_json` plus
                                           ``active``, ``report`` and ``failures`` (failed and timed-out
                                           runs with the last lines of their job log); every run and
                                           failure with its ``problem``, ``optimizer``, ``setting_id``
                                           and varying hyperparameters (``params``)
``GET /api/sweeps/{sweep}/curves``         median and quantile band over seeds per setting and epoch
                                           of one metric, with each optimizer's colour and marker;
                                           ``?metric=NAME&quantiles=0.25,0.75``; ``&setting=ID`` adds
                                           that setting's runs, one line per seed
``GET /api/baselines``                     the imported baselines (``--deepobs DIR``)
``GET /api/baselines/{name}/curves``       their curves, as a sweep's
``GET /sweeps/{sweep}/report.html``        the report ``optbench report`` wrote, and under
``GET /sweeps/{sweep}/aggregate/{file}``   the aggregate's figures and tables
=========================================  ==========================================================

``{sweep}`` is a sweep id or name, as ``optbench status`` takes it. Errors are
JSON ``{"error": sentence}``: 404 for an unknown sweep or file, 400 for a bad
query, 503 when the scheduler's view of a sweep cannot be had now (Slurm does
not answer; the sweep list then gives that sweep an ``error`` instead of counts).
"""

from orchestrator.dashboard.app import create_app
from orchestrator.dashboard.server import serve

__all__ = ["create_app", "serve"]
