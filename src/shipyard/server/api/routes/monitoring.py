"""Monitor runs: a model's history, one run, and the JSON report stored with it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from shipyard.server.api.auth import caller
from shipyard.server.api.context import ApiContext, Caller
from shipyard.server.api.policy import API_PREFIX
from shipyard.server.api.schemas import RunIdPath
from shipyard.services.monitoring import MonitoringService

__all__ = ["router"]

router = APIRouter(prefix=API_PREFIX, tags=["monitoring"])
Who = Annotated[Caller, Depends(caller)]
# A model name, or ``name@ref`` as the CLI accepts (the reference is ignored).
_MODEL = r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*(@[A-Za-z0-9_][A-Za-z0-9_.\-]*)?$"


def _monitoring(request: Request) -> MonitoringService:
    context: ApiContext = request.app.state.context
    return context.project.monitoring


@router.get("/monitoring/runs")
def monitor_history(
    request: Request,
    who: Who,
    model: Annotated[str, Query(pattern=_MODEL, max_length=257)],
    limit: Annotated[int, Query(ge=1, le=1000)] = 20,
) -> JSONResponse:
    """The newest monitor runs of a model, newest first."""
    found = _monitoring(request).history(model, limit=limit)
    return JSONResponse([r.to_dict() for r in found])


@router.get("/monitoring/runs/{run_id}")
def get_monitor_run(request: Request, run_id: RunIdPath, who: Who) -> JSONResponse:
    """One monitor run: status, metrics, alerts, the digests of its reports."""
    return JSONResponse(_monitoring(request).show(run_id).to_dict())


@router.get("/monitoring/runs/{run_id}/report")
def get_monitor_report(request: Request, run_id: RunIdPath, who: Who) -> JSONResponse:
    """The JSON report stored with the run: ``{"run": ..., "report": <drift report>}``."""
    return JSONResponse(_monitoring(request).report(run_id))
