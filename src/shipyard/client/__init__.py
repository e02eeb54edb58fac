"""Remote mode: the SDK over HTTP against a shipyard server (``SHIPYARD_URI``).

httpx loads only when a remote project is opened, so ``import shipyard`` stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shipyard.client.runs import RemoteProject, RemoteRunService
    from shipyard.settings import Settings

__all__ = ["RemoteProject", "RemoteRunService", "open_remote"]


def open_remote(settings: Settings) -> RemoteProject | None:
    """The remote project the settings name (``server_uri``), or None in local mode."""
    if not settings.server_uri:
        return None
    from shipyard.client.runs import RemoteProject

    return RemoteProject(settings.server_uri, settings.token, settings)


def __getattr__(name: str) -> Any:
    if name in ("RemoteProject", "RemoteRunService"):
        from shipyard.client import runs

        return getattr(runs, name)
    raise AttributeError(f"module 'shipyard.client' has no attribute {name!r}")
