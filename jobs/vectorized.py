"""Vectorised runs: runs that differ only in seed and continuous hyperparameters train together in one process.

A group is one problem and one optimizer, M runs: ``torch.func`` trains them
as one stacked model (:mod:`jobs.vectorized_train`), each run exactly as it
would train alone (bitwise on CPU for the MLPs, to rounding for the CNNs; see
that module), at a fraction of the cost of M processes. This module decides what may train
together and runs a group's run folders:

* :func:`can_vectorize`: None when the specs can form a group, else why not, in one line;
* :func:`group_runs`: a launcher's runs as groups of at most ``limit`` (runs that cannot
  join any group come back alone);
* :func:`run_group`: a group's runs in this process, each run folder written as
  :mod:`jobs.entry` writes one run's.

What may differ within a group: the seed, the optimizer's ``lr``, ``momentum``, ``dampening``
and ``weight_decay`` (SGD) or ``lr``, ``betas``, ``eps`` and ``weight_decay`` (Adam, AdamW), and
the schedule (each member has its own learning rate every step). Everything else is the
group's: the problem and its parameters, ``train``, device and precision, SGD's ``nesterov``
and whether its momentum is zero (no buffer at all). What cannot be vectorised runs alone, and
:func:`can_vectorize` says why:

* optimizers other than SGD, Adam and AdamW: line searches call the closure several times per
  step, curvature methods take Hessian or Fisher products of their own model, and the rest (and
  plugins) have no stacked update written for them; AMSGrad neither;
* problems other than :data:`PROBLEMS`: functions of the parameters alone (no model on data),
  networks with batch norm (running statistics are buffers updated in place), dropout or an
  LSTM, the VAE (it samples), plugins (their loss is not known in functional form);
* dropout: a run alone draws its masks from the global random stream that its seed starts; members
  of a group share one stream (``vmap``'s ``randomness="different"`` draws every member's masks
  at once), so their masks, and results, would differ from their runs'. digits_mlp is
  vectorised with ``dropout: 0`` only;
* a ``measure`` section (a measurement takes one run's model and optimizer), and several ranks (a
  group is one process).

This module imports no torch: launchers call :func:`can_vectorize` and :func:`group_runs` when
they plan.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from jobs import plugins
from jobs.attempt import DEFAULT_RUNTIME, begin_attempt, check_container, failure_text, nothing_to_do, record_outcome
from jobs.optim.registry import OPTIMIZERS
from jobs.run_folder import PROVENANCE, RunFolder, RunSuperseded, restrict_umask, write_json
from jobs.spec import canonical_json, flatten

Run = TypeVar("Run")

#: Problems a group can train: a fixed stack of layers (no batch norm, dropout or recurrence) on data.
PROBLEMS = ("digits_mlp", "digits_cnn", "mnist1d_mlp", "mnist1d_cnn", "mnist_logreg", "mnist_mlp", "mnist_2c2d",
            "mnist_cnn3192", "fmnist_logreg", "fmnist_mlp", "fmnist_2c2d", "cifar10_3c3d", "cifar100_3c3d", "svhn_3c3d")
#: Optimizer → the hyperparameters members may differ in.
VARYING = {"sgd": ("lr", "momentum", "dampening", "weight_decay"),
           "adam": ("lr", "betas", "eps", "weight_decay"),
           "adamw": ("lr", "betas", "eps", "weight_decay")}
LINE_SEARCHES = ("pal", "labpal", "sls", "gols_i", "pls")


def can_vectorize(specs: Sequence[Mapping[str, Any]]) -> str | None:
    """None when the validated ``specs`` can train as one group; else the reason, one line."""
    if not specs:
        return "there are no runs"
    for spec in specs:
        reason = _alone(spec)
        if reason is not None:
            return reason
    first = flatten(_group_key(specs[0]))
    for spec in specs[1:]:
        other = flatten(_group_key(spec))
        for key in sorted(first.keys() | other.keys()):
            if first.get(key) != other.get(key):
                varying = ", ".join(f"optimizer.{k}" for k in VARYING[spec["optimizer"]["name"]])
                return (f"the runs differ in {key} ({first.get(key)!r} and {other.get(key)!r}); a group's runs "
                        f"differ only in seed, schedule, {varying}")
    return None


def group_runs(runs: Sequence[Run], limit: int,
               spec: Callable[[Run], Mapping[str, Any]] = lambda run: run.spec) -> list[list[Run]]:
    """``runs`` as groups of at most ``limit`` that can each train together, in the order runs first appear.

    Runs that can train together are split into as few groups as ``limit`` allows, of sizes that differ
    by one at most; a run that cannot be vectorised is a group of its own. ``spec`` reads a run's
    validated spec (default: its ``spec`` attribute, as :class:`orchestrator.sweep.Run` has).
    """
    if limit < 1:
        raise ValueError(f"a group holds at least one run (got limit={limit})")
    together: dict[str, list[Run]] = {}
    for number, run in enumerate(runs):
        key = f"alone {number}" if _alone(spec(run)) is not None else canonical_json(_group_key(spec(run)))
        together.setdefault(key, []).append(run)
    groups = []
    for members in together.values():
        count = math.ceil(len(members) / limit)
        size, extra = divmod(len(members), count)
        start = 0
        for index in range(count):
            stop = start + size + (index < extra)
            groups.append(members[start:stop])
            start = stop
    return groups


def _alone(spec: Mapping[str, Any]) -> str | None:
    """Why this run cannot join any group, or None."""
    name, problem = spec["optimizer"]["name"], spec["problem"]["name"]
    if spec["optimizer"].get("target") is not None:
        return f"optimizer {name} is a plugin: its update has no stacked form"
    entry = OPTIMIZERS.entry(name)
    if name in LINE_SEARCHES:
        return f"optimizer {name}: line searches call the closure several times per step"
    if entry.curvature:
        return f"optimizer {name}: curvature methods take Hessian or Fisher products of their own model"
    if name not in VARYING:
        return f"optimizer {name}: no stacked update is written for it (only for {', '.join(VARYING)})"
    if spec["optimizer"].get("amsgrad"):
        return f"optimizer {name} with amsgrad: AMSGrad has no stacked update"
    if spec["problem"].get("target") is not None:
        return f"problem {problem} is a plugin: its loss is not known in functional form"
    if problem not in PROBLEMS:
        return (f"problem {problem}: only a fixed stack of layers on data (no batch norm, dropout, recurrence or "
                f"sampling) is vectorised: {', '.join(PROBLEMS)}")
    if spec["problem"].get("dropout"):
        return (f"problem {problem} with dropout: each run draws its masks from its own seed's stream, which "
                "members of a group cannot share; use problem.dropout=0")
    if spec.get("measure") is not None:
        return "a measure section: measurements take one run's model and optimizer"
    return None


def _group_key(spec: Mapping[str, Any]) -> dict[str, Any]:
    """What the runs of one group share: the spec less its seed, schedule and varying hyperparameters."""
    optimizer = spec["optimizer"]
    shared = {k: v for k, v in optimizer.items() if k not in VARYING[optimizer["name"]]}
    if "momentum" in optimizer:
        shared["momentum_is_zero"] = optimizer["momentum"] == 0
    return {**{k: v for k, v in spec.items() if k not in ("seed", "schedule", "optimizer")}, "optimizer": shared}


# ---------------------------------------------------------------------- a group's run folders


class _Member:
    """One run of a group in its folder: begun, its sinks, its checkpoints, its end (once)."""

    def __init__(self, item: Mapping[str, Any]):
        self.spec, self.budget = item["spec"], item.get("budget")
        self.folder = RunFolder(item["run_dir"])
        self.resume: dict[str, Any] | None = None
        self.sinks: Any = None
        self.summary: dict[str, Any] | None = None
        self.ended = self.superseded = False

    def begin(self, runtime: Mapping[str, Any], group: list[str]) -> None:
        from jobs import provenance
        from jobs.sinks import open_sinks

        self.resume = begin_attempt(self.folder, self.spec)
        record = provenance.collect(runtime, self.spec)
        write_json(self.folder.path(PROVENANCE), {**record, "vectorized": {"members": len(group), "runs": group}})
        self.sinks = open_sinks(self.folder, self.spec, runtime["logger"])

    def tell(self, method: str, record: Any) -> None:
        """A sink call; once another job owns the run (cancelled, resubmitted) this member writes nothing more."""
        if self.superseded:
            return
        try:
            getattr(self.sinks, method)(record)
        except RunSuperseded:
            self.superseded = True

    def save(self, state: dict[str, Any]) -> None:
        from jobs import checkpoint

        if not self.superseded:
            self.sinks.flush()
            checkpoint.save(self.folder, state)

    def finish(self, summary: dict[str, Any]) -> None:
        """The run has left the group: its summary and final state, as a run alone ends (a failure here fails it)."""
        self.summary = {**summary, "run_id": self.folder.run_id}
        if not self.superseded:
            self.sinks.close(self.summary, exit_code=0)
            try:
                record_outcome(self.folder, self.summary, self.budget)
            except RunSuperseded:
                self.superseded = True
        self.ended = True

    def fail(self, error: BaseException) -> None:
        self.ended = True
        if not self.superseded:
            try:
                self.folder.set_state("failed", error=failure_text(error))
            except RunSuperseded:
                pass
        if self.sinks is not None:
            self.sinks.close({"state": "failed"}, exit_code=1)


class _Sink:
    """A member's sinks as the trainer sees them, through :meth:`_Member.tell`."""

    def __init__(self, member: _Member):
        self.member = member

    def log_eval(self, record: dict[str, Any]) -> None:
        self.member.tell("log_eval", record)

    def log_step(self, record: dict[str, Any]) -> None:
        self.member.tell("log_step", record)

    def log_measurement(self, record: dict[str, Any]) -> None:
        self.member.tell("log_measurement", record)

    def log_progress(self, record: dict[str, Any]) -> None:
        self.member.tell("log_progress", record)


