"""Run writes inside a caller's transaction, and the writes of runs whose process is elsewhere.

``RunService`` (local runs) and the REST server (runs of remote clients: start, a batch in
ONE transaction, end) share the rules here: a param never changes, a tag is replaced, an
ended run takes no more writes. A remote run records the client's host and pid (not the
server's), so the reaper judges the client: alive by pid on the same host, by heartbeat
elsewhere. Every batch is a heartbeat.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from sqlalchemy import Connection, select

from shipyard.domain.ids import new_id, utcnow
from shipyard.domain.runs import FINAL_STATUSES, Run
from shipyard.errors import ConflictError, InvalidArgumentError, NotFoundError
from shipyard.services.metrics import MetricPoint
from shipyard.stores.metadata import SqlMetadataStore
from shipyard.stores.metadata.schema import run_artifacts, run_params, run_tags, runs

if TYPE_CHECKING:
    from shipyard.services.objects import StoredFile
    from shipyard.services.runs import RunService

__all__ = [
    "create_run",
    "end_run",
    "insert_artifacts",
    "require_running",
    "write_batch",
    "write_params",
    "write_tags",
]


def create_run(
    metadata: SqlMetadataStore,
    service: RunService,
    *,
    experiment: str,
    name: str | None,
    parent_id: str | None,
    tags: Mapping[str, str],
    host: str,
    pid: int,
    user: str,
) -> Run:
    """Start a run for a remote process; its tags are written in the same transaction."""
    exp = service.experiment(experiment)
    if parent_id is not None:
        service.get(parent_id)
    run_id, now = new_id(), utcnow()
    with metadata.write() as conn:
        conn.execute(
            runs.insert().values(
                id=run_id,
                experiment_id=exp.id,
                name=name or f"run-{run_id[-8:]}",
                parent_id=parent_id,
                status="running",
                user=user,
                start_time=now,
                end_time=None,
                heartbeat_at=now,
                host=host or "remote",
                pid=pid,
                environment=None,
                resources=None,
            )
        )
        write_tags(conn, run_id, tags)
    return service.get(run_id)


def write_batch(
    metadata: SqlMetadataStore,
    service: RunService,
    run_id: str,
    *,
    params: Mapping[str, str],
    tags: Mapping[str, str],
    points: Sequence[MetricPoint],
) -> int:
    """Write params, tags and metric points of a running run in one transaction.

    Returns:
        The number of metric points written.

    Raises:
        NotFoundError: if the run does not exist.
        ConflictError: if the run has ended, or a param was logged before with another value.
    """
    with metadata.write() as conn:
        metadata.lock(conn, f"run:{run_id}")
        require_running(conn, run_id)
        write_params(conn, run_id, params)
        write_tags(conn, run_id, tags)
        if points:
            service.metrics.append(conn, run_id, points)
        conn.execute(runs.update().where(runs.c.id == run_id).values(heartbeat_at=utcnow()))
    return len(points)


def end_run(metadata: SqlMetadataStore, service: RunService, run_id: str, status: str) -> Run:
    """End a running run; ending an ended run with the same status is a no-op.

    Raises:
        ConflictError: if it ended already with another status.
    """
    if status not in FINAL_STATUSES:
        raise InvalidArgumentError(f"a run ends as {', '.join(sorted(FINAL_STATUSES))}")
    with metadata.write() as conn:
        metadata.lock(conn, f"run:{run_id}")
        current = conn.execute(select(runs.c.status).where(runs.c.id == run_id)).scalar()
        if current is None:
            raise NotFoundError(f"run {run_id!r} does not exist")
        if current in FINAL_STATUSES and current != status:
            raise ConflictError(f"run {run_id} has ended already ({current})")
        if current not in FINAL_STATUSES:
            conn.execute(
                runs.update().where(runs.c.id == run_id).values(status=status, end_time=utcnow())
            )
    return service.get(run_id)


def require_running(conn: Connection, run_id: str) -> None:
    """Raise unless the run exists and has not ended."""
    status = conn.execute(select(runs.c.status).where(runs.c.id == run_id)).scalar()
    if status is None:
        raise NotFoundError(f"run {run_id!r} does not exist")
    if status in FINAL_STATUSES:
        raise ConflictError(f"run {run_id} has ended ({status}); start a new run to log more")


def write_params(conn: Connection, run_id: str, params: Mapping[str, str]) -> None:
    """Add params; one logged before with another value is a ``ConflictError``."""
    if not params:
        return
    query = select(run_params.c.key, run_params.c.value).where(
        run_params.c.run_id == run_id, run_params.c.key.in_(list(params))
    )
    existing = {r.key: r.value for r in conn.execute(query)}
    for key, value in params.items():
        if key in existing and existing[key] != value:
            raise ConflictError(
                f"param {key!r} of run {run_id} is {existing[key]!r} already; params "
                f"cannot change (logged again as {value!r}); use a tag or a new run"
            )
    fresh = [
        {"run_id": run_id, "key": k, "value": v} for k, v in params.items() if k not in existing
    ]
    if fresh:
        conn.execute(run_params.insert(), fresh)


def write_tags(conn: Connection, run_id: str, tags: Mapping[str, str]) -> None:
    """Set tags, replacing the values of keys set before."""
    if not tags:
        return
    conn.execute(
        run_tags.delete().where(run_tags.c.run_id == run_id, run_tags.c.key.in_(list(tags)))
    )
    conn.execute(
        run_tags.insert(), [{"run_id": run_id, "key": k, "value": v} for k, v in tags.items()]
    )


def insert_artifacts(conn: Connection, run_id: str, stored: Sequence[StoredFile]) -> None:
    """Record stored files as a run's artifacts; a path logged again is replaced."""
    now = utcnow()
    conn.execute(
        run_artifacts.delete().where(
            run_artifacts.c.run_id == run_id, run_artifacts.c.path.in_([f.name for f in stored])
        )
    )
    rows = [
        {"run_id": run_id, "path": f.name, "digest": f.digest, "size": f.size, "created_at": now}
        for f in stored
    ]
    conn.execute(run_artifacts.insert(), rows)
