"""Deployments: which model version is served where, recorded from start to stop.

``shipyard serve`` calls ``start`` when it listens, ``heartbeat`` every few seconds,
``switch`` when a followed alias moves to another version, and ``stop`` on shutdown. Each
change writes its audit entry (and, for start and switch, the lineage edge
``model_version -deployed_as-> deployment``) in the same transaction.
"""

from __future__ import annotations

import builtins
import os
import socket
from dataclasses import asdict, fields
from datetime import timedelta

from sqlalchemy import Connection, RowMapping, select

from shipyard.domain.deployments import RUNTIMES, STALE_AFTER, STATUSES, Deployment
from shipyard.domain.ids import new_id, utcnow
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
from shipyard.stores.metadata.schema import deployments

__all__ = ["DeploymentService"]

_LIST_LIMIT = 1000  # newest first; a project serves far fewer than this


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

    def heartbeat(self, deployment_id: str) -> None:
        """Record that a deployment is alive now.

        Raises:
            DeploymentNotFoundError: for an unknown id.
            ConflictError: if the deployment was stopped.
        """
        with self._metadata.write() as conn:
            updated = conn.execute(
                deployments.update()
                .where(deployments.c.id == deployment_id, deployments.c.status == "running")
                .values(heartbeat_at=utcnow())
            ).rowcount
            if not updated:
                self._require(conn, deployment_id)
                raise ConflictError(f"deployment {deployment_id} is stopped; it cannot beat")

    def stop(self, deployment_id: str) -> None:
        """Record that a deployment stopped; stopping a stopped one changes nothing.

        Raises:
            DeploymentNotFoundError: for an unknown id.
        """
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
            self._audit.record(
                conn,
                actor=self._actor,
                action="deployment.stop",
                entity_kind="deployment",
                entity_id=deployment_id,
                before={"status": "running"},
                after={"status": "stopped"},
            )

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