def run_group(items: Sequence[Mapping[str, Any]], runtime: Mapping[str, Any] | None = None,
              handed_back: Callable[[], bool] = lambda: False) -> list[dict[str, Any]]:
    """Train the runs of ``items`` together in this process; the summaries of those that ran, in item order.

    ``items`` are :class:`jobs.entry.RunPack`'s: ``{"spec", "run_dir"}`` and an optional ``"budget"``
    (each member its own), specs that :func:`can_vectorize` accepts; ``runtime`` is jobs.entry's.
    Every run folder goes through what :meth:`jobs.entry.RunPack.attempt` writes for one run:
    ``spec.yaml``, ``running`` with its attempt, provenance (plus ``vectorized``: the group's size
    and run ids), metrics and steps through its sinks, checkpoints at every boundary, and at its end
    ``summary.json`` and its final state, written the moment the run leaves the group (a diverged
    member before the others finish). Runs already done are skipped, as a pack skips them; runs
    resuming from different boundaries (a group killed while saving) train as one group per
    boundary, one after the other. When the group fails, every run not yet ended is marked
    ``failed`` with the traceback and the error is raised. A run another job took over meanwhile
    (cancelled, resubmitted) trains on with the group but writes nothing more. ``handed_back()``
    true when the group fails: the scheduler took it back to requeue it (its runs are ``submitted``
    again, and resume from their checkpoints), so they are not marked failed.
    """
    import torch

    from jobs import distributed
    from jobs.vectorized_train import GroupTrainer

    reason = can_vectorize([item["spec"] for item in items])
    if reason is not None:
        raise ValueError(f"these runs cannot train as one group: {reason}.")
    runtime = {**DEFAULT_RUNTIME, **(runtime or {})}
    restrict_umask()
    with distributed.session() as world:
        if world.size > 1:
            raise ValueError("a vectorised group trains in one process; launch it with one task "
                             "(launcher.nodes=1, launcher.tasks_per_node=1).")
        members = [_Member(item) for item in items if not nothing_to_do(RunFolder(item["run_dir"]), item.get("budget"))]
        try:
            if runtime["threads"]:
                torch.set_num_threads(int(runtime["threads"]))
            check_container(runtime["container"])
            plugins.add_source_folders(runtime["plugin_paths"])
            group = [m.folder.run_id for m in members]
            for member in members:
                try:
                    member.begin(runtime, group)
                except RunSuperseded:
                    member.ended = member.superseded = True
            for part in _parts([m for m in members if not m.ended]):
                trainer = GroupTrainer([m.spec for m in part], [_Sink(m) for m in part],
                                       untils=[m.budget["epochs"] if m.budget else None for m in part],
                                       resumes=[m.resume for m in part], data_dir=runtime["data_dir"])
                trainer.run(save=lambda i, state, part=part: part[i].save(state),
                            finish=lambda i, summary, part=part: part[i].finish(summary),
                            resumed=part[0].resume is not None)
        except BaseException as error:
            for member in members:
                if not member.ended and not handed_back():
                    member.fail(error)
            raise
    return [m.summary for m in members if m.summary is not None]


def _parts(members: list[_Member]) -> list[list[_Member]]:
    """The members by where they start: afresh, or the epoch boundary they resume from; in order of appearance."""
    parts: dict[int | None, list[_Member]] = {}
    for member in members:
        parts.setdefault(None if member.resume is None else member.resume["epoch"], []).append(member)
    return list(parts.values())
