"""The job entry point: run specs in their run folders, in this process.

:class:`RunPack` is what the Slurm launcher submits, one array task per
pack: ``executor.map_array(RunPack(runtime), packs)``, each pack a list of
``{"spec": ..., "run_dir": ...}``, plus ``"budget": {"epochs": b, "rung": i}``
for a run that successive halving trains only to epoch ``b`` (rung ``i``): it
ends ``stopped`` there, keeping its checkpoint, and a later item with a
larger budget continues it (see :mod:`orchestrator.halving`). Its runs go one after another in one
process, so starting Python and importing torch is paid once per task.
:func:`run` is one run, for the local launcher; ``python -m jobs.entry
RUN_DIR`` reruns the spec stored in a run folder, e.g. by hand inside a
container.

Every run resumes from the checkpoint in its folder when there is one for
it (see :mod:`jobs.checkpoint`), and otherwise starts afresh, keeping an
earlier attempt's files in ``attempt-<ms>/``. A failure marks the run
``failed`` with the end of its traceback; the exception reaches the
scheduler, so a failed run never looks COMPLETED. With several ranks
(:mod:`jobs.distributed`) rank 0 alone writes the run folder and W&B.

``runtime``: ``{"logger": {"mode", "project", "group", ...}, "threads": int | None,
"data_dir": str | None, "container": dict | None, "plugin_paths": [str]}``;
``container`` is what the launcher checked about the image the job must run
in (see :mod:`orchestrator.container`), recorded in the run's provenance;
``plugin_paths`` are the source folders of the sweep's plugins that no
installed package holds (see :func:`jobs.plugins.source_root`), put on the
import path before a run is built.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import submitit
import yaml

from jobs import plugins
from jobs.attempt import (
    DEFAULT_RUNTIME,
    begin_attempt,
    check_container,
    failure_text,
    job_id,
    nothing_to_do,
    record_outcome,
)
from jobs.run_folder import (
    FINAL_STATES,
    PROVENANCE,
    SPEC,
    RunFolder,
    RunSuperseded,
    restrict_umask,
    write_json,
)
from jobs.schema import SpecError
from jobs.sinks import WANDB_MODES, FanOut, open_sinks
from jobs.spec import run_id as compute_run_id
from jobs.spec import validate_spec

if TYPE_CHECKING:
    from jobs.distributed import World

log = logging.getLogger(__name__)



def run(spec: Mapping[str, Any], run_dir: str | Path, runtime: Mapping[str, Any] | None = None,
        budget: Mapping[str, int] | None = None) -> dict[str, Any] | None:
    """One run in this process (with the ranks the environment names); returns its summary, raises its error.

    A run done already runs again (a rerun by hand); with a ``budget``, None when there is nothing to do:
    the run is done, or stopped at that budget already.
    """
    from jobs import distributed

    with distributed.session() as world:
        folder = RunFolder(run_dir)
        if budget is not None and world.broadcast(nothing_to_do(folder, budget) if world.lead else None):
            return None
        return RunPack(runtime).attempt(spec, folder, world, budget)


class RunsFailed(RuntimeError):
    """Some runs of a pack failed; each one's status.json says why."""


