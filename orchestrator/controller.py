"""Controller jobs: one-CPU Slurm jobs that take a sweep's next decision once the jobs it waits for have ended.

A protocol's second stage (:mod:`orchestrator.tune`) and successive halving's
next rung (:mod:`orchestrator.halving`) are decided on results that do not
exist yet when the user's command returns. Instead of a process left running
on the login node, a controller job with an ``afterany`` dependency on those
jobs runs the decision on the cluster, with this Python and the results
folder the user launched with. ``afterany``: the decision also runs when some
of the jobs failed or were cancelled, which it must then account for.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from orchestrator.sweep import Sweep

#: A controller only reads results and submits jobs: minutes, on one CPU.
CONTROLLER_MINUTES = 30


def submit(sweep: Sweep, sweep_dir: Path, after: Sequence[str], purpose: str, body: Callable[..., Any],
           *args: Any) -> str:
    """Submit ``body(*args)`` to run once every job in ``after`` has ended; its job id.

    Logs go to ``<sweep>/slurm/<purpose>/``; the job is named ``optbench-<sweep id>-<purpose>``.
    """
    import submitit

    from orchestrator.launchers.slurm import SlurmSettings

    settings = SlurmSettings.from_config(sweep.launcher)
    executor = submitit.SlurmExecutor(folder=sweep_dir / "slurm" / purpose, max_num_timeout=0)
    parameters = {k: v for k, v in settings.executor_parameters().items()
                  if k in ("partition", "account", "qos", "setup", "exclude")}
    executor.update_parameters(**parameters, time=CONTROLLER_MINUTES, cpus_per_task=1, nodes=1, ntasks_per_node=1,
                               job_name=f"optbench-{sweep_dir.name}-{purpose}",
                               additional_parameters={"dependency": "afterany:" + ":".join(after)})
    return executor.submit(body, *args).job_id
