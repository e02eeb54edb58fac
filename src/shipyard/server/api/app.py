"""``create_app(project | settings)``: the FastAPI app of the team server's REST API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI
from sqlalchemy import select

from shipyard._version import __version__
from shipyard.app import Shipyard, build
from shipyard.server.api.auth import authorize
from shipyard.server.api.context import ApiContext
from shipyard.server.api.errors import ERROR_RESPONSES, install_error_handlers
from shipyard.server.api.guards import RequestGuard
from shipyard.server.api.pipeline_scope import pipeline_scope
from shipyard.server.api.policy import API_PREFIX, PUBLIC, allowed_roles
from shipyard.server.api.routes import ROUTERS
from shipyard.settings import Settings
from shipyard.stores.metadata.schema import users

__all__ = ["auth_configured", "create_app"]


def auth_configured(project: Shipyard) -> bool:
    """Whether the project has users: then every request must carry a token."""
    with project.metadata.read() as conn:
        return conn.execute(select(users.c.name).limit(1)).first() is not None


def create_app(
    source: Shipyard | Settings,
    *,
    auth: bool | None = None,
    upload_limit: int | None = None,
) -> FastAPI:
    """Build the API over a project (or the project the settings name, closed on shutdown).

    Args:
        source: an open project, or settings to open one from.
        auth: require tokens; None decides by the project (on once a user exists). Without
            auth the app answers only loopback host names and acts as the project's user.
        upload_limit: the largest blob a client may upload, in bytes (default: the
            project's ``server.upload_limit`` setting).

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
        dependencies=[Depends(authorize), Depends(pipeline_scope)],
        responses=ERROR_RESPONSES,
    )
    limit = project.settings.upload_limit if upload_limit is None else upload_limit
    app.state.context = ApiContext(project, auth=enabled, upload_limit=limit)
    install_error_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
    app.add_middleware(RequestGuard, loopback_only=not enabled)
    _document_auth(app)
    return app


def _document_auth(app: FastAPI) -> None:
    """Publish the policy in the OpenAPI document.

    A bearer scheme, and on each operation that needs a token, the scheme and the roles
    allowed.
    """
    build_schema = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build_schema()
        schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
        schemes["bearer"] = {
            "type": "http",
            "scheme": "bearer",
            "description": "a token from `shipyard tokens create` (when the server has users)",
        }
        for path, operations in schema["paths"].items():
            for method, operation in operations.items():
                roles = allowed_roles(method, path)
                if roles == PUBLIC:
                    continue
                operation["security"] = [{"bearer": []}]
                allowed = ", ".join(sorted(roles)) or "nobody (no policy entry)"
                text = operation.get("description", "")
                operation["description"] = f"{text}\n\nRoles: {allowed}.".strip()
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
