"""Authentication and authorization of every request: Bearer token, then the policy table."""

from __future__ import annotations

from fastapi import Request

from shipyard.errors import PermissionDeniedError, UnauthenticatedError
from shipyard.server.api.context import ApiContext, Caller
from shipyard.server.api.policy import PUBLIC, allowed_roles

__all__ = ["authorize", "caller"]


async def authorize(request: Request) -> Caller | None:
    """Check the caller against the policy of the route; the dependency of every route.

    Async on purpose: it runs on the event loop (one indexed read), which saves two thread
    hops per request over a sync dependency.

    Returns:
        The caller, or None on a public route.

    Raises:
        UnauthenticatedError: for a missing, malformed, unknown, expired or revoked token.
        PermissionDeniedError: when the route is not in the policy table, or the caller's
            roles are not among those it allows.
    """
    context: ApiContext = request.app.state.context
    route = request.scope.get("route")
    template = getattr(route, "path", None)
    roles = allowed_roles(request.method, template) if isinstance(template, str) else frozenset()
    if roles == PUBLIC:
        return None
    if not roles:
        raise PermissionDeniedError(
            f"{request.method} {template} has no entry in the policy table: refused"
        )
    identity = context.project.tokens.verify(_bearer(request)) if context.auth else context.local
    if not identity.roles & roles:
        raise PermissionDeniedError(
            f"{identity.user} holds {', '.join(sorted(identity.roles)) or 'no role'}; "
            f"{request.method} {template} needs one of {', '.join(sorted(roles))}"
        )
    found = Caller(identity, context.services_for(identity.user))
    request.state.caller = found
    return found


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization")
    if header is None:
        raise UnauthenticatedError("no token was sent")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise UnauthenticatedError("the Authorization header is not 'Bearer TOKEN'")
    return secret.strip()


async def caller(request: Request) -> Caller:
    """The authorized caller of a non-public route (the dependency routes take)."""
    found: Caller | None = request.state.caller if hasattr(request.state, "caller") else None
    if found is None:
        found = await authorize(request)
    if found is None:  # a public route asked for a caller: nobody is one
        raise UnauthenticatedError("this route takes no caller")
    request.state.caller = found
    return found
