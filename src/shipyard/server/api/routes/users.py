"""Users and API tokens (admins only)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import JSONResponse

from shipyard.server.api.auth import caller
from shipyard.server.api.context import Caller
from shipyard.server.api.policy import API_PREFIX
from shipyard.server.api.schemas import NAME_PATTERN, NamePath, RolesBody, TokenBody, UserBody

__all__ = ["router"]

router = APIRouter(prefix=API_PREFIX, tags=["users"])
Who = Annotated[Caller, Depends(caller)]
TokenId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$")]


@router.get("/users")
def list_users(who: Who) -> JSONResponse:
    """Every user and their roles."""
    return JSONResponse([u.to_dict() for u in who.services.users.list()])


@router.post("/users", status_code=201)
def create_user(body: UserBody, who: Who) -> JSONResponse:
    """Create a user with roles."""
    return JSONResponse(who.services.users.create(body.name, body.roles).to_dict(), 201)


@router.post("/users/{name}/grant")
def grant_roles(name: NamePath, body: RolesBody, who: Who) -> JSONResponse:
    """Give a user roles."""
    return JSONResponse(who.services.users.grant(name, body.roles).to_dict())


@router.post("/users/{name}/revoke")
def revoke_roles(name: NamePath, body: RolesBody, who: Who) -> JSONResponse:
    """Take roles from a user (the last admin keeps theirs)."""
    return JSONResponse(who.services.users.revoke(name, body.roles).to_dict())


@router.get("/tokens")
def list_tokens(
    who: Who, user: Annotated[str | None, Query(pattern=NAME_PATTERN, max_length=128)] = None
) -> JSONResponse:
    """Tokens (never their secrets)."""
    return JSONResponse([t.to_dict() for t in who.services.tokens.list(user)])


@router.post("/tokens", status_code=201)
def create_token(body: TokenBody, who: Who) -> JSONResponse:
    """Create a token; the answer holds its secret, shown this once."""
    if body.expires_in_seconds is not None:
        lifetime: timedelta | None = timedelta(seconds=body.expires_in_seconds)
    elif body.expires_in_days is not None:
        lifetime = timedelta(days=body.expires_in_days)
    else:
        lifetime = None
    token, secret = who.services.tokens.create(body.user, body.name, expires_in=lifetime)
    return JSONResponse({**token.to_dict(), "secret": secret}, 201)


@router.delete("/tokens/{token_id}")
def revoke_token(token_id: TokenId, who: Who) -> JSONResponse:
    """Revoke a token."""
    return JSONResponse(who.services.tokens.revoke(token_id).to_dict())
