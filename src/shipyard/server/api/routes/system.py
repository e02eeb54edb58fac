"""Health and identity."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from shipyard._version import __version__
from shipyard.server.api.auth import caller
from shipyard.server.api.context import Caller
from shipyard.server.api.policy import API_PREFIX

__all__ = ["router"]

router = APIRouter(prefix=API_PREFIX, tags=["system"])


@router.get("/health")
def health() -> JSONResponse:
    """Whether the server answers (no token needed)."""
    return JSONResponse({"status": "ok", "version": __version__})


@router.get("/whoami")
def whoami(who: Annotated[Caller, Depends(caller)]) -> JSONResponse:
    """The user the token speaks for and their roles."""
    return JSONResponse({"user": who.identity.user, "roles": sorted(who.identity.roles)})
