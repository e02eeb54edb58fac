"""Deployments: which model version is served where, recorded from start to stop.

``shipyard serve`` calls ``start`` when it listens, ``heartbeat`` every few seconds,
``switch`` when a followed alias moves to another version, and ``stop`` on shutdown. Each
change writes its audit entry (and, for start and switch, the lineage edge
``model_version -deployed_as-> deployment``) in the same transaction.

A heartbeat and the stop may carry the server's cumulative ``/predict`` counts (requests,
4xx and 5xx answers since it started); each is kept as a sample in ``deployment_counts``,
and ``request_counts`` turns the samples into counts and an error rate per time window.
"""

from __future__ import annotations

import builtins
import os
import socket
from dataclasses import asdict, fields
from datetime import datetime, timedelta

from sqlalchemy import Connection, RowMapping, func, select

from shipyard.domain.deployments import (
    RUNTIMES,
    STALE_AFTER,
    STATUSES,
    Deployment,
    RequestCounts,
)
from shipyard.domain.ids import as_utc, new_id, utcnow
from shipyard.domain.lineage import Node
from shipyard.domain.references import validate_name
from shipyard.errors import (
    ConflictError,
    DeploymentNotFoundError,
    InvalidArgumentError,
    PermissionDeniedError,
)
from shipyard.services.audit import AuditService
from shipyard.services.lineage import LineageService
from shipyard.services.registry import RegistryService
from shipyard.stores.metadata import SqlMetadataStore
from shipyard.stores.metadata.schema import deployment_counts, deployments

__all__ = ["DeploymentService"]

_LIST_LIMIT = 1000  # newest first; a project serves far fewer than this
_MAX_COUNT = 2**63 - 1  # a BigInteger column


