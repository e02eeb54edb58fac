"""Deployments: list and read them; and the records of remote serving processes.

A ``shipyard serve`` pointed at a server records its deployment here (start, heartbeat,
switch, stop: only the user who started it may) and sends its prediction log as Parquet
batch files, checked before they are stored (``PredictionService.accept_batch``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Path, Query, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from shipyard.domain.deployments import STATUSES, RequestCounts
from shipyard.errors import BodyTooLargeError
from shipyard.server.api.auth import caller
from shipyard.server.api.context import ApiContext, Caller
from shipyard.server.api.policy import API_PREFIX
from shipyard.server.api.schemas import (
    NAME_PATTERN,
    DeploymentBody,
    DeploymentCountsBody,
    LabelBody,
)
from shipyard.services.deployments import DeploymentService

__all__ = ["BATCH_LIMIT", "router"]

router = APIRouter(prefix=API_PREFIX, tags=["deployments"])
Who = Annotated[Caller, Depends(caller)]
DeploymentId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$")]
BATCH_LIMIT = 64 * 1024 * 1024  # bytes of one prediction-log batch file
_PARQUET = "application/octet-stream"  # a Parquet file
# A heartbeat's or stop's body is optional: without one, no counts sample is recorded.
Counts = Annotated[DeploymentCountsBody | None, Body()]


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


# -- remote serving processes -------------------------------------------------------------


def _own(request: Request, who: Caller) -> DeploymentService:
    """The deployment service recording the caller as the actor."""
    context: ApiContext = request.app.state.context
    project = context.project
    return DeploymentService(
        project.metadata, project.audit, project.lineage, project.registry, actor=who.identity.user
    )


@router.post("/deployments", status_code=201)
def start_deployment(request: Request, body: DeploymentBody, who: Who) -> JSONResponse:
    """Record that a serving process (on its host) now serves a model version; 201."""
    started = _own(request, who).start(**body.model_dump())
    return JSONResponse(started.to_dict(), status_code=201)


@router.post("/deployments/{deployment_id}/switch")
def switch_deployment(
    request: Request, deployment_id: DeploymentId, body: LabelBody, who: Who
) -> JSONResponse:
    """The caller's running deployment now serves another version of its model."""
    deployments = _own(request, who)
    deployments.require_own(deployment_id)
    deployments.switch(deployment_id, body.version)
    return JSONResponse(deployments.get(deployment_id).to_dict())


@router.post("/deployments/{deployment_id}/heartbeat")
def beat_deployment(
    request: Request, deployment_id: DeploymentId, who: Who, body: Counts = None
) -> JSONResponse:
    """The caller's deployment is alive now; 409 once it was stopped.

    The optional body holds its cumulative ``/predict`` counts, kept as a sample.
    """
    deployments = _own(request, who)
    deployments.require_own(deployment_id)
    deployments.heartbeat(deployment_id, _counts(body))
    return JSONResponse({"ok": True})


@router.post("/deployments/{deployment_id}/stop")
def stop_deployment(
    request: Request, deployment_id: DeploymentId, who: Who, body: Counts = None
) -> JSONResponse:
    """Record that the caller's deployment stopped (again: no change).

    The optional body holds its last cumulative ``/predict`` counts.
    """
    deployments = _own(request, who)
    deployments.require_own(deployment_id)
    deployments.stop(deployment_id, _counts(body))
    return JSONResponse(deployments.get(deployment_id).to_dict())


@router.post(
    "/deployments/{deployment_id}/predictions",
    status_code=201,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {_PARQUET: {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
async def log_predictions(request: Request, deployment_id: DeploymentId, who: Who) -> JSONResponse:
    """Store one prediction-log batch (a Parquet file) of the caller's deployment; 201.

    413 over ``BATCH_LIMIT`` bytes; 422 for a file that is not a batch of this deployment.
    """
    deployments = _own(request, who)
    await run_in_threadpool(deployments.require_own, deployment_id)  # before reading a byte
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > BATCH_LIMIT:
        raise BodyTooLargeError(BATCH_LIMIT, hint="send smaller prediction-log batches")
    data = bytearray()
    async for piece in request.stream():
        data += piece
        if len(data) > BATCH_LIMIT:
            raise BodyTooLargeError(BATCH_LIMIT, hint="send smaller prediction-log batches")
    context: ApiContext = request.app.state.context

    def accept() -> int:  # reads and writes the stores: off the event loop
        deployment = deployments.require_own(deployment_id)
        return context.project.predictions.accept_batch(deployment, bytes(data))

    return JSONResponse({"rows": await run_in_threadpool(accept)}, status_code=201)


def _counts(body: DeploymentCountsBody | None) -> RequestCounts | None:
    return None if body is None else RequestCounts(**body.model_dump())
