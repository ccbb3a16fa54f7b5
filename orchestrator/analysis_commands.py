"""``optbench aggregate``, ``report``, ``plot`` and ``export``: where the inputs come from and the outputs go.

The results plane (``analysis``) does the work; this module turns the command
line into its inputs (sweeps by name, imported DeepOBS baselines, a W&B
project), picks the output folder, gives the aggregate each optimizer's default
hyperparameters from the configs (the tuning budgets' one-shot trial) and logs
the summary run to W&B.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rich.console import Console

from analysis.aggregate import Aggregate, Options, Target
from analysis.collect import SweepData
from jobs.run_folder import AGGREGATE_DIR, REPORT_FILE, read_sweep_info, read_sweep_runs
from orchestrator.errors import UserError
from orchestrator.store import ResultsStore

AGGREGATES_DIR = "aggregates"
TARGET = re.compile(r"^(?:(?P<problem>[\w.-]+):)?(?P<metric>(?:train|valid|test)_(?:loss|accuracy))=(?P<value>.+)$")


@dataclass
class Inputs:
    """What one aggregate reads and where it writes."""

    sweep_dirs: list[Path]
    extra: list[SweepData]
    out_dir: Path


def parse_targets(texts: Sequence[str]) -> tuple[Target, ...]:
    """``[PROBLEM:]METRIC=VALUE`` → targets, or a one-sentence error."""
    targets = []
    for text in texts:
        match = TARGET.match(text.strip())
        try:
            targets.append(Target(match["metric"], float(match["value"]), match["problem"]))
        except (TypeError, ValueError):  # no match (None is not subscriptable), or VALUE is not a number
            raise UserError(f"--target {text!r} is not [PROBLEM:]METRIC=VALUE with METRIC such as valid_accuracy or "
                            "test_loss; write e.g. --target valid_accuracy=0.9.") from None
    return tuple(targets)


def inputs(store: ResultsStore, sweeps: Sequence[str], output: Path | None, deepobs: Sequence[Path] = (),
           wandb: str | None = None, group: str | None = None) -> Inputs:
    """The sweep folders, imported data and output folder of an aggregate, checked."""
    if not sweeps and not wandb and not deepobs:
        raise UserError("Name at least one sweep (or pass --wandb ENTITY/PROJECT or --deepobs DIR) to aggregate.")
    sweep_dirs = [store.find_sweep(name) for name in sweeps]
    extra = [deepobs_baselines(folder) for folder in deepobs]
    if wandb:
        extra.append(_collect_wandb(wandb, group))
    if output is None:
        if len(sweep_dirs) == 1 and not extra:
            output = sweep_dirs[0] / AGGREGATE_DIR
        else:
            names = [d.name for d in sweep_dirs] + [str(e.info.get("sweep_id", "import")) for e in extra]
            output = store.root / AGGREGATES_DIR / "+".join(names)
    return Inputs(sweep_dirs, extra, Path(output))


def deepobs_baselines(folder: Path) -> SweepData:
    """The DeepOBS result JSONs under ``folder`` as one sweep's data, or a one-sentence UserError."""
    from analysis.deepobs_json import import_deepobs

    if not folder.is_dir():
        raise UserError(f"--deepobs {folder} is not a folder; pass the folder that holds DeepOBS result JSONs.")
    try:
        return import_deepobs(folder)
    except ValueError as error:
        raise UserError(str(error)) from None


def _collect_wandb(path: str, group: str | None) -> SweepData:
    from analysis.wandb_source import WandbError, collect_wandb

    try:
        return collect_wandb(path, group)
    except WandbError as error:
        raise UserError(str(error)) from None


def aggregate(store: ResultsStore, where: Inputs, options: Options, tree: Any = None) -> Aggregate:
    """Aggregate the inputs into ``where.out_dir``, with the optimizers' defaults from ``tree`` (a ConfigTree)."""
    from analysis.aggregate import aggregate_sweeps

    options = with_defaults(options, where, tree)
    try:
        return aggregate_sweeps(where.sweep_dirs, store.runs_dir, where.out_dir, options, where.extra)
    except ValueError as error:
        raise UserError(str(error)) from None


def with_defaults(options: Options, where: Inputs, tree: Any = None) -> Options:
    """``options`` with the default hyperparameters of every optimizer in the inputs that it does not name yet."""
    found = optimizer_defaults(optimizer_names(where) - set(options.defaults), tree)
    return replace(options, defaults={**found, **options.defaults}) if found else options


