"""Runs: start, log batches to, end, read and search experiment runs."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from shipyard.domain.references import validate_name
from shipyard.server.api.auth import caller
from shipyard.server.api.context import ApiContext, Caller
from shipyard.server.api.fast_json import FastJSONResponse
from shipyard.server.api.policy import API_PREFIX
from shipyard.server.api.schemas import EndRunBody, LogBatchBody, RunCreateBody, RunIdPath
from shipyard.services import run_writes
from shipyard.services.gc_pause import gc_paused

__all__ = ["router"]

router = APIRouter(prefix=API_PREFIX, tags=["runs"])
Who = Annotated[Caller, Depends(caller)]


def _context(request: Request) -> ApiContext:
    context: ApiContext = request.app.state.context
    return context


@router.get("/experiments")
def list_experiments(who: Who) -> JSONResponse:
    """Every experiment, by name."""
    return JSONResponse([e.to_dict() for e in who.services.runs.experiments()])


@router.post("/runs", status_code=201)
def create_run(request: Request, body: RunCreateBody, who: Who) -> JSONResponse:
    """Start a run as the caller."""
    validate_name(body.experiment, what="experiment name")
    run = run_writes.create_run(
        _context(request).project.metadata,
        who.services.runs,
        experiment=body.experiment,
        name=body.name,
        parent_id=body.parent_id,
        tags=body.tags,
        host=body.host,
        pid=body.pid,
        user=who.identity.user,
    )
    return JSONResponse(run.to_dict(), 201)


@router.get("/runs", response_class=FastJSONResponse)
def search_runs(
    who: Who,
    experiment: Annotated[list[str] | None, Query(max_length=100)] = None,
    filter: Annotated[str | None, Query(max_length=4000)] = None,
    order_by: Annotated[list[str] | None, Query(max_length=20)] = None,
    max_results: Annotated[int, Query(ge=1, le=50_000)] = 1000,
    page_token: Annotated[str | None, Query(max_length=1000)] = None,
) -> FastJSONResponse:
    """Search runs with the filter language (``metrics.auc > 0.9 and params.x = '5'``)."""
    for name in experiment or ():
        validate_name(name, what="experiment name")
    page = who.services.runs.search(experiment, filter, order_by, max_results, page_token)
    with gc_paused():  # see gc_pause: thousands of runs become tens of thousands of objects
        return FastJSONResponse(
            {"runs": [r.to_dict() for r in page], "next_page_token": page.next_page_token}
        )


@router.get("/runs/{run_id}")
def get_run(run_id: RunIdPath, who: Who) -> JSONResponse:
    """A run with its params, tags and latest metrics."""
    return JSONResponse(who.services.runs.get(run_id).to_dict())


@router.post("/runs/{run_id}/batch")
def log_batch(request: Request, run_id: RunIdPath, body: LogBatchBody, who: Who) -> JSONResponse:
    """Write params, tags and metric points in one transaction."""
    points = [(m.key, m.step, m.timestamp, m.value) for m in body.metrics]
    written = run_writes.write_batch(
        _context(request).project.metadata,
        who.services.runs,
        run_id,
        params=body.params,
        tags=body.tags,
        points=points,
    )
    return JSONResponse({"metrics": written})


@router.post("/runs/{run_id}/end")
def end_run(request: Request, run_id: RunIdPath, body: EndRunBody, who: Who) -> JSONResponse:
    """End a run as finished, failed or killed."""
    run = run_writes.end_run(
        _context(request).project.metadata, who.services.runs, run_id, body.status
    )
    return JSONResponse(run.to_dict())


@router.get("/runs/{run_id}/metric-history")
def metric_history(
    run_id: RunIdPath,
    who: Who,
    key: Annotated[str, Query(min_length=1, max_length=255, pattern=r"^[^\x00]+$")],
) -> JSONResponse:
    """Every point of one metric of a run."""
    runs = who.services.runs
    runs.get(run_id)
    return JSONResponse(runs.metrics.history(run_id, key).to_dict())