class RunPack(submitit.helpers.Checkpointable):
    """The runs of one scheduler task, one after another; requeued by submitit at preemption or time limit.

    Runs already completed or diverged are skipped, so a requeued pack goes
    on where it stopped; the run that was interrupted resumes from its last
    epoch checkpoint. A failed run does not stop the pack; at the end,
    :class:`RunsFailed` names the failed runs, so the task exits non-zero.
    With several ranks a failure ends the pack at once instead: ranks that
    did not fail could not go on in step with those that did.
    """

    def __init__(self, runtime: Mapping[str, Any] | None = None):
        self.runtime = {**DEFAULT_RUNTIME, **(runtime or {})}
        self.current: RunFolder | None = None  # the run in progress, for checkpoint()
        self.group: list[RunFolder] = []  # the runs of the vectorised group in progress, for checkpoint()
        self.handed_back = False  # checkpoint() gave the run back to the scheduler: not a failure

    def __call__(self, pack: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        from jobs import distributed

        self.current, self.group, self.handed_back = None, [], False  # a requeued pack arrives pickled mid-run
        summaries, failed = [], []
        with distributed.session() as world:
            for item in pack:
                if "items" in item:  # a vectorised group (launcher.vectorize): its runs train together
                    summaries += self.attempt_group(item["items"], failed)
                    continue
                folder = RunFolder(item["run_dir"])
                if world.broadcast(nothing_to_do(folder, item.get("budget")) if world.lead else None):
                    continue
                try:
                    summaries.append(self.attempt(item["spec"], folder, world, item.get("budget")))
                except RunSuperseded:
                    raise  # cancelled or handed to another job: this task has nothing left to do
                except Exception:
                    if world.size > 1:
                        raise
                    log.exception("run %s failed", folder.run_id)
                    failed.append(folder.run_id)
        if failed:
            runs = sum(len(item["items"]) if "items" in item else 1 for item in pack)
            raise RunsFailed(f"{len(failed)} of {runs} runs failed: {', '.join(failed)}; "
                             "see status.json in their run folders.")
        return summaries

    def attempt_group(self, items: Sequence[Mapping[str, Any]], failed: list[str]) -> list[dict[str, Any]]:
        """One attempt at a vectorised group (:func:`jobs.vectorized.run_group`); its failed runs go to ``failed``."""
        from jobs.vectorized import run_group

        self.group = [RunFolder(item["run_dir"]) for item in items]
        try:
            return run_group(items, self.runtime, handed_back=lambda: self.handed_back)
        except RunSuperseded:
            raise
        except Exception:
            log.exception("vectorised group of %d runs failed", len(items))
            failed += [f.run_id for f in self.group if f.state == "failed"]
            return []
        finally:
            self.group = []

    def checkpoint(self, pack: Sequence[Mapping[str, Any]]) -> submitit.helpers.DelayedSubmission:
        """Called by submitit on rank 0 at preemption or time limit (SIGUSR2), before it requeues the task.

        The run in progress (or the vectorised group's runs not yet ended) goes back to ``submitted``
        with ``requeued: true``; its last epoch checkpoint is already on disk, so nothing is saved here.
        """
        for folder in [self.current] if self.current is not None else self.group:
            self.handed_back = True
            if folder.state not in FINAL_STATES:
                folder.set_state("submitted", requeued=True)
        return submitit.helpers.DelayedSubmission(self, pack)

    def attempt(self, spec: Mapping[str, Any], folder: RunFolder, world: World,
                budget: Mapping[str, int] | None = None) -> dict[str, Any]:
        """One attempt at one run, resumed where its checkpoint allows; rank 0 alone touches the folder.

        With a ``budget`` the run ends ``stopped`` at epoch ``budget["epochs"]`` (before its last) and keeps
        its checkpoint; the status says at which ``rung`` and after how many epochs (``budget_epochs``).
        """
        import torch

        from jobs import checkpoint, provenance
        from jobs.train import train

        restrict_umask()  # a job started by other means than optbench's CLI writes nothing world-writable either
        self.current, sinks = folder, FanOut()
        try:
            if self.runtime["threads"]:
                torch.set_num_threads(int(self.runtime["threads"]))
            folder.owner = job_id()
            check_container(self.runtime["container"])
            plugins.add_source_folders(self.runtime["plugin_paths"])
            resume = begin_attempt(folder, spec) if world.lead else None
            resuming = world.broadcast(resume is not None)
            if resuming and not world.lead:
                resume = checkpoint.load(folder)
            world.barrier()  # every rank has read the checkpoint before rank 0 may replace it
            if world.lead:
                write_json(folder.path(PROVENANCE), provenance.collect(self.runtime, spec))
                sinks = open_sinks(folder, spec, self.runtime["logger"])

            def save(state: dict[str, Any]) -> None:
                sinks.flush()
                checkpoint.save(folder, state)

            summary = train(spec, sinks, world=world, resume=resume, save=save if world.lead else None,
                            data_dir=self.runtime["data_dir"], until=budget["epochs"] if budget else None)
            summary["run_id"] = folder.run_id
            sinks.close(summary, exit_code=0)
            if world.lead:
                record_outcome(folder, summary, budget)
            return summary
        except BaseException as error:
            if world.lead and not self.handed_back and not isinstance(error, RunSuperseded):
                folder.set_state("failed", error=failure_text(error))
            sinks.close({"state": "failed"}, exit_code=1)
            raise
        finally:
            self.current = None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.entry", description="Run the spec stored in a run folder.")
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--wandb", choices=WANDB_MODES, default="disabled", help="W&B mode (default: disabled)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--plugin-path", action="append", default=[], metavar="DIR",
                        help="a source folder of the spec's plugins, put on the import path (repeatable)")
    args = parser.parse_args(argv)
    spec_path = args.run_dir / SPEC
    if not spec_path.is_file():
        parser.error(f"{spec_path} does not exist; pass a run folder written by 'optbench launch'.")
    plugins.add_source_folders(args.plugin_path)
    try:
        spec = validate_spec(yaml.safe_load(spec_path.read_text()))
    except SpecError as error:
        parser.error(str(error))
    if compute_run_id(spec) != RunFolder(args.run_dir).run_id:
        parser.error(f"{spec_path} does not match its folder name; the run folder was edited or renamed.")
    summary = run(spec, args.run_dir, {"logger": {"mode": args.wandb}, "threads": args.threads,
                                       "plugin_paths": args.plugin_path})
    print(f"{args.run_dir.name}: {summary['state']} after {summary['steps']} steps")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
