"""A fake W&B server (a mock: W&B's real server cannot be reached from the tests).

It answers, in memory and minimally, what wandb 0.31's Go core asks while a
run logs online or ``wandb sync`` uploads a record log: the GraphQL
operations ``RunResumeStatus`` (the run, once it exists, so that W&B
resumes it after its last step), ``UpsertBucket`` (create or update the
run), ``CreateRunFiles`` (where to upload its files), ``ServerFeaturesQuery``
and ``CreateArtifact`` (the summary run's tables, answered as already
stored, so they need no upload); the uploads themselves (PUT); and the file
stream (``POST /files/<entity>/<project>/<run>/file_stream``) that carries
history rows, the summary and the exit code. Anything else is answered with
an empty success and recorded in ``unknown``; errors of the server itself
go to ``errors``. With ``refuse`` set, it refuses to create runs with that
message, as W&B does for a project the key cannot write to.
"""

from __future__ import annotations

import json
import sys
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ENTITY = "fake-entity"
API_KEY = "f" * 40


@dataclass
class FakeRun:
    name: str
    project: str
    upserts: list[dict[str, Any]] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    files: set[str] = field(default_factory=set)
    exitcode: int | None = None

    def bucket(self) -> dict[str, Any]:
        config = {}
        for upsert in self.upserts:
            config.update(json.loads(upsert.get("config") or "{}"))
        return {"id": f"bucket-{self.name}", "name": self.name, "displayName": self.name, "description": None,
                "config": json.dumps(config), "sweepName": None, "historyLineCount": len(self.history),
                "historyTail": json.dumps([json.dumps(row) for row in self.history[-1:]]),
                "summaryMetrics": json.dumps(self.summary), "logLineCount": 0, "eventsLineCount": 0,
                "eventsTail": "[]", "tags": [], "notes": None,
                # W&B resumes a run only once its config holds the telemetry ("t") of a started run
                "wandbConfig": json.dumps({"t": config.get("_wandb", {}).get("value", {}).get("t", {})})}


class FakeWandb:
    """Serves on 127.0.0.1 from a thread while used as a context manager; ``url`` is its WANDB_BASE_URL."""

    def __init__(self, refuse: str | None = None) -> None:
        self.refuse = refuse
        self.runs: dict[str, FakeRun] = {}
        self.artifacts: list[str] = []
        self.unknown: list[str] = []
        self.errors: list[str] = []
        self.lock = threading.Lock()
        self.server = _Server(("127.0.0.1", 0), _handler(self))
        self.server.fake = self
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FakeWandb:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def project(self, name: str) -> dict[str, Any]:
        return {"id": f"project-{name}", "name": name, "entity": {"id": "entity-1", "name": ENTITY}}

    def graphql(self, operation: str, variables: dict[str, Any]) -> dict[str, Any]:
        """The ``data`` of the answer to a GraphQL operation; raises :class:`Refused` to answer with an error."""
        project = variables.get("project") or "optbench"
        if operation == "RunResumeStatus":
            run = self.runs.get(variables["name"])
            return {"model": {**self.project(project), "bucket": run.bucket() if run else None}}
        if operation == "UpsertBucket":
            if self.refuse:
                raise Refused(self.refuse)
            run = self.runs.setdefault(variables["name"], FakeRun(variables["name"], project))
            run.upserts.append(variables)
            bucket = {**run.bucket(), "project": self.project(project)}
            return {"upsertBucket": {"bucket": bucket, "inserted": len(run.upserts) == 1}}
        if operation == "CreateRunFiles":
            files = [{"name": name, "uploadUrl": f"{self.url}/upload/{variables['run']}/{name}"}
                     for name in variables["files"]]
            return {"createRunFiles": {"runID": f"bucket-{variables['run']}", "uploadHeaders": [], "files": files}}
        if operation == "ServerFeaturesQuery":
            return {"serverInfo": {"features": []}}
        if operation == "CreateArtifact":  # a table of the summary run: answered as already stored (deduplicated)
            artifact = {"id": f"artifact-{variables['input']['digest']}", "state": "COMMITTED"}
            self.artifacts.append(variables["input"]["artifactCollectionName"])
            return {"createArtifact": {"artifact": {**artifact, "artifactSequence": {
                "id": "sequence-1", "latestArtifact": {**artifact, "versionIndex": 0}}}}}
        self.unknown.append(f"graphql {operation}")
        return {}

    def file_stream(self, run_name: str, payload: dict[str, Any]) -> None:
        run = self.runs[run_name]
        files = payload.get("files") or {}
        run.history += [json.loads(line) for line in files.get("wandb-history.jsonl", {}).get("content", [])]
        for line in files.get("wandb-summary.json", {}).get("content", []):
            run.summary = json.loads(line)
        if payload.get("exitcode") is not None:
            run.exitcode = payload["exitcode"]


class Refused(Exception):
    """Answered as W&B answers a forbidden GraphQL request: status 403 and the message in ``errors``."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeWandb

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if not isinstance(error, ConnectionError):  # wandb-core dropping a keep-alive connection is no error
            self.fake.errors.append(repr(error))


def _handler(fake: FakeWandb) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self._body()
            with fake.lock:
                if self.path == "/graphql":
                    query = json.loads(body)
                    try:
                        data = fake.graphql(query.get("operationName"), query.get("variables") or {})
                    except Refused as refusal:
                        self._reply({"errors": [{"message": str(refusal)}]}, 403)
                        return
                    self._reply({"data": data})
                    return
                parts = self.path.strip("/").split("/")
                if len(parts) == 5 and parts[0] == "files" and parts[4] == "file_stream":
                    fake.file_stream(parts[3], json.loads(body))
                elif not self.path.startswith("/sdk/otel/"):  # wandb-core's own telemetry
                    fake.unknown.append(f"POST {self.path}")
            self._reply({})

        def do_PUT(self) -> None:
            self._body()
            with fake.lock:
                _, run_name, name = self.path.strip("/").split("/", 2)
                fake.runs[run_name].files.add(name)
            self._reply({})

        def do_GET(self) -> None:
            with fake.lock:
                fake.unknown.append(f"GET {self.path}")
            self._reply({})

        def _body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _reply(self, answer: dict[str, Any], status: int = 200) -> None:
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    return Handler
