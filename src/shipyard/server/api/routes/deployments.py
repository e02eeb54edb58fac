"""Deployments (read-only for now)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from shipyard.server.api.auth import caller
from shipyard.server.api.context import ApiContext, Caller
from shipyard.server.api.policy import API_PREFIX
from shipyard.server.api.schemas import NAME_PATTERN

__all__ = ["router"]

router = APIRouter(prefix=API_PREFIX, tags=["deployments"])
Who = Annotated[Caller, Depends(caller)]


@router.get("/deployments")
def list_deployments(
    request: Request,
    who: Who,
    name: Annotated[str | None, Query(pattern=NAME_PATTERN, max_length=128)] = None,
    status: Annotated[str | None, Query(pattern=r"^(running|stopped)$")] = None,
) -> JSONResponse:
    """Deployments, newest first, with their effective status."""
    context: ApiContext = request.app.state.context
    found = context.project.deployments.list(name=name, status=status)
    return JSONResponse([d.to_dict() for d in found])
