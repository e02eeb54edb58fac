"""Pipelines as a use case: run one, list and show runs, cancel, resume, read logs.

A run is driven by the process that calls ``run``: it records the run, opens the executor,
runs the body and DAG (``pipeline_runner``), and writes rows in batches with a heartbeat
(``pipeline_records``). Reads mark crashed the runs whose driver is gone.
"""

from __future__ import annotations

import builtins
import json
import os
import socket
import traceback
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from sqlalchemy import select

from shipyard.domain.datasets import DatasetVersion
from shipyard.domain.ids import utcnow
from shipyard.domain.notifications import NotificationEvent
from shipyard.domain.pipelines import TERMINAL, PipelineRun, TaskRun
from shipyard.errors import (
    ConflictError,
    InvalidArgumentError,
    NotFoundError,
    PipelineRunNotFoundError,
)
from shipyard.executors import Executor, executor_scheme, open_executor
from shipyard.services.audit import AuditService
from shipyard.services.notifications import Notifier
from shipyard.services.pipeline_book import RunBook, SqlRunBook
from shipyard.services.pipeline_caching import ResultStore, load_result, store_result
from shipyard.services.pipeline_lineage import install_lineage_hook
from shipyard.services.pipeline_records import (
    RunRecorder,
    pipeline_run_from_row,
    reap_zombies,
    task_run_from_row,
)
from shipyard.services.pipeline_runner import Runner, task_row
from shipyard.services.pipeline_targets import load_pipeline
from shipyard.services.pipeline_tasks import Pipeline
from shipyard.settings import Settings
from shipyard.stores.metadata import SqlMetadataStore
from shipyard.stores.metadata.schema import pipeline_runs, task_runs

__all__ = ["PipelineService", "load_pipeline"]


