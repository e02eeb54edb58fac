"""Where a pipeline run's driver writes: the run's row, batches of task rows, cache lookups.

A driver (``PipelineService.run``) records through a ``RunBook``. ``SqlRunBook`` writes the
metadata store: in a local project for its own driver, and in the server for remote drivers,
whose batches the server checks first (``PipelineService.accept``). The client's book sends
the same three calls to a server. Times that judge liveness (creation, heartbeat, end) are
taken by the book, on the side that holds the store, so clocks of other machines never
make a run look dead.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import Connection, select

from shipyard.domain.ids import new_id, utcnow
from shipyard.stores.metadata import SqlMetadataStore
from shipyard.stores.metadata.schema import pipeline_runs, task_runs

__all__ = ["RUN_FIELDS", "TASK_COLUMNS", "RunBook", "SqlRunBook"]

# What a driver says about a run it starts; the rest (id, user, times) the book decides.
RUN_FIELDS = ("pipeline", "target", "params", "executor", "host", "pid", "resumed_from", "schedule")
TASK_COLUMNS = tuple(c.name for c in task_runs.columns if c.name not in ("pipeline_run_id", "key"))
_TIMES = {"started_at", "ended_at", "heartbeat_at"}


class RunBook(Protocol):
    """The records of pipeline runs, as a driver writes them."""

    def begin(self, fields: Mapping[str, Any]) -> str:
        """Record a run that starts now (``RUN_FIELDS``); its id."""
        ...

    def write(
        self,
        run_id: str,
        tasks: Sequence[Mapping[str, Any]],
        run: Mapping[str, Any],
        *,
        beat: bool,
    ) -> bool:
        """Upsert task rows, update the run (``run``, a heartbeat when ``beat``).

        Returns:
            Whether the run's cancel flag is set.
        """
        ...

    def lookup(self, cache_key: str) -> str | None:
        """The result digest a succeeded task with this cache key stored, if any."""
        ...


class SqlRunBook:
    """A ``RunBook`` on the metadata store.

    Args:
        metadata: the metadata store.
        user: who starts the runs this book begins.
    """

    def __init__(self, metadata: SqlMetadataStore, user: str) -> None:
        self._metadata = metadata
        self._user = user

    def begin(self, fields: Mapping[str, Any]) -> str:
        """Insert the run's row, running from now; its new id."""
        run_id = new_id()
        now = utcnow()
        values = {name: fields.get(name) for name in RUN_FIELDS}
        with self._metadata.write() as conn:
            conn.execute(
                pipeline_runs.insert().values(
                    **values,
                    id=run_id,
                    status="running",
                    created_by=self._user,
                    created_at=now,
                    started_at=now,
                    ended_at=None,
                    heartbeat_at=now,
                    cancel_requested=False,
                    error=None,
                    result_digest=None,
                )
            )
        return run_id

    def write(
        self,
        run_id: str,
        tasks: Sequence[Mapping[str, Any]],
        run: Mapping[str, Any],
        *,
        beat: bool,
    ) -> bool:
        """Upsert the task rows and update the run in one transaction; the cancel flag.

        A run value ``status`` that ends the run stamps ``ended_at`` with this book's time.
        """
        now = utcnow()
        values = dict(run)
        if values.get("status") in ("succeeded", "failed", "cancelled", "crashed"):
            values["ended_at"] = now
        if values or beat:
            values["heartbeat_at"] = now
        with self._metadata.write() as conn:
            _upsert(conn, run_id, tasks)
            if values:
                conn.execute(
                    pipeline_runs.update().where(pipeline_runs.c.id == run_id).values(**values)
                )
            cancel = conn.execute(
                select(pipeline_runs.c.cancel_requested).where(pipeline_runs.c.id == run_id)
            ).scalar()
        return bool(cancel)

    def lookup(self, cache_key: str, *, created_by: str | None = None) -> str | None:
        """The newest stored result for ``cache_key`` (of runs ``created_by`` started, if given).

        Newest by run (ids sort by time): when a result was made again because a dataset
        it read had moved, the new one is found, not the one that no longer holds.
        """
        query = (
            select(task_runs.c.result_digest)
            .where(
                task_runs.c.cache_key == cache_key,
                task_runs.c.status.in_(["succeeded", "cached"]),
                task_runs.c.result_digest.is_not(None),
            )
            .order_by(task_runs.c.pipeline_run_id.desc())
            .limit(1)
        )
        if created_by is not None:
            query = query.join(
                pipeline_runs, pipeline_runs.c.id == task_runs.c.pipeline_run_id
            ).where(pipeline_runs.c.created_by == created_by)
        with self._metadata.read() as conn:
            digest: str | None = conn.execute(query).scalar()
        return digest


def _upsert(conn: Connection, run_id: str, rows: Sequence[Mapping[str, Any]]) -> None:
    # One INSERT ... ON CONFLICT DO UPDATE through the driver's executemany: the same
    # SQL on SQLite and PostgreSQL, no per-row SQLAlchemy processing.
    if not rows:
        return
    sqlite = conn.dialect.name == "sqlite"
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    columns = ["pipeline_run_id", "key", *TASK_COLUMNS]
    statement = (
        f"INSERT INTO task_runs ({', '.join(columns)}) "
        f"VALUES ({', '.join(mark for _ in columns)}) "
        "ON CONFLICT (pipeline_run_id, key) DO UPDATE SET "
        + ", ".join(f"{c} = excluded.{c}" for c in TASK_COLUMNS)
    )
    values = [
        (
            run_id,
            row["key"],
            *(_db_value(c, row.get(c), sqlite) for c in TASK_COLUMNS),
        )
        for row in rows
    ]
    conn.exec_driver_sql(statement, values)


def _db_value(column: str, value: Any, sqlite: bool) -> Any:
    if column == "upstream" and not isinstance(value, str):
        return json.dumps(list(value or ()))
    if column not in _TIMES or value is None or not sqlite:
        return value
    moment: datetime = value
    # SQLAlchemy's SQLite DATETIME text form, naive UTC (what UtcDateTime stores).
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
