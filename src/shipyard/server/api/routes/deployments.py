"""Deployments: list them with their effective status, and read one."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse

from shipyard.domain.deployments import STATUSES
from shipyard.server.api.auth import caller
from shipyard.server.api.context import ApiContext, Caller
from shipyard.server.api.policy import API_PREFIX
from shipyard.server.api.schemas import NAME_PATTERN
from shipyard.services.deployments import DeploymentService

__all__ = ["router"]

router = APIRouter(prefix=API_PREFIX, tags=["deployments"])
Who = Annotated[Caller, Depends(caller)]
DeploymentId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$")]


def _deployments(request: Request) -> DeploymentService:
    context: ApiContext = request.app.state.context
    return context.project.deployments


@router.get("/deployments")
def list_deployments(
    request: Request,
    who: Who,
    name: Annotated[str | None, Query(pattern=NAME_PATTERN, max_length=128)] = None,
    status: Annotated[str | None, Query(pattern=f"^({'|'.join(STATUSES)})$")] = None,
) -> JSONResponse:
    """Deployments, newest first, with their effective status."""
    found = _deployments(request).list(name=name, status=status)
    return JSONResponse([d.to_dict() for d in found])


@router.get("/deployments/{deployment_id}")
def get_deployment(request: Request, deployment_id: DeploymentId, who: Who) -> JSONResponse:
    """One deployment: model version, URL, host, process, times, effective status."""
    return JSONResponse(_deployments(request).get(deployment_id).to_dict())
