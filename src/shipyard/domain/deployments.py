"""Deployments: a model version served at a URL by one process, from start to stop.

A deployment is stored as ``running`` until it is stopped. A server that dies without
stopping cannot say so, so a running deployment *reads* as stopped when its heartbeat is
older than ``STALE_AFTER`` or when its process is gone from this host.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

__all__ = ["RUNTIMES", "STALE_AFTER", "STATUSES", "Deployment", "RequestCounts", "last_seen"]

STATUSES = ("running", "stopped")
RUNTIMES = ("onnx", "native")
STALE_AFTER = timedelta(seconds=60)


@dataclass(frozen=True, slots=True)
class Deployment:
    """One serving process of a model version: where, since when, by whom, and its state.

    ``stopped_at`` of a deployment that died without stopping is the last time it was seen
    (its last heartbeat, else its start).
    """

    id: str
    name: str
    version: int
    alias: str | None
    url: str
    host: str
    pid: int
    runtime: str
    status: str
    started_at: datetime
    stopped_at: datetime | None
    started_by: str
    heartbeat_at: datetime | None = None

    @property
    def ref(self) -> str:
        """The model version it serves, ``name@version``."""
        return f"{self.name}@{self.version}"

    def as_stopped(self) -> Deployment:
        """The same deployment read as stopped at the last time it was seen."""
        return replace(self, status="stopped", stopped_at=self.stopped_at or last_seen(self))

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "id": self.id,
            "name": self.name,
            "version": self.version,
            "ref": self.ref,
            "alias": self.alias,
            "url": self.url,
            "host": self.host,
            "pid": self.pid,
            "runtime": self.runtime,
            "status": self.status,
            "started_at": self.started_at.isoformat(),
            "stopped_at": self.stopped_at.isoformat() if self.stopped_at else None,
            "heartbeat_at": self.heartbeat_at.isoformat() if self.heartbeat_at else None,
            "started_by": self.started_by,
        }


@dataclass(frozen=True, slots=True)
class RequestCounts:
    """``/predict`` answers of a model's deployments, and the errors among them.

    ``client_errors`` are answers with a 4xx status (bad input, a body too large: the
    caller's fault); ``server_errors`` those with a 5xx status (the model or the server
    failed). Requests the client abandoned before the answer are not counted.
    """

    requests: int = 0
    client_errors: int = 0
    server_errors: int = 0

    @property
    def errors(self) -> int:
        """Client and server errors together."""
        return self.client_errors + self.server_errors

    @property
    def error_rate(self) -> float | None:
        """Errors per request, or None when there was no request."""
        return self.errors / self.requests if self.requests else None

    def __add__(self, other: RequestCounts) -> RequestCounts:
        return RequestCounts(
            self.requests + other.requests,
            self.client_errors + other.client_errors,
            self.server_errors + other.server_errors,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form, with the error rate."""
        return {
            "requests": self.requests,
            "client_errors": self.client_errors,
            "server_errors": self.server_errors,
            "error_rate": self.error_rate,
        }


def last_seen(deployment: Deployment) -> datetime:
    """When the deployment last said it was alive: its last heartbeat, else its start."""
    return deployment.heartbeat_at or deployment.started_at
