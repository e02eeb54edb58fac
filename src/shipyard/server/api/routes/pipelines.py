"""Pipeline runs: read, cancel, and the records remote drivers send.

Reads: list, show, task runs, a task's captured logs. Remote drivers start a run, send
batches of task rows with a heartbeat and the end, and ask for cached results.

Logs are blobs in the content store: the digest comes from the task run's record, never from
the client, and the bytes are streamed as stored (verified against the digest as they go).
A remote driver uploads results and logs to ``/blobs`` first and names them by digest; the
server checks that it holds them (``PipelineIntake``).
"""

from __future__ import annotations

import json
from datetime import UTC
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse

from shipyard.domain.pipelines import RUN_STATES
from shipyard.errors import NotFoundError
from shipyard.server.api.auth import caller
from shipyard.server.api.context import ApiContext, Caller
from shipyard.server.api.policy import API_PREFIX
from shipyard.server.api.schemas import (
    NAME_PATTERN,
    TASK_KEY_PATTERN,
    PipelineRecordsBody,
    PipelineRunBody,
    RunIdPath,
)
from shipyard.services.pipeline_intake import PipelineIntake
from shipyard.services.pipelines import PipelineService

__all__ = ["router"]

router = APIRouter(prefix=API_PREFIX, tags=["pipelines"])
Who = Annotated[Caller, Depends(caller)]
# A run id, or its first 6+ characters as the CLI accepts (hex only: no LIKE wildcards).
PipelineRunId = Annotated[str, Path(pattern=r"^[0-9a-f]{6,32}$")]


def _pipelines(request: Request) -> PipelineService:
    context: ApiContext = request.app.state.context
    return context.project.pipelines


def _intake(request: Request, who: Caller) -> PipelineIntake:
    context: ApiContext = request.app.state.context
    return PipelineIntake(context.project.metadata, context.transfers, who.identity.user)


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


@router.post("/pipelines/runs", status_code=201)
def start_pipeline_run(request: Request, body: PipelineRunBody, who: Who) -> JSONResponse:
    """Record a pipeline run a remote driver starts now, as the caller; the run.

    The driver runs the pipeline where it is and sends its records to
    ``/pipelines/runs/{run_id}/records``.
    """
    fields = body.model_dump()
    fields["params"] = json.dumps(fields["params"], sort_keys=True)
    run_id = _intake(request, who).begin(fields)
    return JSONResponse(_pipelines(request).get(run_id).to_dict(), status_code=201)


@router.post("/pipelines/runs/{run_id}/records")
def record_pipeline_run(
    request: Request, run_id: RunIdPath, body: PipelineRecordsBody, who: Who
) -> JSONResponse:
    """Write a batch of the caller's run: task rows, a heartbeat, the end if it came.

    403 when another user started the run, 409 once it has ended, 404 when a digest it
    names is not stored. The answer says whether the run was asked to stop.
    """
    tasks = [_aware(t.model_dump()) for t in body.tasks]
    run = body.run.model_dump() if body.run is not None else {}
    cancel = _intake(request, who).write(run_id, tasks, run, beat=body.beat)
    return JSONResponse({"cancel_requested": cancel})


@router.get("/pipelines/cache/{cache_key}")
def cached_task_result(
    request: Request,
    cache_key: Annotated[str, Path(pattern=r"^[0-9a-f]{64}$")],
    who: Who,
) -> JSONResponse:
    """The stored result of a task call with this cache key, among the caller's own runs.

    ``{"result_digest": null}`` when there is none.
    """
    return JSONResponse({"result_digest": _intake(request, who).lookup(cache_key)})


def _aware(row: dict[str, Any]) -> dict[str, Any]:
    # A time without a zone is UTC (the driver's clock); the store keeps aware UTC times.
    for column in ("started_at", "ended_at"):
        moment = row.get(column)
        if moment is not None and moment.tzinfo is None:
            row[column] = moment.replace(tzinfo=UTC)
    return row
