"""Deployments over HTTP: the read methods of ``DeploymentService``."""

from __future__ import annotations

import builtins
from typing import Any
from urllib.parse import quote

from shipyard.client.http import ApiClient
from shipyard.domain.deployments import Deployment
from shipyard.domain.records import from_record

__all__ = ["RemoteDeploymentService"]


class RemoteDeploymentService:
    """The deployment service of a remote project (see ``DeploymentService``).

    Args:
        client: the connection to the server.
    """

    def __init__(self, client: ApiClient) -> None:
        self._client = client

    def get(self, deployment_id: str) -> Deployment:
        """One deployment, with its effective status.

        Raises:
            NotFoundError: for an unknown id.
        """
        found = self._client.call("GET", f"/deployments/{quote(deployment_id, safe='')}")
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
