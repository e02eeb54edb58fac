"""Packaging in remote mode: the bundle is written here from files downloaded by digest.

The local ``PackageService`` runs unchanged over the server's registry and model service:
the version's files are downloaded, verified against their digests (and checked again as
they are copied into the bundle), so the bundle is the one a local project would write.
"""

from __future__ import annotations

from pathlib import Path

from shipyard.client.http import ApiClient
from shipyard.client.models import RemoteModelService, RemoteRegistryService
from shipyard.services.packaging import PackageService
from shipyard.settings import Settings, find_root

__all__ = ["RemotePackageService"]


class RemotePackageService(PackageService):
    """The package service of a remote project (see ``PackageService``).

    Args:
        client: the connection to the server.
        registry: the server's registry.
        models: the server's model service (downloads and verifies the files).
        settings: the local settings (the project folder ``--force`` never replaces);
            default: the folder at or above the working directory.
    """

    def __init__(
        self,
        client: ApiClient,
        registry: RemoteRegistryService,
        models: RemoteModelService,
        settings: Settings | None = None,
    ) -> None:
        root = settings.root if settings is not None else find_root(Path.cwd())
        super().__init__(registry, models, actor="", project_root=root)
        self._client = client

    def _packager(self) -> str:
        # The token's user, asked once, when the first bundle is written.
        if not self._actor:
            self._actor = str(self._client.call("GET", "/whoami")["user"])
        return self._actor
