"""Deployments over HTTP: read them, and record a serving process's deployment."""

from __future__ import annotations

import builtins
import os
import socket
from typing import Any
from urllib.parse import quote

from shipyard.client.http import ApiClient
from shipyard.domain.deployments import Deployment, RequestCounts
from shipyard.domain.ids import host_label
from shipyard.domain.records import from_record

__all__ = ["RemoteDeploymentService"]


class RemoteDeploymentService:
    """The deployment service of a remote project (see ``DeploymentService``).

    Args:
        client: the connection to the server.
    """

    def __init__(self, client: ApiClient) -> None:
        self._client = client

    def start(
        self, *, name: str, version: int, alias: str | None, url: str, runtime: str
    ) -> Deployment:
        """Record on the server that this process now serves ``name@version`` at ``url``.

        Raises:
            NotFoundError: if the model version does not exist.
            InvalidArgumentError: for a bad name, alias, runtime or URL.
        """
        body = {
            "name": name,
            "version": version,
            "alias": alias,
            "url": url,
            "runtime": runtime,
            "host": host_label(socket.gethostname()),
            "pid": os.getpid(),
        }
        return from_record(Deployment, self._client.call("POST", "/deployments", body=body))

    def switch(self, deployment_id: str, version: int) -> None:
        """Record that this deployment now serves another version of its model."""
        self._client.call("POST", _path(deployment_id, "/switch"), body={"version": version})

    def heartbeat(
        self,
        deployment_id: str,
        counts: RequestCounts | None = None,
    ) -> None:
        """Record that this deployment is alive now, with its cumulative counts when given."""
        body = _counts(counts)
        self._client.call("POST", _path(deployment_id, "/heartbeat"), body=body)

    def stop(
        self,
        deployment_id: str,
        counts: RequestCounts | None = None,
    ) -> None:
        """Record that this deployment stopped, with its last cumulative counts when given."""
        body = _counts(counts)
        self._client.call("POST", _path(deployment_id, "/stop"), body=body)

    def get(self, deployment_id: str) -> Deployment:
        """One deployment, with its effective status.

        Raises:
            NotFoundError: for an unknown id.
        """
        found = self._client.call("GET", _path(deployment_id))
        return from_record(Deployment, found)

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
        params: dict[str, Any] = {}
        if name is not None:
            params["name"] = name
        if status is not None:
            params["status"] = status
        found = self._client.call("GET", "/deployments", params=params)
        return [from_record(Deployment, d) for d in found]


def _counts(counts: RequestCounts | None) -> dict[str, int] | None:
    """The optional counts body (the server checks it); None: no body."""
    if counts is None:
        return None
    return {
        "requests": counts.requests,
        "client_errors": counts.client_errors,
        "server_errors": counts.server_errors,
    }


def _path(deployment_id: str, tail: str = "") -> str:
    return f"/deployments/{quote(deployment_id, safe='')}{tail}"
