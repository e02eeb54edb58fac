"""Pipeline runs over HTTP: the read methods of ``PipelineService``, and cancel.

Running a pipeline stays local to the process that drives it; a remote project reads the
runs the team's drivers recorded, their task runs and logs, and asks a run to stop.
"""

from __future__ import annotations

import builtins
from typing import Any
from urllib.parse import quote

from shipyard.client.http import ApiClient
from shipyard.domain.pipelines import PipelineRun, TaskRun
from shipyard.domain.records import from_record
from shipyard.errors import InvalidArgumentError

__all__ = ["RemotePipelineService"]


class RemotePipelineService:
    """The pipeline service of a remote project (see ``PipelineService``).

    Args:
        client: the connection to the server.
    """

    def __init__(self, client: ApiClient) -> None:
        self._client = client

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

    def cancel(self, run_id: str) -> PipelineRun:
        """Ask a running run to stop; its driver sees it within a second.

        Raises:
            NotFoundError: if no run has this id.
            ConflictError: if the run has ended.
        """
        found = self._client.call("POST", _path(run_id, "/cancel"))
        return from_record(PipelineRun, found)


def _path(run_id: str, tail: str = "") -> str:
    # Quoted: an id with a "/" or ".." must not reach another route.
    return f"/pipelines/runs/{quote(run_id, safe='')}{tail}"
