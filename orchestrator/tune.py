"""The DeepOBS protocol: tune on a grid, pick each optimizer's best setting, rerun it with 10 seeds.

Stage 1 is a sweep like any other (by default the learning rate over 36
log-spaced values in [1e-5, 1e2], seed 42). When it has ended, the aggregator
selects the best setting of every (problem, optimizer) by the median final (or
best) validation metric, and stage 2, those settings with seeds 42–51, is
recorded as the sweep ``<name>-best`` and started with stage 1's launcher,
container, logger and data folder. With the local launcher this happens in the
same command; on Slurm a small controller job that waits for stage 1's arrays
(``--dependency=afterany``) does it, so nobody has to keep a terminal open.
``optbench tune --continue SWEEP`` does it by hand. Stage 2 is a sweep keyed by
its runs, so continuing twice starts nothing twice.

A sweep file asks for the protocol with a ``protocol:`` mapping (``name``,
``criterion``, ``seeds``); ``optbench tune`` asks for it on the command line.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from analysis import CRITERIA
from jobs.run_folder import PROTOCOL_FILE, read_json, write_json
from jobs.spec import run_id, setting_id
from orchestrator import controller
from orchestrator.config import ConfigTree
from orchestrator.errors import UserError
from orchestrator.execution import start_sweep
from orchestrator.store import ResultsStore
from orchestrator.sweep import Run, Sweep, override_key, with_sweep_file

PROTOCOLS = ("deepobs", "algoperf")
DEFAULT_SEEDS = tuple(range(42, 52))
#: AlgoPerf's external tuning: every trial of the search once per study.
ALGOPERF_STUDIES = 3
#: DeepOBS's learning-rate grid, added when the user sweeps no optimizer hyperparameter.
DEFAULT_GRID = "optimizer.lr=logspace(1e-5,1e2,36)"
#: The same range, drawn from when the tuning draws (search=random or quasirandom) and names no space.
DEFAULT_SEARCH = "optimizer.lr=tag(log,interval(1e-5,1e2))"


@dataclass(frozen=True)
class Protocol:
    """Which protocol a sweep follows and how.

    ``deepobs``: the sweep is stage 1; the best settings by ``criterion`` are
    rerun with ``seeds`` as stage 2 (which records where it came from).
    ``algoperf``: the sweep's trials (drawn by its search) run once per study,
    study ``k`` with ``seeds[k]`` (default ``0 … studies−1``); the aggregate
    scores them by AlgoPerf's rules.
    """

    name: str = "deepobs"
    criterion: str = "final_valid"
    seeds: tuple[int, ...] = DEFAULT_SEEDS
    stage: int = 1
    tuned_from: str | None = None

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Protocol:
        name = config.get("name", "deepobs")
        if name not in PROTOCOLS:
            raise UserError(f"protocol.name must be one of {', '.join(PROTOCOLS)} (got {name!r}).")
        allowed = {"name", "criterion", "seeds", "stage", "tuned_from"} if name == "deepobs" else \
            {"name", "studies", "seeds"}
        unknown = sorted(set(config) - allowed)
        if unknown:
            raise UserError(f"protocol.{unknown[0]} is not a setting of the {name} protocol; use "
                            f"{', '.join(sorted(allowed - {'name', 'stage', 'tuned_from'}))}.")
        criterion = config.get("criterion", "final_valid")
        if criterion not in CRITERIA:
            raise UserError(f"protocol.criterion must be final_valid or best_valid (got {criterion!r}).")
        studies = config.get("studies", ALGOPERF_STUDIES)
        if isinstance(studies, bool) or not isinstance(studies, int) or studies < 1:
            raise UserError(f"protocol.studies must be a whole number >= 1 (got {studies!r}).")
        seeds = config.get("seeds", DEFAULT_SEEDS if name == "deepobs" else studies)
        if isinstance(seeds, int) and not isinstance(seeds, bool):
            seeds = range(42, 42 + seeds) if name == "deepobs" else range(seeds)
        if (not isinstance(seeds, Sequence | range) or isinstance(seeds, str) or not seeds
                or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds)):
            raise UserError(f"protocol.seeds must be a list of whole numbers >= 0 or a count (got {seeds!r}).")
        return cls(name, criterion, tuple(seeds), int(config.get("stage", 1)), config.get("tuned_from"))

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "seeds": list(self.seeds)}


def tuning_overrides(overrides: list[str], tree: ConfigTree) -> list[str]:
    """The user's overrides, plus DeepOBS's learning-rate range when no optimizer hyperparameter is given.

    The range is DeepOBS's grid (36 log-spaced values in [1e-5, 1e2]), or, when the tuning draws
    (``search=random`` or ``quasirandom``, as DeepOBS's random-search tuner does), that interval on a log scale.
    """
    _, combined, _ = with_sweep_file(overrides, tree)
    given = {override_key(o): o.split("=", 1)[1] for o in combined}
    if any(k.startswith("optimizer.") for k in given) or "search.space" in given:
        return overrides
    for name in given.get("optimizer", tree.default_option("optimizer")).split(","):
        name = name.strip()
        if "lr" not in tree.option_config("optimizer", name):
            raise UserError(f"Optimizer {name} has no learning rate to tune on DeepOBS's default grid; "
                            f"give optbench tune its grid, e.g. optimizer.alpha=0.1,1.0.")
    draws = given.get("search", "grid").strip() != "grid"
    return [*overrides, DEFAULT_SEARCH if draws else DEFAULT_GRID]


def algoperf_studies(sweep: Sweep, protocol: Protocol, expand_with: Callable[[list[str]], Sweep]) -> Sweep:
    """AlgoPerf's studies: the sweep again with one seed per study, each run told its study.

    ``expand_with(extra)`` expands the sweep's overrides with ``extra`` ones (the seeds).
    """
    if not sweep.search:
        raise UserError("The algoperf protocol scores trials drawn by a search: add search=quasirandom (AlgoPerf's) "
                        "with search.trials=5 and a search space (interval(...) or search.space=FILE).")
    if any(override_key(o) == "seed" for o in sweep.overrides):
        raise UserError("The algoperf protocol sets the seeds, one per study; drop seed=... and give "
                        "protocol.studies or protocol.seeds instead.")
    studies = expand_with([f"seed={','.join(str(s) for s in protocol.seeds)}"])
    for run in studies.runs:
        run.study = protocol.seeds.index(run.spec["seed"])
    return studies


def after_first_stage(sweep: Sweep, protocol: Protocol, sweep_dir: Path, store: ResultsStore, slurm: bool,
                      console: Console) -> int:
    """Start stage 2 now (every stage-1 run has ended) or leave it to a controller job behind stage 1's jobs."""
    from orchestrator.reconcile import reconcile

    views = reconcile(store, sweep_dir, [r.run_id for r in sweep.runs])
    waiting = sorted({v.job_id.split("_")[0] for v in views.values() if v.in_flight and v.job_id})
    if slurm and waiting:
        job_id = submit_controller(sweep, sweep_dir, store, waiting)
        console.print(f"Stage 2 of the {protocol.name} protocol (the best settings with {len(protocol.seeds)} "
                      f"seeds) will be selected and submitted by job {job_id} once jobs {', '.join(waiting)} "
                      "have ended.")
        return 0
    return second_stage(sweep_dir, store, console)


def second_stage(sweep_dir: Path, store: ResultsStore, console: Console) -> int:
    """Select the best settings of the ended stage 1 and launch stage 2."""
    from analysis.aggregate import Options, aggregate_sweep

    first = store.load_sweep(sweep_dir)
    protocol = Protocol.from_config(first.protocol) if first.protocol else None
    if protocol is None or protocol.stage != 1:
        raise UserError(f"Sweep {sweep_dir.name} is not the first stage of a protocol; launch it with "
                        "optbench tune, or add protocol: {name: deepobs} to its sweep file.")
    aggregate = aggregate_sweep(sweep_dir, store.runs_dir, Options(criterion=protocol.criterion))
    if aggregate.best.empty:
        raise UserError(f"No setting of {sweep_dir.name} has a finite {protocol.criterion.replace('_', ' ')} "
                        "metric, so there is nothing to rerun; look at optbench status "
                        f"{sweep_dir.name} and fix the failing runs first.")
    second = rerun_sweep(first, list(aggregate.best["setting_id"]), protocol)
    for row in aggregate.best.itertuples():
        console.print(f"Selected {row.problem} · {row.label}: median {protocol.criterion.replace('_', ' ')} "
                      f"{row.score:.4g} over {row.settings} settings.")
    selected = list(aggregate.best["setting_id"])
    return start_sweep(second, store, console, recorded=lambda _: _link(
        sweep_dir, second_stage=second.sweep_id, selected=selected, criterion=protocol.criterion)).status


def rerun_sweep(first: Sweep, settings: Sequence[str], protocol: Protocol) -> Sweep:
    """Stage 2: each selected setting of ``first`` with the protocol's seeds, executed as ``first`` was."""
    specs = {}
    for run in first.runs:
        specs.setdefault(run.setting_id, run.spec)
    runs = []
    for setting in settings:
        for seed in protocol.seeds:
            spec = {**specs[setting], "seed": seed}
            runs.append(Run(run_id(spec), setting_id(spec), spec))
    stage = Protocol(protocol.name, protocol.criterion, protocol.seeds, stage=2, tuned_from=first.sweep_id)
    return Sweep(
        name=f"{first.name}-best",
        overrides=[f"tuned_from={first.sweep_id}", f"criterion={protocol.criterion}",
                   f"seed={','.join(str(s) for s in protocol.seeds)}"],
        runs=runs, launcher=first.launcher, logger=first.logger, container=first.container,
        data_dir=first.data_dir,
        protocol=stage.as_dict(),
    )


def submit_controller(sweep: Sweep, sweep_dir: Path, store: ResultsStore, after: Sequence[str]) -> str:
    """A controller job (:mod:`orchestrator.controller`) that starts stage 2 once ``after`` have ended."""
    job_id = controller.submit(sweep, sweep_dir, after, "select", continue_protocol, str(store.root.resolve()),
                               sweep_dir.name)
    _link(sweep_dir, controller_job=job_id, after=list(after))
    return job_id


def _link(sweep_dir: Path, **facts: Any) -> None:
    """Add ``facts`` to stage 1's ``protocol.json`` (the controller job, then stage 2's sweep id)."""
    try:
        known = read_json(sweep_dir / PROTOCOL_FILE)
    except FileNotFoundError:
        known = {}
    write_json(sweep_dir / PROTOCOL_FILE, {**known, **facts})


def continue_protocol(results: str, sweep_id: str) -> int:
    """The controller job's body (and ``optbench tune --continue``): stage 2 of ``sweep_id``."""
    store = ResultsStore(results)
    return second_stage(store.find_sweep(sweep_id), store, Console(highlight=False))
