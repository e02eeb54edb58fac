"""Deployments over HTTP: read them, and record a serving process's deployment."""

from __future__ import annotations

import builtins
import os
import socket
from typing import Any
from urllib.parse import quote

from shipyard.client.http import ApiClient
from shipyard.domain.deployments import Deployment
from shipyard.domain.ids import host_label
from shipyard.domain.records import from_record
from shipyard.errors import InvalidArgumentError

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
        *,
        requests: int | None = None,
        client_errors: int | None = None,
        server_errors: int | None = None,
    ) -> None:
        """Record that this deployment is alive now, with its cumulative counts when given."""
        body = _counts(requests, client_errors, server_errors)
        self._client.call("POST", _path(deployment_id, "/heartbeat"), body=body)

    def stop(
        self,
        deployment_id: str,
        *,
        requests: int | None = None,
        client_errors: int | None = None,
        server_errors: int | None = None,
    ) -> None:
        """Record that this deployment stopped, with its last cumulative counts when given."""
        body = _counts(requests, client_errors, server_errors)
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


def _counts(
    requests: int | None, client_errors: int | None, server_errors: int | None
) -> dict[str, int] | None:
    """The optional counts body; None (no body) without a request count."""
    if requests is None:
        if client_errors is not None or server_errors is not None:
            raise InvalidArgumentError("error counts need the request count they are part of")
        return None
    return {
        "requests": requests,
        "client_errors": client_errors or 0,
        "server_errors": server_errors or 0,
    }


def _path(deployment_id: str, tail: str = "") -> str:
    return f"/deployments/{quote(deployment_id, safe='')}{tail}"
