"""Start the API under uvicorn: the loopback-without-auth rule, the banner, workers."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shipyard.app import build
from shipyard.errors import PermissionDeniedError
from shipyard.server.api.app import auth_configured, create_app
from shipyard.settings import Settings

__all__ = ["ServerOptions", "app_from_environment", "banner", "is_loopback", "serve"]


@dataclass(frozen=True, slots=True)
class ServerOptions:
    """Where and how the server listens."""

    host: str = "127.0.0.1"
    port: int = 5000
    workers: int = 1


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address or ``localhost``."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def banner(options: ServerOptions, *, auth: bool) -> str:
    """The first lines the server prints: where it listens and whether auth is on."""
    url = f"http://{options.host}:{options.port}"
    if auth:
        state = "auth ON: every request needs 'Authorization: Bearer TOKEN'"
    else:
        state = (
            "auth OFF: no users yet, so the server binds loopback only and acts as the "
            "project's user; create the first admin with `shipyard users create NAME --role "
            "admin` and a token with `shipyard tokens create NAME`"
        )
    return (
        f"shipyard server on {url} (API {url}/api/v1, OpenAPI {url}/api/v1/openapi.json)\n{state}"
    )


def app_from_environment() -> Any:
    """The app of the project ``SHIPYARD_PROJECT`` names: each worker process builds one."""
    return create_app(Settings.load())


def serve(
    settings: Settings, options: ServerOptions, *, announce: Callable[[str], None] = print
) -> None:
    """Run the server until interrupted.

    Raises:
        PermissionDeniedError: for a non-loopback host while the project has no users.
    """
    import uvicorn

    project = build(settings)
    auth = auth_configured(project)
    if not auth and not is_loopback(options.host):
        project.close()
        raise PermissionDeniedError(
            f"refusing to listen on {options.host} without auth: create an admin "
            "(`shipyard users create NAME --role admin`) and tokens first, or bind 127.0.0.1"
        )
    announce(banner(options, auth=auth))
    common: dict[str, Any] = {
        "host": options.host,
        "port": options.port,
        "access_log": False,
        "log_level": "warning",
        "timeout_keep_alive": 60,
    }
    if options.workers > 1:
        project.close()
        uvicorn.run(
            "shipyard.server.api.serve:app_from_environment",
            factory=True,
            workers=options.workers,
            **common,
        )
        return
    uvicorn.run(create_app(project, auth=auth), **common)
