"""The results folder's layout and its readers: the on-disk contract between the three planes.

Every plane names these files through this module and reads them through
its readers, which tolerate what a killed writer can leave (a missing file,
a torn last line); jobs write run folders, the control plane writes sweep
folders, the results plane only reads both.

The run folder ``<results>/runs/<run_id>/`` holds

``spec.yaml``
    the run spec, written by the job when it first starts (until then the
    sweep's ``runs.jsonl`` holds it).
``status.json``
    one state machine, :data:`STATES`; rewritten atomically. Besides
    ``state``: ``job_id``, ``node`` and ``pid`` of the job's process,
    ``attempts``, ``started``/``updated``/``ended``, ``error`` (traceback
    tail of a failure), ``resumed_from_epoch`` (null for a fresh start),
    ``requeued`` (handed back to the scheduler at preemption or time
    limit), ``progress`` (epoch, step and the heartbeat of
    :class:`jobs.sinks.StatusSink`), ``last`` (headline metrics of the
    latest evaluation) and ``wandb`` (where its W&B run lives). A run that
    successive halving did not promote is ``stopped`` at its rung:
    ``rung`` (0 first) and ``budget_epochs`` (the epochs it trained) say
    where; it keeps its last checkpoint, so a later rung continues it.
``metrics.jsonl``
    one JSON object per evaluation point, appended: ``epoch``, ``step``,
    ``time`` (seconds of training so far), ``{train,valid,test}_loss``,
    ``{train,valid,test}_accuracy`` where the problem has one, ``lr``
    (effective learning rate), ``forward_passes``, ``backward_passes``.
``steps.jsonl``
    per-step optimizer diagnostics at the configured cadence, appended.
``measurements.jsonl``
    runs with a ``measure`` section only: one JSON object per measured
    epoch boundary, appended: ``epoch``, ``step``, ``measurement`` (its
    name), ``examples`` (size of the measurement batch), ``seconds``,
    ``scalars`` (name → number) and ``arrays`` (name → list); see
    :mod:`jobs.measure`.
``summary.json``
    the outcome, written once at the end.
``provenance.json``
    where and with what the run ran.
``checkpoint.pt``, ``checkpoint.prev.pt``
    while the run is unfinished: the state at the last epoch boundary and at
    the one before, resumed from when the last does not load (and
    ``checkpoint.next.pt``, a new one staged while it is saved; see
    :mod:`jobs.checkpoint`); deleted when the run completes or diverges.
``reruns/<n>/``
    run folders of ``optbench rerun`` (same layout, plus ``comparison.json``).

The sweep folder ``<results>/sweeps/<sweep_id>/`` holds

``sweep.json``
    how the sweep was made (name, overrides, protocol, ``search``: the
    strategy, its seed, trials, studies and space) and how its runs execute
    (launcher, container, logger, data folder), when it was created and how
    often launched.
``runs.jsonl``
    one line per run: ``run_id``, ``setting_id``, ``spec``; a run drawn by
    a search also has ``study`` (which independent search it belongs to, 0
    first) and ``trial`` (its draw within that study, 0 first).
``jobs.jsonl``
    the submission ledger (:mod:`orchestrator.ledger`), appended.
``launch.lock``
    held by the one launcher at work on the sweep (:mod:`orchestrator.lock`).
``protocol.json``
    a protocol's first stage: its controller job and its second stage.
``halving.jsonl``
    successive halving's log (:mod:`orchestrator.halving`), appended: per
    bracket and rung, ``started`` when its runs went in, then ``decided``
    with every candidate's ``score`` and the ``promoted`` ones; its
    ``controller`` jobs.
``aggregate/``, ``report.html``
    the aggregator's tables and figures, and the report.

Every write is atomic (write to a temporary file, fsync, rename) or an
append of whole lines, so a killed job never leaves a file that cannot be
read; readers of ``.jsonl`` files ignore a torn last line.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

STATES = ("pending", "submitted", "running", "completed", "failed", "diverged", "timeout", "cancelled", "stopped")
FINAL_STATES = frozenset({"completed", "failed", "diverged", "timeout", "cancelled", "stopped"})
#: Final states whose result is kept: launching again does not rerun them.
DONE_STATES = frozenset({"completed", "diverged"})

SPEC = "spec.yaml"
STATUS = "status.json"
METRICS = "metrics.jsonl"
STEPS = "steps.jsonl"
MEASUREMENTS = "measurements.jsonl"
SUMMARY = "summary.json"
PROVENANCE = "provenance.json"
CHECKPOINT = "checkpoint.pt"
RERUNS = "reruns"  # runs/<run_id>/reruns/<n>/: run folders of `optbench rerun`

SWEEP_FILE = "sweep.json"
RUNS_FILE = "runs.jsonl"
JOBS_FILE = "jobs.jsonl"
LOCK_FILE = "launch.lock"
PROTOCOL_FILE = "protocol.json"
HALVING_FILE = "halving.jsonl"
AGGREGATE_DIR = "aggregate"
REPORT_FILE = "report.html"

#: The fields of a ``metrics.jsonl`` line, in the order tables show them (a problem without accuracy has none).
METRIC_KEYS = ("step", "time", "train_loss", "valid_loss", "test_loss", "train_accuracy", "valid_accuracy",
               "test_accuracy", "lr", "forward_passes", "backward_passes")
#: The metrics ``status.json`` keeps of the latest evaluation (its ``last``).
HEADLINE_METRICS = ("train_loss", "valid_loss", "valid_accuracy", "test_loss", "test_accuracy")


@contextmanager
def atomic_file(path: Path, mode: str = "w") -> Iterator[IO[Any]]:
    """A handle whose content replaces ``path`` only when the block ends without an error.

    Readers see the old file or the new one, never half: the content goes
    to a temporary file beside ``path``, is fsynced and renamed over it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp made it private; a new file follows the umask
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` atomically (see :func:`atomic_file`)."""
    with atomic_file(path, "w") as handle:
        handle.write(text)


def restrict_umask() -> int:
    """Keep the user's umask, adding that others may not write: optbench never makes world-writable files.

    The CLI and every job call it first; a job started by the CLI inherits
    it anyway (Slurm passes the submitter's umask on, Apptainer too). Returns
    the umask now in force.
    """
    mask = os.umask(0o077) | 0o002  # for the instant in between, a file another thread creates stays private
    os.umask(mask)
    return mask


def current_umask() -> int:
    """This process's umask, read without setting it where Linux tells it (a thread-safe read)."""
    try:
        with open("/proc/self/status", encoding="utf-8", errors="replace") as status:
            return next(int(line.split()[1], 8) for line in status if line.startswith("Umask:"))
    except (OSError, StopIteration):  # not Linux, or a kernel before 4.7
        mask = os.umask(0o077)
        os.umask(mask)
        return mask


def write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True, allow_nan=True) + "\n")


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def append_jsonl(path: Path, records: Iterable[dict[str, Any]]) -> None:
    """Append whole lines in one write, flushed to disk; a failed append (a full disk) adds nothing.

    The part of a payload that fitted would otherwise stay as a torn line that
    the next append, once there is room, glues its first record onto.
    """
    payload = "".join(json.dumps(r, sort_keys=True, allow_nan=True) + "\n" for r in records).encode("utf-8")
    if not payload:
        return
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        end = os.fstat(fd).st_size
        try:
            rest = memoryview(payload)
            while rest:
                rest = rest[os.write(fd, rest):]
            os.fsync(fd)
        except OSError:
            os.ftruncate(fd, end)
            raise
    finally:
        os.close(fd)


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """Yield the complete records of an append-only file; a torn last line is skipped."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return
    end = text.rfind("\n")
    for line in text[: end + 1].splitlines():
        if line.strip():
            yield json.loads(line)


def count_lines(path: Path) -> int:
    """Complete lines of an append-only file (a torn last line does not count); 0 when it is missing."""
    try:
        with open(path, "rb") as handle:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))
    except FileNotFoundError:
        return 0


def cut_lines(path: Path, lines: int) -> None:
    """Keep the first ``lines`` complete lines of ``path``, rewriting it atomically; ``lines=0`` removes it."""
    if lines == 0:
        path.unlink(missing_ok=True)
        return
    data = path.read_bytes()
    end = -1
    for _ in range(lines):
        end = data.index(b"\n", end + 1)
    if end + 1 < len(data):
        with atomic_file(path, "wb") as handle:
            handle.write(data[: end + 1])


def read_status(path: Path, run_id: str | None = None) -> dict[str, Any]:
    """A ``status.json``: ``pending`` where there is none, ``unknown`` (with the reason) where it cannot be read.

    Written atomically, it is only unreadable when something else damaged it.
    """
    try:
        return read_json(path)
    except (FileNotFoundError, NotADirectoryError):
        return {"state": "pending", "run_id": run_id or path.parent.name}
    except (OSError, ValueError) as error:
        return {"state": "unknown", "run_id": run_id or path.parent.name, "error": f"cannot read {path}: {error}"}


def read_sweep_info(sweep_dir: Path) -> dict[str, Any]:
    """A sweep's ``sweep.json``; :class:`FileNotFoundError` (one sentence) when the folder is no sweep."""
    path = Path(sweep_dir) / SWEEP_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; pass a sweep folder written by 'optbench launch'.")
    info = read_json(path)
    info.setdefault("sweep_id", Path(sweep_dir).name)
    return info


def read_sweep_runs(sweep_dir: Path) -> list[dict[str, Any]]:
    """A sweep's runs (``run_id``, ``setting_id``, ``spec``) in file order, each once; [] when it lists none."""
    entries, seen = [], set()
    for entry in read_jsonl(Path(sweep_dir) / RUNS_FILE):
        if entry["run_id"] in seen:
            continue
        seen.add(entry["run_id"])
        if not entry.get("setting_id"):  # written before runs.jsonl kept it
            from jobs.spec import setting_id

            entry["setting_id"] = setting_id(entry["spec"])
        entries.append(entry)
    return entries


class RunSuperseded(RuntimeError):
    """The run was cancelled or handed to another job: this job must not write its status any more."""


class RunFolder:
    """Paths and state of one run; cheap to create, touches the disk only when asked.

    A job sets ``owner`` to its scheduler job id. From then on its status
    writes are fenced: once the control plane has cancelled the run or
    submitted it again as another job, they raise :class:`RunSuperseded`
    instead of overwriting the newer state (a cancelled job keeps running
    for seconds before Slurm kills it).
    """

    def __init__(self, root: Path | str, owner: str | None = None):
        self.root = Path(root)
        self.owner = owner

    @property
    def run_id(self) -> str:
        """The folder's name; a rerun's folder ``runs/<run_id>/reruns/<n>/`` belongs to its run."""
        if self.root.parent.name == RERUNS:
            return self.root.parent.parent.name
        return self.root.name

    def path(self, name: str) -> Path:
        return self.root / name

    def status(self) -> dict[str, Any]:
        """The last written status (see :func:`read_status`)."""
        return read_status(self.path(STATUS), self.run_id)

    @property
    def state(self) -> str:
        return self.status()["state"]

    def set_state(self, state: str, **fields: Any) -> dict[str, Any]:
        """Move to ``state``, keeping earlier fields; timestamps are seconds since the epoch."""
        if state not in STATES:
            raise ValueError(f"unknown run state {state!r}")
        status = self._owned_status()
        status.update(fields)
        status.update(state=state, run_id=self.run_id, updated=time.time())
        if state == "running":
            status["started"] = status["updated"]
            status["attempts"] = int(status.get("attempts", 0)) + 1
        if state in FINAL_STATES:
            status["ended"] = status["updated"]
        write_json(self.path(STATUS), status)
        return status

    def update(self, **fields: Any) -> dict[str, Any]:
        """Merge ``fields`` into the status without changing the state (progress reports)."""
        status = self._owned_status()
        status.update(fields)
        status.update(run_id=self.run_id, updated=time.time())
        write_json(self.path(STATUS), status)
        return status

    def _owned_status(self) -> dict[str, Any]:
        status = self.status()
        if self.owner is None:
            return status
        if status.get("job_id") not in (None, self.owner):
            raise RunSuperseded(f"run {self.run_id} now belongs to job {status['job_id']}, not {self.owner}")
        if status["state"] == "cancelled":
            raise RunSuperseded(f"run {self.run_id} was cancelled")
        return status

    def metrics(self) -> list[dict[str, Any]]:
        return list(read_jsonl(self.path(METRICS)))

    def summary(self) -> dict[str, Any] | None:
        try:
            return read_json(self.path(SUMMARY))
        except FileNotFoundError:
            return None
