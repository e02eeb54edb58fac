"""Every route has a policy entry, and a route without one is refused (deny by default)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from shipyard.app import Shipyard
from shipyard.server.api import create_app
from shipyard.server.api.policy import POLICY, PUBLIC, allowed_roles
from shipyard.settings import Settings

_METHODS = {"get", "head", "post", "put", "patch", "delete"}


# Routes that are not API routes: they bypass the policy, so each must be listed here.
_OUTSIDE_THE_POLICY = {("GET", "/api/v1/openapi.json"), ("HEAD", "/api/v1/openapi.json")}


def _walk(routes: Iterable[Any]) -> Iterator[Any]:
    # FastAPI mounts an included router as one entry holding it: walk into those.
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from _walk(inner.routes)
        else:
            yield route


def _operations(project: Shipyard) -> set[tuple[str, str]]:
    # Every route the app serves, from its route table (also routes left out of the
    # OpenAPI document), not from the document.
    app = create_app(project, auth=True)
    found: set[tuple[str, str]] = set()
    for route in _walk(app.routes):
        methods = getattr(route, "methods", None) or set()
        path = getattr(route, "path", "")
        pairs = {(m.upper(), path) for m in methods if m.lower() in _METHODS}
        if isinstance(route, APIRoute):
            found |= pairs
        else:
            unexpected = pairs - _OUTSIDE_THE_POLICY
            assert not unexpected, f"routes outside the policy: {sorted(unexpected)}"
    return found


def test_the_openapi_document_says_which_operations_need_a_token(project: Shipyard) -> None:
    schema = create_app(project, auth=True).openapi()
    assert schema["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            public = POLICY[(method.upper(), path)] == PUBLIC
            assert ("security" in operation) is not public, (method, path)
    approve = schema["paths"]["/api/v1/promotions/{request_id}/approve"]["post"]
    assert "Roles: admin, approver." in approve["description"]


def test_every_route_of_the_app_has_a_policy_entry(project: Shipyard) -> None:
    operations = _operations(project)
    missing = sorted(operations - set(POLICY))
    assert not missing, f"routes without a policy entry: {missing}"
    stale = sorted(set(POLICY) - operations)
    assert not stale, f"policy entries without a route: {stale}"
    assert len(operations) >= 25


def test_only_health_is_public() -> None:
    assert [key for key, roles in POLICY.items() if roles == PUBLIC] == [("GET", "/api/v1/health")]


def test_a_route_missing_from_the_table_is_refused_even_for_an_admin(tmp_path: Path) -> None:
    settings = Settings.load(tmp_path, env={}, user="root")
    app = create_app(settings, auth=False)

    @app.get("/api/v1/unlisted")
    def unlisted() -> JSONResponse:
        return JSONResponse({"secret": "should never be served"})

    assert allowed_roles("GET", "/api/v1/unlisted") == frozenset()
    transport = httpx.ASGITransport(app=app)

    async def call() -> httpx.Response:
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
            return await c.get("/api/v1/unlisted")

    import asyncio

    answer = asyncio.run(call())
    assert answer.status_code == 403
    assert "policy table" in answer.json()["error"]["message"]
    assert "should never" not in answer.text
