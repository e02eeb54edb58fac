"""``create_app(project | settings)``: the FastAPI app of the team server's REST API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from sqlalchemy import select

from shipyard._version import __version__
from shipyard.app import Shipyard, build
from shipyard.server.api.auth import authorize
from shipyard.server.api.context import ApiContext
from shipyard.server.api.errors import install_error_handlers
from shipyard.server.api.guards import RequestGuard
from shipyard.server.api.policy import API_PREFIX
from shipyard.server.api.routes import ROUTERS
from shipyard.settings import Settings
from shipyard.stores.metadata.schema import users

__all__ = ["auth_configured", "create_app"]


def auth_configured(project: Shipyard) -> bool:
    """Whether the project has users: then every request must carry a token."""
    with project.metadata.read() as conn:
        return conn.execute(select(users.c.name).limit(1)).first() is not None


def create_app(source: Shipyard | Settings, *, auth: bool | None = None) -> FastAPI:
    """Build the API over a project (or the project the settings name, closed on shutdown).

    Args:
        source: an open project, or settings to open one from.
        auth: require tokens; None decides by the project (on once a user exists). Without
            auth the app answers only loopback host names and acts as the project's user.

    Returns:
        The ASGI app; ``/api/v1/...`` routes, OpenAPI at ``/api/v1/openapi.json``.
    """
    owned = not isinstance(source, Shipyard)
    project = build(source) if isinstance(source, Settings) else source
    enabled = auth_configured(project) if auth is None else auth

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        if owned:
            project.close()

    app = FastAPI(
        title="shipyard",
        version=__version__,
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
        redirect_slashes=False,
        dependencies=[Depends(authorize)],
    )
    app.state.context = ApiContext(project, auth=enabled)
    install_error_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
    app.add_middleware(RequestGuard, loopback_only=not enabled)
    return app
