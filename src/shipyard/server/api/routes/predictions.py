"""The prediction log: a model's logged rows as Arrow, and ground-truth labels by request id."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response

from shipyard.server.api.auth import caller
from shipyard.server.api.context import ApiContext, Caller
from shipyard.server.api.policy import API_PREFIX
from shipyard.server.api.schemas import FeedbackBody, NamePath

__all__ = ["ARROW_STREAM", "router"]

router = APIRouter(prefix=API_PREFIX, tags=["predictions"])
Who = Annotated[Caller, Depends(caller)]
ARROW_STREAM = "application/vnd.apache.arrow.stream"


def _context(request: Request) -> ApiContext:
    context: ApiContext = request.app.state.context
    return context


@router.get(
    "/predictions/{name}",
    response_class=Response,
    responses={
        200: {"content": {ARROW_STREAM: {"schema": {"type": "string", "format": "binary"}}}}
    },
)
def read_predictions(
    request: Request,
    name: NamePath,
    who: Who,
    since: datetime | None = None,
    until: datetime | None = None,
    deployment_id: Annotated[str | None, Query(pattern=r"^[0-9a-f]{32}$")] = None,
) -> Response:
    """A model's logged rows with their labels, oldest first, as an Arrow IPC stream."""
    import pyarrow as pa

    table = _context(request).project.predictions.read(
        name, since=since, until=until, deployment_id=deployment_id
    )
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return Response(sink.getvalue().to_pybytes(), media_type=ARROW_STREAM)


@router.post("/predictions/{name}/feedback")
def store_feedback(request: Request, name: NamePath, body: FeedbackBody, who: Who) -> JSONResponse:
    """Store ground-truth labels by request id (a label given again replaces the old one)."""
    stored = _context(request).project.predictions.feedback(
        name, body.labels, deployment_id=body.deployment_id
    )
    return JSONResponse({"model": name, "stored": stored})
