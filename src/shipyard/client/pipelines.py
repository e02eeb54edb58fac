"""Pipelines over HTTP: run one here with its records on the server, read and cancel runs.

A pipeline runs where it is called, as in a local project: the body, the DAG and the tasks
run in this process, its task processes or Ray. Only the records go to the server: the run's
start, batches of task rows with a heartbeat and the end (``RemoteRunBook``), results and
logs uploaded by digest, cache lookups. Tasks that create runs, dataset versions or model
versions through the server send the pipeline run's id, and the server links them to it.
Reads of runs, task runs and logs, and cancel, are the server's routes.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import quote

from shipyard.client.blobs import RemoteBlobs
from shipyard.client.http import ApiClient
from shipyard.domain.datasets import DatasetVersion
from shipyard.domain.ids import host_label
from shipyard.domain.pipelines import PipelineRun, TaskRun
from shipyard.domain.records import from_record
from shipyard.errors import InvalidArgumentError
from shipyard.services.pipelines import PipelineService
from shipyard.settings import Settings

__all__ = ["RemotePipelineService", "RemoteRunBook"]

_ROWS = 10_000  # task rows a request carries at most (the server's limit)


class RemoteRunBook:
    """A ``RunBook`` that sends a driver's records to a server.

    Args:
        client: the connection to the server.
    """

    def __init__(self, client: ApiClient) -> None:
        self._client = client

    def begin(self, fields: Mapping[str, Any]) -> str:
        """Record the run on the server (as the token's user); its id."""
        body = dict(fields)
        body["params"] = json.loads(body["params"])
        body["host"] = host_label(str(body["host"]))
        found: dict[str, Any] = self._client.call("POST", "/pipelines/runs", body=body)
        return str(found["id"])

    def write(
        self,
        run_id: str,
        tasks: Sequence[Mapping[str, Any]],
        run: Mapping[str, Any],
        *,
        beat: bool,
    ) -> bool:
        """Send task rows (``_ROWS`` a request, the run's end with the last); the cancel flag."""
        rows = [_task_body(t) for t in tasks]
        cancel = False
        for start in range(0, max(len(rows), 1), _ROWS):
            last = start + _ROWS >= len(rows)
            body = {
                "tasks": rows[start : start + _ROWS],
                "run": dict(run) if run and last else None,
                "beat": beat and last,
            }
            answer = self._client.call("POST", _path(run_id, "/records"), body=body)
            cancel = cancel or bool(answer["cancel_requested"])
        return cancel

    def lookup(self, cache_key: str) -> str | None:
        """The digest of a stored result for this cache key, among this user's runs."""
        answer = self._client.call("GET", f"/pipelines/cache/{quote(cache_key, safe='')}")
        digest: str | None = answer["result_digest"]
        return digest


def _task_body(row: Mapping[str, Any]) -> dict[str, Any]:
    body = {k: v for k, v in row.items() if k != "heartbeat_at"}
    if isinstance(body.get("upstream"), str):
        body["upstream"] = json.loads(body["upstream"])
    for column in ("started_at", "ended_at"):
        moment = body.get(column)
        if isinstance(moment, datetime):
            body[column] = moment.isoformat()
    return body


class RemotePipelineService(PipelineService):
    """The pipeline service of a remote project (see ``PipelineService``).

    ``run`` and ``resume`` are the local service's: only where records, results and logs
    go differs.

    Args:
        client: the connection to the server.
        blobs: the server's content (results and logs by digest).
        settings: the local settings (default executor, notification sinks); default:
            those of the working directory.
        resolve_dataset: resolves a dataset reference on the server (cached task results
            made from ``name@latest`` are reused only while it resolves alike).
    """

    def __init__(
        self,
        client: ApiClient,
        blobs: RemoteBlobs,
        settings: Settings | None = None,
        resolve_dataset: Callable[[str], DatasetVersion] | None = None,
    ) -> None:
        # Not PipelineService.__init__: there is no store here. Every method that reads
        # or writes one is overridden below or goes through the book and the blobs.
        self._client = client
        self._content = blobs
        self._settings = settings if settings is not None else Settings.load()
        self._audit = None
        self._resolve_dataset = resolve_dataset
        self._book = RemoteRunBook(client)
        self._me: str | None = None

    def get(self, run_id: str) -> PipelineRun:
        """A pipeline run by id (or a unique id prefix of 6+ characters).

        Raises:
            NotFoundError: if no run has this id.
        """
        return from_record(PipelineRun, self._client.call("GET", _path(run_id)))

    def list(
        self, *, pipeline: str | None = None, status: str | None = None, limit: int = 50
    ) -> builtins.list[PipelineRun]:
        """Runs, newest first, of one pipeline and in one state if asked."""
        params: dict[str, Any] = {"limit": limit}
        if pipeline:
            params["pipeline"] = pipeline
        if status:
            params["status"] = status
        found = self._client.call("GET", "/pipelines/runs", params=params)
        return [from_record(PipelineRun, r) for r in found]

    def tasks(self, run_id: str) -> builtins.list[TaskRun]:
        """The run's task runs, in start order."""
        found = self._client.call("GET", _path(run_id, "/tasks"))
        return [from_record(TaskRun, t) for t in found]

    def describe(self, run_id: str) -> tuple[PipelineRun, builtins.list[TaskRun]]:
        """A run and its task runs."""
        run = self.get(run_id)
        return run, self.tasks(run.id)

    def report_html(self, run_id: str) -> str:
        """A self-contained HTML page with the run's timeline (Gantt chart) and tasks."""
        from shipyard.services.pipeline_reports import render_run_html

        run, tasks = self.describe(run_id)
        return render_run_html(run, tasks)

    def logs(self, run_id: str, task: str | None = None) -> builtins.list[tuple[str, str]]:
        """``(task key, log text)`` of the run's tasks that logged (or of task ``task``).

        Raises:
            NotFoundError: if no run has this id.
            InvalidArgumentError: if the run has no task ``task`` (a key or a task name).
        """
        run, found = self.describe(run_id)
        if task is not None:
            found = [t for t in found if task in (t.key, t.task)]
            if not found:
                raise InvalidArgumentError(f"pipeline run {run_id} has no task {task!r}")
        return [
            (t.key, self._log_bytes(run.id, t.key).decode("utf-8", "replace"))
            for t in found
            if t.log_digest
        ]

    def _log_bytes(self, run_id: str, key: str) -> bytes:
        """The captured logs of one task (by key) as stored, empty when it logged nothing.

        Raises:
            NotFoundError: if the run or the task does not exist.
        """
        params = {"task": key}
        with self._client.stream("GET", _path(run_id, "/logs"), params=params) as answer:
            return b"".join(answer.iter_bytes())

    def cancel(self, run_id: str, *, actor: str | None = None) -> PipelineRun:
        """Ask a running run to stop; its driver sees it within a second.

        The server records the token's user as who asked (``actor`` is not sent).

        Raises:
            NotFoundError: if no run has this id.
            ConflictError: if the run has ended.
        """
        found = self._client.call("POST", _path(run_id, "/cancel"))
        return from_record(PipelineRun, found)

    def _reusable(self, run_id: str) -> dict[str, tuple[str, str]]:
        # Results are pickles: reuse those of one's own runs only (see PipelineIntake).
        if self.get(run_id).created_by != self._user_name():
            return {}
        return super()._reusable(run_id)

    def _user_name(self) -> str:
        if self._me is None:
            self._me = str(self._client.call("GET", "/whoami")["user"])
        return self._me


def _path(run_id: str, tail: str = "") -> str:
    # Quoted: an id with a "/" or ".." must not reach another route.
    return f"/pipelines/runs/{quote(run_id, safe='')}{tail}"
