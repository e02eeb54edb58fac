"""Every route has a policy entry, and a route without one is refused (deny by default)."""

from __future__ import annotations

from pathlib import Path

import httpx
from fastapi.responses import JSONResponse

from shipyard.app import Shipyard
from shipyard.server.api import create_app
from shipyard.server.api.policy import POLICY, PUBLIC, allowed_roles
from shipyard.settings import Settings

_METHODS = {"get", "post", "put", "patch", "delete"}


def _operations(project: Shipyard) -> set[tuple[str, str]]:
    app = create_app(project, auth=True)
    paths = app.openapi()["paths"]
    return {(m.upper(), p) for p, ops in paths.items() for m in ops if m in _METHODS}


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
