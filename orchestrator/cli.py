"""``optbench``: the one command users type. Arguments after the verb are Hydra overrides."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from analysis import CRITERIA, PLOT_KINDS, PLOT_WIDTHS
from jobs.run_folder import restrict_umask
from jobs.schema import SpecError
from orchestrator.errors import UserError
from orchestrator.store import ResultsStore, default_results_dir

console = Console(highlight=False)
if not console.is_terminal and "COLUMNS" not in os.environ:
    console.width = 200  # piped or redirected: tables are not cut at 80 columns
STATUS_ROWS = 40
errors = Console(stderr=True, highlight=False)


def main(argv: list[str] | None = None) -> int:
    restrict_umask()  # nothing optbench writes is ever world-writable
    if os.getcwd() not in sys.path:  # plugin targets import as under `python -m`: packages, PYTHONPATH, this folder
        sys.path.append(os.getcwd())
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except (UserError, SpecError) as error:
        errors.print(f"optbench: error: {error}", markup=False)
        return 2
    except KeyboardInterrupt:
        errors.print("optbench: interrupted; running jobs were cancelled, finished runs are kept.")
        return 130


class VerbParser(argparse.ArgumentParser):
    """A verb's parser: options may stand anywhere among its positionals, as users type them.

    ``optbench launch sweep=smoke --dry-run logger=disabled`` is the same as with ``--dry-run`` first or last
    (argparse's intermixed parsing), and what the verb does not know is reported with the verb's own usage
    rather than the top-level one. Verbs with verbs of their own (``image build``) parse as argparse does.
    """

    _intermixing = False

    def parse_known_args(self, args=None, namespace=None):
        if self._intermixing or any(action.nargs == argparse.PARSER for action in self._actions):
            return super().parse_known_args(args, namespace)
        self._intermixing = True
        try:
            parsed, unknown = self.parse_known_intermixed_args(args, namespace)
        finally:
            self._intermixing = False
        if unknown:
            self.error(f"unrecognized arguments: {' '.join(unknown)}")
        return parsed, unknown


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="optbench",
        description="Deep-learning optimizer benchmarks: Hydra sweeps → submitit jobs → aggregated quantiles.",
    )
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB", parser_class=VerbParser)

    launch = verbs.add_parser("launch", help="expand a sweep and run what is not done yet",
                              description="Expand Hydra overrides into runs and execute the new ones. "
                                          "Example: optbench launch sweep=smoke, or "
                                          "optbench launch optimizer=sgd,adam seed='range(3)'.")
    launch.add_argument("overrides", nargs="*", metavar="OVERRIDE", help="Hydra overrides, e.g. optimizer.lr=0.1,0.01")
    launch.add_argument("--dry-run", action="store_true", help="list the runs without starting anything")
    _config_dir_option(launch)
    _results_option(launch)
    launch.set_defaults(handler=_launch)

    tune = verbs.add_parser(
        "tune", help="the DeepOBS protocol: tune on a grid, rerun each optimizer's best setting with 10 seeds",
        description="Launch the grid (default: optimizer.lr over 36 log-spaced values in [1e-5, 1e2], seed 42); "
                    "once it has ended, select the best setting per problem and optimizer and launch it with "
                    "seeds 42-51 as the sweep NAME-best (on Slurm a controller job does this after the grid). "
                    "Example: optbench tune problem=fmnist_2c2d optimizer=sgd,adam launcher=slurm")
    tune.add_argument("overrides", nargs="*", metavar="OVERRIDE", help="Hydra overrides, as for launch")
    tune.add_argument("--criterion", choices=CRITERIA, default=None,
                      help="select by the median final (default) or best validation metric")
    tune.add_argument("--seeds", type=int, default=None, metavar="N",
                      help="seeds of the second stage: 42 .. 42+N-1 (default 10)")
    tune.add_argument("--continue", dest="continue_sweep", metavar="SWEEP", default=None,
                      help="select and launch the second stage of a tuned SWEEP now (what the controller job does)")
    tune.add_argument("--dry-run", action="store_true", help="list the grid's runs without starting anything")
    _config_dir_option(tune)
    _results_option(tune)
    tune.set_defaults(handler=_tune)

    for verb, help_text, handler in (
        ("aggregate", "median, quantiles and bootstrap CIs over seeds; DeepOBS and AlgoPerf tables; plots",
         _aggregate),
        ("report", "write the self-contained HTML report of one or more sweeps", _report),
    ):
        command = verbs.add_parser(verb, help=help_text, description=help_text)
        command.add_argument("sweeps", nargs="*", metavar="SWEEP",
                             help="sweep names (latest of each name) or ids; several are aggregated together")
        _results_option(command)
        command.add_argument("--output", type=Path, default=None,
                             help="output folder (default: SWEEP/aggregate for one sweep, "
                                  "RESULTS/aggregates/NAME+NAME for several)")
        if verb == "aggregate":
            command.add_argument("--quantiles", default="0.25,0.75",
                                 help="comma-separated quantiles in (0, 1) (default: 0.25,0.75)")
            command.add_argument("--criterion", choices=CRITERIA, default="final_valid",
                                 help="how the best setting per problem and optimizer is chosen (DeepOBS)")
            command.add_argument("--target", action="append", default=[], metavar="[PROBLEM:]METRIC=VALUE",
                                 help="AlgoPerf target, e.g. valid_accuracy=0.9 or mnist_mlp:valid_loss=0.1 "
                                      "(default: per problem the value every optimizer's best setting reached)")
            command.add_argument("--deepobs", action="append", type=Path, default=[], metavar="DIR",
                                 help="DeepOBS result JSONs (e.g. published baselines) to put beside the sweeps")
            command.add_argument("--wandb", default=None, metavar="ENTITY/PROJECT",
                                 help="collect the runs of a W&B project (with --group: one sweep) instead of, "
                                      "or beside, run folders")
            command.add_argument("--group", default=None, help="with --wandb: the W&B group (a sweep id)")
            command.add_argument("--no-wandb", action="store_true",
                                 help="do not log the summary run to W&B (default: log it in the sweep's group "
                                      "unless the sweep's logger is disabled)")
        else:
            command.add_argument("--highlight", action="append", default=[], metavar="OPTIMIZER",
                                 help="show this optimizer as yours on the first screen (default: every optimizer "
                                      "that is not one of optbench's own, e.g. a plugin)")
        command.set_defaults(handler=handler)

    plot = verbs.add_parser("plot", help="one figure for a paper: curves, sensitivity, profiles or tuning budget",
                            description="Draw one figure of one or more sweeps for a paper, in the report's colours "
                                        "and markers, one or two columns wide. Example: optbench plot smoke "
                                        "--kind curves --output curves.pdf")
    plot.add_argument("sweeps", nargs="+", metavar="SWEEP",
                      help="sweep names (latest of each name) or ids; several are aggregated together")
    plot.add_argument("--kind", choices=PLOT_KINDS, required=True, help="which figure")
    plot.add_argument("--output", type=Path, required=True, metavar="FILE",
                      help="FILE.pdf, FILE.png or FILE.svg: the suffix picks the format")
    plot.add_argument("--width", choices=PLOT_WIDTHS, default="double",
                      help="one column (3.25 in) or both columns (6.75 in) of a two-column paper (default double)")
    plot.add_argument("--metric", choices=("train", "valid", "test", "lr"), default="valid",
                      help="curves: train loss, the valid or test metric, or the learning rate (default valid)")
    plot.add_argument("--deepobs", action="append", type=Path, default=[], metavar="DIR",
                      help="DeepOBS result JSONs (e.g. published baselines) to draw beside the sweeps")
    _results_option(plot)
    plot.set_defaults(handler=_plot)

    export = verbs.add_parser("export", help="write a sweep's runs in another tool's format",
                              description="Write a sweep's runs in another tool's result format.")
    export_verbs = export.add_subparsers(dest="export_verb", required=True, metavar="FORMAT")
    deepobs = export_verbs.add_parser("deepobs", help="DeepOBS's result JSONs (problem/optimizer/setting/seed)",
                                      description="One DeepOBS result JSON per run with a result, in DeepOBS's "
                                                  "folder layout, readable by DeepOBS's analyzer.")
    deepobs.add_argument("sweep", metavar="SWEEP", help="sweep name (latest of that name) or sweep id")
    deepobs.add_argument("--output", type=Path, required=True, help="folder to write the JSONs into")
    _results_option(deepobs)
    deepobs.set_defaults(handler=_export_deepobs)

    for verb, help_text, handler in (
        ("status", "where every run of a sweep stands, merged from run folders and Slurm (no SWEEP: every sweep)",
         _status),
        ("resume", "start the runs of a sweep that failed, timed out, were cancelled or never went in", _resume),
        ("cancel", "cancel a sweep's queued and running runs (all, or the run ids given)", _cancel),
    ):
        command = verbs.add_parser(verb, help=help_text, description=help_text)
        if verb == "status":
            command.add_argument("sweep", nargs="?", default=None, metavar="SWEEP",
                                 help="sweep name (latest of that name) or sweep id (default: list every sweep)")
        else:
            command.add_argument("sweep", metavar="SWEEP", help="sweep name (latest of that name) or sweep id")
        _results_option(command)
        if verb == "status":
            command.add_argument("--watch", nargs="?", type=float, const=5.0, default=None, metavar="SECONDS",
                                 help="refresh every SECONDS (default 5) until every run has ended")
            command.add_argument("--all", action="store_true", help="list every run, not only the first 40")
        if verb == "cancel":
            command.add_argument("runs", nargs="*", metavar="RUN_ID", help="runs to cancel (default: all)")
        command.set_defaults(handler=handler)

    logs = verbs.add_parser("logs", help="a run's job output, wherever it ran (local or Slurm)",
                            description="Print the end of the stdout and stderr of the job that ran RUN_ID, "
                                        "found through the sweeps that submitted it.")
    logs.add_argument("run_id", metavar="RUN_ID")
    logs.add_argument("-n", "--lines", type=int, default=40, help="lines from the end of each log (default 40)")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing new lines until the run ends")
    _results_option(logs)
    logs.set_defaults(handler=_logs)

    sync = verbs.add_parser("sync", help="upload offline W&B runs (compute nodes without internet) and say what",
                            description="Upload the offline Weights & Biases runs of a sweep (or of every sweep) "
                                        "with wandb sync; runs already synced or still running are left alone.")
    sync.add_argument("sweep", nargs="?", default=None, metavar="SWEEP",
                      help="sweep name (latest of that name) or id (default: every sweep)")
    sync.add_argument("--dry-run", action="store_true", help="list what would be uploaded without uploading")
    _results_option(sync)
    sync.set_defaults(handler=_sync)

    dashboard = verbs.add_parser("dashboard", help="serve a live web dashboard over a results folder",
                                 description="Serve a web page over a results folder: sweeps, state counts, "
                                             "progress, live training curves with quantile bands, failures and "
                                             "reports, refreshed while sweeps run.")
    dashboard.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    dashboard.add_argument("--port", type=int, default=8765, help="port (default 8765)")
    dashboard.add_argument("--deepobs", action="append", type=Path, default=[], metavar="DIR",
                           help="DeepOBS result JSONs (e.g. published baselines) to compare sweeps with")
    dashboard.add_argument("--refresh", type=float, default=5.0, metavar="SECONDS",
                           help="how often the page refreshes (default 5)")
    _results_option(dashboard)
    dashboard.set_defaults(handler=_dashboard)

    rerun = verbs.add_parser("rerun", help="run one run again from its recorded image and spec, and compare",
                             description="Run RUN_ID again in the image it ran in, into runs/RUN_ID/reruns/N/, "
                                         "and compare its metrics with the original's. Exit status 0: identical.")
    rerun.add_argument("run_id", metavar="RUN_ID")
    rerun.add_argument("--force", action="store_true",
                       help="rerun even when the image at the recorded path is no longer the recorded one")
    _results_option(rerun)
    rerun.set_defaults(handler=_rerun)

    image = verbs.add_parser("image", help="build or inspect an Apptainer image (containers/)",
                             description="Build the images defined in containers/, or inspect one.")
    image_verbs = image.add_subparsers(dest="image_verb", required=True, metavar="ACTION")
    build = image_verbs.add_parser("build", help="build containers/optbench-NAME.def into a .sif image",
                                   description="Build containers/optbench-NAME.def with apptainer build.")
    build.add_argument("name", nargs="?", default="cpu", metavar="NAME", help="cpu (default) or gpu")
    build.add_argument("--output", type=Path, default=None, help="image path (default: images/optbench-NAME.sif)")
    build.add_argument("--torch-wheel", type=Path, default=None,
                       help="torch wheel for the CPU image (default: found in pip's find-links folders)")
    build.add_argument("--plugin", action="append", default=[], metavar="PATH_OR_REQUIREMENT",
                       help="your package, installed on top of optbench: a folder with pyproject.toml or a "
                            "requirement such as mypkg==1.0 (repeatable)")
    build.set_defaults(handler=_image_build)
    inspect = image_verbs.add_parser("inspect", help="sha256, size, labels and the versions inside an image",
                                     description="sha256, size, labels and the versions inside an image.")
    inspect.add_argument("path", type=Path, metavar="PATH")
    inspect.add_argument("--json", action="store_true", help="print JSON instead of a table")
    inspect.set_defaults(handler=_image_inspect)

    data = verbs.add_parser("data", help="the dataset files the test problems read",
                            description="Check the data folder that problems with dataset files read.")
    data_verbs = data.add_subparsers(dest="data_verb", required=True, metavar="ACTION")
    data_check = data_verbs.add_parser("check", help="which problems are ready; what to put where for the rest",
                                       description="List which problems can run with the data folder and, for the "
                                                   "rest, which files to put where. Exit status 0: all ready.")
    data_check.add_argument("--data-dir", type=Path, default=None,
                            help="the data folder (default: $OPTBENCH_DATA)")
    data_check.set_defaults(handler=_data_check)
    return parser


def _config_dir_option(command: argparse.ArgumentParser) -> None:
    command.add_argument("--config-dir", action="append", default=[], metavar="DIR",
                         help="a folder of your own configs (optimizer/, problem/, schedule/, sweep/, ...) stacked "
                              "on optbench's; repeatable (also: OPTBENCH_CONFIG_PATH=DIR:DIR)")


def _config_tree(args: argparse.Namespace):
    from orchestrator.config import ConfigTree, user_config_dirs

    return ConfigTree(user_dirs=user_config_dirs(args.config_dir))


def _results_option(command: argparse.ArgumentParser) -> None:
    command.add_argument("--results", type=Path, default=None,
                         help="results folder (default: $OPTBENCH_RESULTS or ./results)")


def _store(args: argparse.Namespace) -> ResultsStore:
    return ResultsStore(args.results or default_results_dir())


def _launch(args: argparse.Namespace) -> int:
    from orchestrator import launch

    return launch.launch(args.overrides, _store(args), dry_run=args.dry_run, console=console, tree=_config_tree(args))


def _data_check(args: argparse.Namespace) -> int:
    from orchestrator import data

    return data.check(args.data_dir or data.default_data_dir(), console)


def _tune(args: argparse.Namespace) -> int:
    from orchestrator import launch, tune

    store = _store(args)
    if args.continue_sweep:
        return tune.continue_protocol(str(store.root), args.continue_sweep)
    if args.seeds is not None and args.seeds < 1:
        raise UserError(f"--seeds takes a positive count (got {args.seeds}).")
    protocol = {"name": "deepobs"}
    if args.criterion:
        protocol["criterion"] = args.criterion
    if args.seeds:
        protocol["seeds"] = args.seeds
    tree = _config_tree(args)
    return launch.launch(tune.tuning_overrides(args.overrides, tree), store, dry_run=args.dry_run, console=console,
                         protocol=protocol, tree=tree)


def _aggregate(args: argparse.Namespace) -> int:
    from analysis.aggregate import Options
    from orchestrator import analysis_commands

    options = Options(_parse_quantiles(args.quantiles), args.criterion, analysis_commands.parse_targets(args.target))
    store = _store(args)
    where = analysis_commands.inputs(store, args.sweeps, args.output, args.deepobs, args.wandb, args.group)
    with console.status(f"Aggregating into {where.out_dir} …"):
        result = analysis_commands.aggregate(store, where, options)
    console.print(_summary_table(result.best if len(result.best) else result.summary,
                                 str(result.info.get("name") or where.out_dir.name)))
    states = result.runs["state"].value_counts()
    console.print(f"{len(result.runs)} runs: " + ", ".join(f"{n} {state}" for state, n in states.items()) + ".")
    console.print(f"Wrote {len(result.files)} files to {where.out_dir}.")
    if not args.no_wandb:
        with console.status("Logging the summary run to W&B …"):
            summary_run = analysis_commands.log_summary(result, where)
        if summary_run:
            console.print(f"W&B summary run: {summary_run}")
    return 0


def _export_deepobs(args: argparse.Namespace) -> int:
    from orchestrator import analysis_commands

    return analysis_commands.export_deepobs(_store(args), args.sweep, args.output, console)


def _parse_quantiles(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(q) for q in text.split(","))
    except ValueError:
        raise UserError(f"--quantiles must be numbers separated by commas, e.g. 0.25,0.75 (got {text!r}).") from None
    if not all(0 < q < 1 for q in values):
        raise UserError(f"--quantiles must lie strictly between 0 and 1 (got {text!r}).")
    return values


def _report(args: argparse.Namespace) -> int:
    from orchestrator import analysis_commands

    store = _store(args)
    where = analysis_commands.inputs(store, args.sweeps, args.output)
    with console.status("Writing the report …"):
        path = analysis_commands.report(store, where, args.highlight)
    console.print(f"Report: {path.resolve()}")
    return 0


def _plot(args: argparse.Namespace) -> int:
    from orchestrator import analysis_commands

    with console.status(f"Drawing {args.output} …"):
        path = analysis_commands.plot(_store(args), args.sweeps, args.kind, args.output, args.width, args.metric,
                                      args.deepobs)
    console.print(f"Figure: {path.resolve()}")
    return 0


def _status(args: argparse.Namespace) -> int:
    from orchestrator import status

    if args.watch is not None and args.watch <= 0:
        raise UserError(f"--watch takes a positive number of seconds (got {args.watch:g}).")
    store = _store(args)
    if args.sweep is None:
        if args.watch is not None:
            raise UserError("--watch follows one sweep; name it (optbench status SWEEP --watch).")
        store.check_exists()
        console.print(status.sweeps_table(store))
        return 0
    return status.show(store, store.find_sweep(args.sweep), console, None if args.all else STATUS_ROWS, args.watch)


def _resume(args: argparse.Namespace) -> int:
    from orchestrator import launch

    store = _store(args)
    return launch.resume(store.find_sweep(args.sweep), store, console)


def _cancel(args: argparse.Namespace) -> int:
    from orchestrator.cancel import cancel

    store = _store(args)
    cancelled = cancel(store, store.find_sweep(args.sweep), [store.check_run_id(r) for r in args.runs])
    console.print(f"Cancelled {len(cancelled)} runs" + (": " + " ".join(v.run_id for v in cancelled)
                                                         if 0 < len(cancelled) <= 20 else "."))
    return 0


def _logs(args: argparse.Namespace) -> int:
    from orchestrator import logs

    if args.lines < 1:
        raise UserError(f"--lines takes a positive count (got {args.lines}).")
    store = _store(args)
    return logs.show(store, store.check_run_id(args.run_id), args.lines, args.follow, console)


def _sync(args: argparse.Namespace) -> int:
    from orchestrator import wandb_sync

    return wandb_sync.sync(_store(args), args.sweep, console, dry_run=args.dry_run)


def _dashboard(args: argparse.Namespace) -> int:
    from orchestrator.dashboard import serve

    if args.refresh <= 0:
        raise UserError(f"--refresh takes a positive number of seconds (got {args.refresh:g}).")
    return serve(_store(args), args.host, args.port, args.refresh, console, args.deepobs)


def _rerun(args: argparse.Namespace) -> int:
    from orchestrator.rerun import rerun

    store = _store(args)
    return rerun(store, store.check_run_id(args.run_id), args.force, console)


def _image_build(args: argparse.Namespace) -> int:
    from orchestrator import image

    built = image.build(args.name, args.output or image.default_output(args.name), args.torch_wheel, console,
                        plugins=args.plugin)
    console.print(f"Built {built.path} in {built.seconds:.0f} s: {built.size_bytes / 2**20:.1f} MiB, "
                  f"sha256 {built.sha256}")
    console.print(image.inspect_table(image.inspect(built.path)))
    return 0


def _image_inspect(args: argparse.Namespace) -> int:
    import json

    from orchestrator import image

    facts = image.inspect(args.path)
    if args.json:
        print(json.dumps(facts, indent=2))
    else:
        console.print(image.inspect_table(facts))
    return 0


def _summary_table(summary, title: str) -> Table:
    """The headline of the aggregator's summary: one row per setting, medians and quantile bands over seeds."""
    table = Table(title=title)
    for header in ("problem", "setting", "runs", "done", "diverged", "metric", "final test", "best valid"):
        table.add_column(header, justify="left" if header in ("problem", "setting", "metric") else "right")
    for row in summary.to_dict("records"):
        table.add_row(
            *(str(row[key]) for key in ("problem", "label", "runs", "completed", "diverged", "metric")),
            _band(row, "final_test"), _band(row, "best_valid"),
        )
    return table


def _band(row: dict, stat: str) -> str:
    """``median [q_low, q_high]`` to 4 significant digits, or ``–`` when no seed reached it."""
    median = row.get(f"{stat}_median")
    if median is None or median != median:
        return "–"
    bounds = sorted(k for k in row if k.startswith(f"{stat}_q"))
    band = ", ".join(f"{row[k]:.4g}" for k in bounds)
    return f"{median:.4g} [{band}]" if band else f"{median:.4g}"


if __name__ == "__main__":
    sys.exit(main())
