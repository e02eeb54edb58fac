"""Host-header and cross-origin checks, before any route runs.

A browser page on another site can send requests to a server on the user's machine (and
DNS rebinding can make it look same-site). So: state-changing requests that carry an
``Origin`` must come from the server's own origin, and without auth (loopback only) the
``Host`` must be a loopback name.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["LOOPBACK_HOSTS", "RequestGuard"]

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]", "::1"})
_SAFE = frozenset({"GET", "HEAD", "OPTIONS"})

Scope = dict[str, Any]


class RequestGuard:
    """Pure ASGI middleware: refuse foreign origins on writes and foreign hosts without auth."""

    def __init__(self, app: Any, *, loopback_only: bool) -> None:
        self.app = app
        self.loopback_only = loopback_only

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        """Answer 403 for a refused host or origin, else pass the request on."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k: v for k, v in scope["headers"] if k in (b"host", b"origin")}
        host = headers.get(b"host", b"").decode("latin-1").lower()
        problem = None
        if self.loopback_only and _hostname(host) not in LOOPBACK_HOSTS:
            problem = f"host {host!r} is refused: this server without auth answers loopback only"
        elif scope["method"] not in _SAFE and b"origin" in headers:
            origin = headers[b"origin"].decode("latin-1").lower()
            if origin.split("://", 1)[-1] != host:
                problem = f"cross-origin {scope['method']} from {origin!r} is refused"
        if problem is None:
            await self.app(scope, receive, send)
            return
        body = json.dumps({"error": {"type": "PermissionDeniedError", "message": problem}})
        await send(
            {
                "type": "http.response.start",
                "status": 403,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body.encode()})


def _hostname(host: str) -> str:
    if host.startswith("["):
        return host.split("]", 1)[0] + "]"
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host
