"""Pipeline runs: list, show, their task runs, a task's captured logs, and cancel.

Logs are blobs in the content store: the digest comes from the task run's record, never from
the client, and the bytes are streamed as stored (verified against the digest as they go).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse

from shipyard.domain.pipelines import RUN_STATES
from shipyard.errors import NotFoundError
from shipyard.server.api.auth import caller
from shipyard.server.api.context import ApiContext, Caller
from shipyard.server.api.policy import API_PREFIX
from shipyard.server.api.schemas import NAME_PATTERN
from shipyard.services.pipelines import PipelineService

__all__ = ["TASK_KEY_PATTERN", "router"]

router = APIRouter(prefix=API_PREFIX, tags=["pipelines"])
Who = Annotated[Caller, Depends(caller)]
# A run id, or its first 6+ characters as the CLI accepts (hex only: no LIKE wildcards).
PipelineRunId = Annotated[str, Path(pattern=r"^[0-9a-f]{6,32}$")]
# Task keys are ``name-N`` with the task's (function) name, ``<lambda>`` too; never a path.
TASK_KEY_PATTERN = r"^[A-Za-z0-9_<][A-Za-z0-9_.<>\-]*$"


def _pipelines(request: Request) -> PipelineService:
    context: ApiContext = request.app.state.context
    return context.project.pipelines


@router.get("/pipelines/runs")
def list_pipeline_runs(
    request: Request,
    who: Who,
    pipeline: Annotated[str | None, Query(pattern=NAME_PATTERN, max_length=128)] = None,
    status: Annotated[str | None, Query(pattern=f"^({'|'.join(RUN_STATES)})$")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> JSONResponse:
    """Pipeline runs, newest first, of one pipeline and in one state if asked."""
    found = _pipelines(request).list(pipeline=pipeline, status=status, limit=limit)
    return JSONResponse([r.to_dict() for r in found])


@router.get("/pipelines/runs/{run_id}")
def get_pipeline_run(request: Request, run_id: PipelineRunId, who: Who) -> JSONResponse:
    """One pipeline run: parameters, state, times, error."""
    return JSONResponse(_pipelines(request).get(run_id).to_dict())


@router.get("/pipelines/runs/{run_id}/tasks")
def list_task_runs(request: Request, run_id: PipelineRunId, who: Who) -> JSONResponse:
    """The run's task runs, in start order."""
    return JSONResponse([t.to_dict() for t in _pipelines(request).tasks(run_id)])


@router.get(
    "/pipelines/runs/{run_id}/logs",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
def task_logs(
    request: Request,
    run_id: PipelineRunId,
    who: Who,
    task: Annotated[str, Query(pattern=TASK_KEY_PATTERN, max_length=255)],
) -> StreamingResponse:
    """The captured stdout, stderr and logging of one task (by key), as stored.

    An empty body when the task logged nothing (or has not ended yet).
    """
    pipelines = _pipelines(request)
    found = [t for t in pipelines.tasks(run_id) if t.key == task]
    if not found:
        raise NotFoundError(f"pipeline run {run_id} has no task {task!r}")
    digest = found[0].log_digest
    context: ApiContext = request.app.state.context
    # Opened before the answer starts, so a missing blob is a 404 and not a cut body.
    chunks = iter(()) if digest is None else context.transfers.open(digest).pieces
    return StreamingResponse(chunks, media_type="text/plain; charset=utf-8")


@router.post("/pipelines/runs/{run_id}/cancel")
def cancel_pipeline_run(request: Request, run_id: PipelineRunId, who: Who) -> JSONResponse:
    """Ask a running run to stop; 409 when it has ended."""
    return JSONResponse(_pipelines(request).cancel(run_id, actor=who.identity.user).to_dict())
