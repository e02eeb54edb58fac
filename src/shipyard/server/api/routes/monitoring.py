"""Monitor runs: run one here, a model's history, one run, its JSON report, Prometheus text.

``POST /monitoring/runs`` computes a run on the server, where the prediction log and the
reference datasets are, as the caller: the request names a model version, dataset versions
and a window, never a file. The retraining loop does not run here: it would run pipeline code
and load its pickled result in the server process.
"""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import StringConstraints

from shipyard.domain.references import MAX_NAME_LENGTH
from shipyard.server.api.auth import caller
from shipyard.server.api.context import ApiContext, Caller
from shipyard.server.api.policy import API_PREFIX
from shipyard.server.api.schemas import NAME_PATTERN, MonitorRunBody, RunIdPath
from shipyard.services.monitoring import MonitoringService

__all__ = ["MAX_METRICS_MODELS", "NO_RETRAIN", "PROMETHEUS_TEXT", "router"]

router = APIRouter(prefix=API_PREFIX, tags=["monitoring"])
Who = Annotated[Caller, Depends(caller)]
# A model name, or ``name@ref`` as the CLI accepts (the reference is ignored).
_MODEL = r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*(@[A-Za-z0-9_][A-Za-z0-9_.\-]*)?$"
ModelName = Annotated[str, StringConstraints(pattern=NAME_PATTERN, max_length=MAX_NAME_LENGTH)]
# Names in one query (a URL of a few KiB at most); the client asks for all beyond that.
MAX_METRICS_MODELS = 40
PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"
NO_RETRAIN = (
    "the retraining loop does not run through the server (it would run pipeline code there): "
    "run `shipyard monitor run` where the project is, or start the retraining pipeline yourself"
)


def _monitoring(request: Request) -> MonitoringService:
    context: ApiContext = request.app.state.context
    return context.project.monitoring


def _monitoring_as(request: Request, who: Caller) -> MonitoringService:
    """A monitoring service whose reads and writes are the caller's (runs, lineage)."""
    context: ApiContext = request.app.state.context
    p = context.project
    bound = who.services
    services = SimpleNamespace(
        metadata=p.metadata,
        registry=bound.registry,
        datasets=bound.datasets,
        runs=bound.runs,
        lineage=p.lineage,
        predictions=p.predictions,
    )
    return MonitoringService(
        p.metadata,
        p.content,
        p.settings,
        services,
        user=who.identity.user,
        cache=p.settings.state_dir / "cache",
    )


@router.post("/monitoring/runs", status_code=201)
def run_monitoring(request: Request, body: MonitorRunBody, who: Who) -> JSONResponse:
    """Monitor a model version over a window here, as the caller; the stored run.

    Alerts are checked and notified as the server's ``[monitoring]`` says. When a run
    alerts and retraining is configured, ``retrain`` says why it did not start.
    """
    service = _monitoring_as(request, who)
    run = service.run(
        body.model,
        window=body.window,
        reference=body.reference,
        current=body.current,
        retrain=False,
        now=body.now,
    )
    context: ApiContext = request.app.state.context
    if body.retrain and run.status == "alert" and context.project.settings.retrain_pipeline:
        run = dataclasses.replace(run, retrain={"error": NO_RETRAIN})
    return JSONResponse(run.to_dict(), status_code=201)


@router.get(
    "/monitoring/metrics",
    # Response (no media type of its own) keeps the error answers documented as JSON.
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
def monitoring_metrics(
    request: Request,
    who: Who,
    model: Annotated[list[ModelName] | None, Query(max_length=MAX_METRICS_MODELS)] = None,
) -> PlainTextResponse:
    """The latest monitor run of each model (of ``model=``, repeatable) as Prometheus text."""
    text = _monitoring(request).metrics_text(model)
    return PlainTextResponse(text, media_type=PROMETHEUS_TEXT)


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