class PipelineService:
    """Runs pipelines and reads their runs.

    Args:
        metadata: the metadata store.
        content: the artifact store (results, logs).
        settings: the project's settings (default executor, notification sinks).
        user: who starts runs.
        resolve_dataset: resolves a dataset reference (``datasets.resolve``): a cached task
            result made from ``name@latest`` is reused only while it resolves alike.
    """

    def __init__(
        self,
        metadata: SqlMetadataStore,
        content: ResultStore,
        settings: Settings,
        *,
        user: str,
        audit: AuditService | None = None,
        resolve_dataset: Callable[[str], DatasetVersion] | None = None,
    ) -> None:
        self._metadata = metadata
        self._content = content
        self._settings = settings
        self._user = user
        self._audit = audit
        self._resolve_dataset = resolve_dataset
        self._book: RunBook = SqlRunBook(metadata, user)
        install_lineage_hook(metadata, user)

    # -- running ---------------------------------------------------------------------

    def run(
        self,
        target_or_pipeline: str | Pipeline,
        params: dict[str, Any] | None = None,
        *,
        executor: str | None = None,
        cache: bool = True,
        schedule: str | None = None,
        resumed_from: str | None = None,
        max_workers: int | None = None,
    ) -> PipelineRun:
        """Run a pipeline now, in this process, and return the ended run.

        Args:
            target_or_pipeline: a ``Pipeline`` or a target (``"file.py:flow"``).
            params: the pipeline's parameters (strings are converted to the annotations).
            executor: ``"local"``, ``"ray"`` or ``"ray://host:port"`` (default: settings).
            cache: let ``cache=True`` tasks reuse stored results (``--no-cache``: False).
            schedule: the schedule that started the run, if one did.
            resumed_from: a run whose succeeded tasks' results this run reuses.
            max_workers: tasks that run at once.

        Returns:
            The run; ``run.result`` is the pipeline's value when it succeeded.

        Raises:
            InvalidArgumentError: for unknown, missing or mistyped parameters, or an
                unknown executor.
            PipelineNotFoundError: when the target cannot be loaded.
        """
        flow = (
            target_or_pipeline
            if isinstance(target_or_pipeline, Pipeline)
            else load_pipeline(target_or_pipeline)
        )
        values = flow.validate(params or {})
        try:
            params_json = json.dumps(values, sort_keys=True)
        except TypeError as exc:
            raise InvalidArgumentError(f"parameters must be JSON values: {exc}") from None
        executor_spec = executor or self._settings.executor
        executor_scheme(executor_spec)
        reuse = self._reusable(resumed_from) if resumed_from else {}
        pool = open_executor(executor_spec, max_workers=max_workers)
        try:
            return self._drive(
                flow, values, params_json, pool, executor_spec, schedule, resumed_from, reuse, cache
            )
        finally:
            # After a cancel, do not wait for in-process tasks (threads cannot be killed):
            # the run has ended, their results are dropped.
            pool.shutdown(wait=False)

    def _drive(
        self,
        flow: Pipeline,
        values: dict[str, Any],
        params_json: str,
        pool: Executor,
        executor_spec: str,
        schedule: str | None,
        resumed_from: str | None,
        reuse: dict[str, tuple[str, str]],
        cache: bool,
    ) -> PipelineRun:
        """Record the run, drive it to its end on ``pool``, record how it ended."""
        # A malformed sink is refused before the run is recorded, never leaving it "running".
        notifier = Notifier.from_settings(self._settings, flow.notify)
        run_id = self._book.begin(
            {
                "pipeline": flow.name,
                "target": flow.target,
                "params": params_json,
                "executor": executor_spec,
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "resumed_from": resumed_from,
                "schedule": schedule,
            }
        )

        def event(kind: str, key: str | None, message: str, status: str = "running") -> None:
            notifier.send(
                NotificationEvent(kind, flow.name, run_id, status, key, message, utcnow())  # type: ignore[arg-type]
            )

        runner: Runner | None = None
        recorder = RunRecorder(
            self._book,
            self._content,
            run_id,
            task_row,
            lambda: runner.cancel() if runner else None,
        )
        value: Any = None
        error: str | None
        try:
            runner = Runner(
                run_id,
                pool,
                self._content,
                recorder,
                use_cache=cache,
                lookup=self._lookup,
                reuse=reuse,
                on_event=event,
                content_of=self._content_of,
            )
            recorder.start()
            value, error = runner.execute(flow.fn, values)
        except Exception:
            error = traceback.format_exc()
        failed = runner.failed_keys() if runner else []
        cancelled = runner is not None and runner.cancelled
        status = "cancelled" if cancelled else "failed" if error or failed else "succeeded"
        result_digest = None
        if status == "succeeded":
            try:
                result_digest = store_result(self._content, f"{flow.name} (the result)", value)
            except InvalidArgumentError as exc:
                status, error = "failed", str(exc)
        if status != "succeeded" and runner is not None:
            runner.keep_results()
        if status == "failed" and not error:
            error = f"task(s) failed: {', '.join(failed)}"
        recorder.close({"status": status, "error": error, "result_digest": result_digest})
        # Single call site of notifications (success / failure of the run).
        if status in ("succeeded", "failed"):
            kind = "success" if status == "succeeded" else "failure"
            event(kind, failed[0] if failed else None, (error or "")[-500:], status)
        record = self.get(run_id)
        return replace(record, _result=value if status == "succeeded" else None)

    def resume(self, run_id: str, *, executor: str | None = None) -> PipelineRun:
        """Run a failed, cancelled or crashed run again, reusing what it computed.

        The run's target runs with the same parameters; a task whose key and cache key
        match a succeeded task of that run takes its stored result (status ``cached``).

        Raises:
            PipelineRunNotFoundError: if no run has this id.
            ConflictError: if the run is still running or succeeded.
        """
        previous = self.get(run_id)
        if previous.status in ("running", "pending", "succeeded"):
            raise ConflictError(
                f"pipeline run {run_id} is {previous.status}; only failed, cancelled or "
                "crashed runs can be resumed"
            )
        return self.run(
            previous.target,
            previous.params,
            executor=executor or previous.executor,
            resumed_from=previous.id,
        )

    def cancel(self, run_id: str, *, actor: str | None = None) -> PipelineRun:
        """Ask a running run to stop; its driver sees it within a second.

        Args:
            run_id: the run (or a unique prefix of 6+ characters of its id).
            actor: who asks, for the audit log (default: this service's user).

        Raises:
            PipelineRunNotFoundError: if no run has this id.
            ConflictError: if the run has ended.
        """
        run = self.get(run_id)
        if run.status in TERMINAL:
            raise ConflictError(
                f"pipeline run {run_id} has ended ({run.status}); nothing to cancel"
            )
        with self._metadata.write() as conn:
            conn.execute(
                pipeline_runs.update()
                .where(pipeline_runs.c.id == run.id)
                .values(cancel_requested=True)
            )
            if self._audit is not None:
                self._audit.record(
                    conn,
                    actor=actor or self._user,
                    action="pipeline_run.cancel",
                    entity_kind="pipeline_run",
                    entity_id=run.id,
                    before={"status": run.status, "cancel_requested": run.cancel_requested},
                    after={"cancel_requested": True},
                )
        return self.get(run.id)

    # -- reading ---------------------------------------------------------------------

    def get(self, run_id: str) -> PipelineRun:
        """A pipeline run by id (or a unique id prefix of 6+ characters).

        Raises:
            PipelineRunNotFoundError: if no run has this id.
        """
        with self._metadata.read() as conn:
            query = select(pipeline_runs)
            if len(run_id) < 32 and len(run_id) >= 6:
                query = query.where(pipeline_runs.c.id.like(f"{run_id}%")).limit(2)
            else:
                query = query.where(pipeline_runs.c.id == run_id)
            rows = conn.execute(query).mappings().all()
        if len(rows) != 1:
            raise PipelineRunNotFoundError(run_id)
        if reap_zombies(self._metadata, rows):
            return self.get(rows[0]["id"])
        return pipeline_run_from_row(rows[0])

    def list(
        self, *, pipeline: str | None = None, status: str | None = None, limit: int = 50
    ) -> builtins.list[PipelineRun]:
        """Runs, newest first; zombie runs found on the way are marked crashed."""
        query = select(pipeline_runs).order_by(pipeline_runs.c.created_at.desc()).limit(limit)
        if pipeline:
            query = query.where(pipeline_runs.c.pipeline == pipeline)
        if status:
            query = query.where(pipeline_runs.c.status == status)
        with self._metadata.read() as conn:
            rows = conn.execute(query).mappings().all()
        if reap_zombies(self._metadata, rows):
            with self._metadata.read() as conn:
                rows = conn.execute(query).mappings().all()
        return [pipeline_run_from_row(r) for r in rows]

    def tasks(self, run_id: str) -> builtins.list[TaskRun]:
        """The run's task runs, in start order."""
        run = self.get(run_id)
        with self._metadata.read() as conn:
            rows = (
                conn.execute(select(task_runs).where(task_runs.c.pipeline_run_id == run.id))
                .mappings()
                .all()
            )
        found = [task_run_from_row(r) for r in rows]
        return sorted(
            found, key=lambda t: (t.started_at is None, t.started_at or run.created_at, t.key)
        )

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
            PipelineRunNotFoundError: if no run has this id.
            InvalidArgumentError: if the run has no task ``task``.
        """
        found = self.tasks(run_id)
        if task is not None:
            found = [t for t in found if task in (t.key, t.task)]
            if not found:
                raise InvalidArgumentError(f"pipeline run {run_id} has no task {task!r}")
        return [
            (t.key, self._content.read_bytes(t.log_digest).decode("utf-8", "replace"))
            for t in found
            if t.log_digest
        ]

    def result(self, run_id: str) -> Any:
        """The stored result value of a succeeded run.

        Raises:
            PipelineFailedError: if the run did not succeed.
        """
        run = self.get(run_id)
        if run.status != "succeeded" or run.result_digest is None:
            return run.result  # raises PipelineFailedError
        return load_result(self._content, run.result_digest)

    def _lookup(self, cache_key: str) -> str | None:
        return self._book.lookup(cache_key)

    def _content_of(self, reference: str) -> str | None:
        """The content a dataset reference resolves to now; None if it does not resolve."""
        if self._resolve_dataset is None:
            return None
        try:
            return self._resolve_dataset(reference).content_digest
        except (NotFoundError, InvalidArgumentError):
            return None

    def _reusable(self, run_id: str) -> dict[str, tuple[str, str]]:
        run = self.get(run_id)
        return {
            t.key: (t.cache_key, t.result_digest)
            for t in self.tasks(run.id)
            if t.status in ("succeeded", "cached") and t.cache_key and t.result_digest
        }
