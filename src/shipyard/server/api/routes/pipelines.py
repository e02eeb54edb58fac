"""Pipeline runs (read-only for now)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from shipyard.server.api.auth import caller
from shipyard.server.api.context import ApiContext, Caller
from shipyard.server.api.policy import API_PREFIX
from shipyard.server.api.schemas import NAME_PATTERN

__all__ = ["router"]

router = APIRouter(prefix=API_PREFIX, tags=["pipelines"])
Who = Annotated[Caller, Depends(caller)]


@router.get("/pipelines/runs")
def list_pipeline_runs(
    request: Request,
    who: Who,
    pipeline: Annotated[str | None, Query(pattern=NAME_PATTERN, max_length=128)] = None,
    status: Annotated[str | None, Query(pattern=r"^[a-z_]{1,32}$")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> JSONResponse:
    """Pipeline runs, newest first."""
    context: ApiContext = request.app.state.context
    found = context.project.pipelines.list(pipeline=pipeline, status=status, limit=limit)
    return JSONResponse([r.to_dict() for r in found])