class DeploymentService:
    """Records deployments and reads them with their effective status.

    Args:
        metadata: the metadata store.
        audit: writes the audit entries.
        lineage: writes the ``deployed_as`` edges.
        registry: checks that a deployed version exists.
        actor: who the changes are recorded as.
        stale_after: a running deployment whose heartbeat is older reads as stopped.
    """

    def __init__(
        self,
        metadata: SqlMetadataStore,
        audit: AuditService,
        lineage: LineageService,
        registry: RegistryService,
        *,
        actor: str,
        stale_after: timedelta = STALE_AFTER,
    ) -> None:
        self._metadata = metadata
        self._audit = audit
        self._lineage = lineage
        self._registry = registry
        self._actor = actor
        self._stale_after = stale_after
        self._host = socket.gethostname()

    def start(
        self,
        *,
        name: str,
        version: int,
        alias: str | None,
        url: str,
        runtime: str,
        host: str | None = None,
        pid: int | None = None,
    ) -> Deployment:
        """Record that this process now serves ``name@version`` at ``url``.

        Args:
            name: the registered model's name.
            version: the version served.
            alias: the alias the server follows (``champion``), or None for a fixed version.
            url: where the server listens.
            runtime: ``onnx`` or ``native``.
            host: the serving process's host (default: this one; a server records a
                remote serving process's).
            pid: its process id (default: this process's).

        Returns:
            The running deployment, with this host and process id.

        Raises:
            InvalidArgumentError: for a bad name, alias, runtime or URL.
            NotFoundError: if the model version does not exist.
        """
        validate_name(name, what="model name")
        if alias is not None:
            validate_name(alias, what="alias")
        if runtime not in RUNTIMES:
            raise InvalidArgumentError(f"runtime is one of {', '.join(RUNTIMES)}, not {runtime!r}")
        if not url or len(url) > 1024:
            raise InvalidArgumentError("a deployment needs the URL it listens on (<= 1024 chars)")
        ref = self._registry.resolve(f"{name}@{_version(version)}").ref
        now = utcnow()
        deployment = Deployment(
            id=new_id(),
            name=name,
            version=version,
            alias=alias,
            url=url,
            host=host or self._host,
            pid=os.getpid() if pid is None else pid,
            runtime=runtime,
            status="running",
            started_at=now,
            stopped_at=None,
            started_by=self._actor,
            heartbeat_at=now,
        )
        with self._metadata.write() as conn:
            conn.execute(deployments.insert().values(**asdict(deployment)))
            self._lineage.link(
                conn,
                Node("model_version", ref),
                "deployed_as",
                Node("deployment", deployment.id),
                actor=self._actor,
            )
            self._audit.record(
                conn,
                actor=self._actor,
                action="deployment.start",
                entity_kind="deployment",
                entity_id=deployment.id,
                after={
                    "ref": ref,
                    "alias": alias,
                    "url": url,
                    "host": deployment.host,
                    "runtime": runtime,
                },
            )
        return deployment

    def switch(self, deployment_id: str, version: int) -> None:
        """Record that a running deployment now serves another version of its model.

        Raises:
            DeploymentNotFoundError: for an unknown id.
            NotFoundError: if the version does not exist.
            ConflictError: if the deployment was stopped.
        """
        with self._metadata.read() as conn:
            name = self._require(conn, deployment_id).name
        ref = self._registry.resolve(f"{name}@{_version(version)}").ref
        with self._metadata.write() as conn:
            current = self._require(conn, deployment_id)
            if current.status == "stopped":
                raise ConflictError(
                    f"deployment {deployment_id} is stopped; start a new one to serve {ref}"
                )
            if current.version == version:
                return
            conn.execute(
                deployments.update()
                .where(deployments.c.id == deployment_id)
                .values(version=version, heartbeat_at=utcnow())
            )
            self._lineage.link(
                conn,
                Node("model_version", ref),
                "deployed_as",
                Node("deployment", deployment_id),
                actor=self._actor,
            )
            self._audit.record(
                conn,
                actor=self._actor,
                action="deployment.switch",
                entity_kind="deployment",
                entity_id=deployment_id,
                before={"version": current.version},
                after={"version": version},
            )

    def heartbeat(
        self,
        deployment_id: str,
        counts: RequestCounts | None = None,
    ) -> None:
        """Record that a deployment is alive now, with its request counts when given.

        Args:
            deployment_id: the deployment.
            counts: ``/predict`` answers since the serving process started, and the 4xx and
                5xx among them; None records no counts sample.

        Raises:
            DeploymentNotFoundError: for an unknown id.
            ConflictError: if the deployment was stopped.
            InvalidArgumentError: for counts that are not whole numbers >= 0, or more
                errors than requests.
        """
        counts = _checked(counts)
        with self._metadata.write() as conn:
            now = utcnow()
            updated = conn.execute(
                deployments.update()
                .where(deployments.c.id == deployment_id, deployments.c.status == "running")
                .values(heartbeat_at=now)
            ).rowcount
            if not updated:
                self._require(conn, deployment_id)
                raise ConflictError(f"deployment {deployment_id} is stopped; it cannot beat")
            if counts is not None:
                _insert_sample(conn, deployment_id, now, counts)

    def stop(
        self,
        deployment_id: str,
        counts: RequestCounts | None = None,
    ) -> None:
        """Record that a deployment stopped; stopping a stopped one changes nothing.

        The counts, when given, are the serving process's last sample (as in ``heartbeat``),
        so that the requests after its last heartbeat are not lost.

        Raises:
            DeploymentNotFoundError: for an unknown id.
            InvalidArgumentError: for bad counts (see ``heartbeat``).
        """
        counts = _checked(counts)
        with self._metadata.write() as conn:
            current = self._require(conn, deployment_id)
            if current.status == "stopped":
                return
            now = utcnow()
            conn.execute(
                deployments.update()
                .where(deployments.c.id == deployment_id)
                .values(status="stopped", stopped_at=now)
            )
            if counts is not None:
                _insert_sample(conn, deployment_id, now, counts)
            self._audit.record(
                conn,
                actor=self._actor,
                action="deployment.stop",
                entity_kind="deployment",
                entity_id=deployment_id,
                before={"status": "running"},
                after={"status": "stopped"},
            )

    def request_counts(
        self,
        name: str,
        version: int | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> RequestCounts:
        """``/predict`` answers and errors of a model's deployments within a time window.

        Per deployment, the counts are the growth of its cumulative samples from the last
        one at or before ``start`` (zero when it started later) to the last one at or before
        ``end``; a sample lower than the one before it (a counter that started again) counts
        from zero, so nothing is ever negative. Requests answered after a deployment's last
        sample (its last heartbeat, or its stop) are not counted yet.

        A deployment that followed an alias counts under the version it serves last: its
        samples do not say which version answered, so ``version`` selects deployments by
        their stored version (an approximation when a deployment switched versions).

        Args:
            name: the registered model.
            version: only deployments that serve this version; None counts every one.
            start: the window's start (exclusive); None is since the first deployment.
            end: the window's end (inclusive); None is now.

        Returns:
            The summed counts; zeros when no deployment recorded counts in the window.

        Raises:
            InvalidArgumentError: for a bad name or version, or a start after the end.
        """
        validate_name(name, what="model name")
        if version is not None:
            _version(version)
        start = None if start is None else as_utc(start)
        end = None if end is None else as_utc(end)
        if start is not None and end is not None and start > end:
            raise InvalidArgumentError(
                f"the window starts ({start.isoformat()}) after it ends ({end.isoformat()})"
            )
        query = select(deployments.c.id).where(deployments.c.name == name)
        if version is not None:
            query = query.where(deployments.c.version == version)
        if end is not None:
            query = query.where(deployments.c.started_at <= end)
        if start is not None:  # no sample is later than the stop or the last heartbeat
            seen = func.coalesce(deployments.c.stopped_at, deployments.c.heartbeat_at)
            query = query.where(seen > start)
        total = RequestCounts()
        with self._metadata.read() as conn:
            for deployment_id in conn.execute(query).scalars().all():
                total += _window_counts(conn, deployment_id, start, end)
        return total

    def require_own(self, deployment_id: str) -> Deployment:
        """A deployment this service's actor started (a remote serving process's check).

        Raises:
            DeploymentNotFoundError: for an unknown id.
            PermissionDeniedError: if another user started it.
        """
        found = self.get(deployment_id)
        if found.started_by != self._actor:
            raise PermissionDeniedError(
                f"deployment {deployment_id} was started by {found.started_by}; "
                "only its serving process records it"
            )
        return found

    def get(self, deployment_id: str) -> Deployment:
        """One deployment, with its effective status.

        Raises:
            DeploymentNotFoundError: for an unknown id.
        """
        with self._metadata.read() as conn:
            return self._effective(self._require(conn, deployment_id))

    def list(
        self, *, name: str | None = None, status: str | None = None
    ) -> builtins.list[Deployment]:
        """Deployments, newest first, with their effective status.

        Args:
            name: only deployments of this model.
            status: only ``running`` or only ``stopped`` ones (as they read now).

        Raises:
            InvalidArgumentError: for an unknown status.
        """
        if status is not None and status not in STATUSES:
            raise InvalidArgumentError(f"status is one of {', '.join(STATUSES)}, not {status!r}")
        query = select(deployments)
        if name is not None:
            query = query.where(deployments.c.name == name)
        if status == "running":  # anything stored as stopped stays stopped
            query = query.where(deployments.c.status == "running")
        query = query.order_by(deployments.c.started_at.desc()).limit(_LIST_LIMIT)
        with self._metadata.read() as conn:
            found = [self._effective(_deployment(r._mapping)) for r in conn.execute(query)]
        return [d for d in found if status is None or d.status == status]

    def _require(self, conn: Connection, deployment_id: str) -> Deployment:
        row = conn.execute(select(deployments).where(deployments.c.id == deployment_id)).first()
        if row is None:
            raise DeploymentNotFoundError(deployment_id)
        return _deployment(row._mapping)

    def _effective(self, deployment: Deployment) -> Deployment:
        """A running deployment whose heartbeat is stale or whose process is gone is stopped."""
        if deployment.status != "running":
            return deployment
        seen = deployment.heartbeat_at or deployment.started_at
        if utcnow() - seen > self._stale_after:
            return deployment.as_stopped()
        if deployment.host == self._host and not _alive(deployment.pid):
            return deployment.as_stopped()
        return deployment


def _version(version: object) -> int:
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise InvalidArgumentError(f"a model version is a whole number >= 1, not {version!r}")
    return version


def _checked(counts: RequestCounts | None) -> RequestCounts | None:
    """Cumulative counts of a heartbeat or stop, checked; None when it carries none."""
    if counts is None:
        return None
    if not isinstance(counts, RequestCounts):
        raise InvalidArgumentError(f"counts are RequestCounts, not {type(counts).__name__}")
    for what in ("requests", "client_errors", "server_errors"):
        value = getattr(counts, what)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_COUNT:
            raise InvalidArgumentError(f"{what} is a whole number >= 0, not {value!r}")
    if counts.errors > counts.requests:
        raise InvalidArgumentError(
            f"{counts.errors} errors out of {counts.requests} requests: "
            "errors are answers to requests, so they cannot be more"
        )
    return counts


def _insert_sample(
    conn: Connection, deployment_id: str, at: datetime, counts: RequestCounts
) -> None:
    conn.execute(
        deployment_counts.insert().values(
            id=new_id(),
            deployment_id=deployment_id,
            at=at,
            requests=counts.requests,
            client_errors=counts.client_errors,
            server_errors=counts.server_errors,
        )
    )


def _window_counts(
    conn: Connection, deployment_id: str, start: datetime | None, end: datetime | None
) -> RequestCounts:
    """One deployment's counts in ``(start, end]`` from its cumulative samples."""
    c = deployment_counts.c
    columns = (c.requests, c.client_errors, c.server_errors)
    order = (c.at, c.requests)  # equal times: the larger count is the later one
    previous = (0, 0, 0)
    if start is not None:
        baseline = conn.execute(
            select(*columns)
            .where(c.deployment_id == deployment_id, c.at <= start)
            .order_by(*(o.desc() for o in order))
            .limit(1)
        ).first()
        if baseline is not None:
            previous = tuple(baseline)
    query = select(*columns).where(c.deployment_id == deployment_id)
    if start is not None:
        query = query.where(c.at > start)
    if end is not None:
        query = query.where(c.at <= end)
    grown = [0, 0, 0]
    for row in conn.execute(query.order_by(*order)):
        current = tuple(row)
        restarted = any(now < before for now, before in zip(current, previous, strict=True))
        for i, (now, before) in enumerate(zip(current, previous, strict=True)):
            grown[i] += now if restarted else now - before
        previous = current
    return RequestCounts(*grown)


def _alive(pid: int) -> bool:
    """Whether a process with this id exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


def _deployment(row: RowMapping) -> Deployment:
    return Deployment(**{f.name: row[f.name] for f in fields(Deployment)})