def optimizer_names(where: Inputs) -> set[str]:
    """The optimizers the inputs' runs name, read from the sweeps' run lists (no run folder is opened)."""
    names = {str(e["spec"].get("optimizer", {}).get("name")) for d in where.sweep_dirs for e in read_sweep_runs(d)}
    return names | {str(n) for extra in where.extra for n in extra.runs.get("optimizer", ()) if isinstance(n, str)}


def optimizer_defaults(names: Iterable[str], tree: Any = None) -> dict[str, dict[str, Any]]:
    """Each optimizer's default hyperparameters: its config file's (or entry point's) values but ``name``.

    An optimizer the configs do not know (an imported DeepOBS or W&B run's) is left
    out; so is everything when there is no config folder.
    """
    from orchestrator.config import ConfigTree

    try:
        tree = tree or ConfigTree()
    except UserError:
        return {}
    defaults = {}
    for name in sorted(set(names)):
        try:
            config = tree.option_config("optimizer", name)
        except (UserError, ValueError):
            continue
        defaults[name] = {k: v for k, v in config.items() if k != "name"}
    return defaults


def log_summary(result: Aggregate, where: Inputs) -> str:
    """Log the summary run in the (first) sweep's W&B group with that sweep's logger; "" when it has none.

    Returns the run's address (online) or its offline folder, for ``wandb sync``.
    """
    from analysis.wandb_source import WandbError
    from analysis.wandb_summary import log_summary as log_to_wandb
    from orchestrator.wandb_mode import resolve

    if not where.sweep_dirs:
        return ""
    group = where.sweep_dirs[0].name if len(where.sweep_dirs) == 1 else str(result.info.get("sweep_id", ""))
    logger = resolve(read_sweep_info(where.sweep_dirs[0]).get("logger") or {"mode": "disabled"}, group)
    try:
        return log_to_wandb(result, logger, group=group, directory=where.out_dir)
    except WandbError as error:
        raise UserError(f"{error} (or pass --no-wandb)") from None


def report(store: ResultsStore, where: Inputs, highlight: Sequence[str] = ()) -> Path:
    """Write the report of the inputs (aggregating first when the aggregate is missing or stale).

    ``highlight`` names optimizers of the inputs to show as the user's; an unknown one is refused first.
    """
    from analysis.report import write_report

    known = optimizer_names(where)
    for name in highlight:
        if name not in known:
            raise UserError(f"--highlight {name}: the sweeps have no optimizer {name!r} (they have "
                            f"{', '.join(sorted(known)) or 'none yet'}); name one of those.")
    path = where.sweep_dirs[0] / REPORT_FILE if len(where.sweep_dirs) == 1 and not where.extra \
        else where.out_dir / REPORT_FILE
    return write_report(where.sweep_dirs, store.runs_dir, where.out_dir, path, extra=where.extra, highlight=highlight)


def plot(store: ResultsStore, sweeps: Sequence[str], kind: str, output: Path, width: str, metric: str,
         deepobs: Sequence[Path] = ()) -> Path:
    """Draw one paper figure (:mod:`analysis.paper`) of the sweeps into ``output``.

    The output's format and folder and the sweeps are checked before anything is
    written; the aggregate is refreshed first when it is missing or stale (as for
    the report), and a kind the sweeps have no data for is refused before the figure is written.
    """
    from analysis import PLOT_FORMATS

    output = Path(output)
    if output.suffix.lower() not in PLOT_FORMATS:
        raise UserError(f"--output {output} must end in .pdf, .png or .svg (the suffix picks the format).")
    if not output.parent.is_dir():
        raise UserError(f"--output {output}: the folder {output.parent} does not exist; create it or write elsewhere.")
    where = inputs(store, sweeps, None, deepobs)
    from analysis.aggregate import current_aggregate
    from analysis.paper import paper_figure, save_paper_figure

    try:
        figure = paper_figure(current_aggregate(where.sweep_dirs, store.runs_dir, where.out_dir, where.extra), kind,
                              width, metric)
    except ValueError as error:
        raise UserError(str(error)) from None
    return save_paper_figure(figure, output)


def export_deepobs(store: ResultsStore, sweep: str, output: Path, console: Console) -> int:
    from analysis.collect import collect_sweep
    from analysis.deepobs_json import export_deepobs as export

    sweep_dir = store.find_sweep(sweep)
    data = collect_sweep(sweep_dir, store.runs_dir)
    paths = export(data.runs, data.metrics, output)
    skipped = len(data.runs) - len(paths)
    console.print(f"Wrote {len(paths)} DeepOBS result files under {output}"
                  + (f" ({skipped} runs without a result left out)." if skipped else "."))
    return 0
