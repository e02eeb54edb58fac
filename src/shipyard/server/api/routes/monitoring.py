"""Monitor runs: run one here, a model's history, one run, its JSON report, Prometheus text.

``POST /monitoring/runs`` computes a run on the server, where the prediction log and the
reference datasets are, as the caller: the request names a model version, dataset versions
and a window, never a file. The retraining loop does not run here: it would run pipeline code
and load its pickled result in the server process. The client runs it where the pipeline
code is: it reads the run's window (``…/window``, Arrow IPC), adds it as a dataset version
through the server, records that link (``…/datasets``), runs the pipeline (records on the
server) and files the promotion request.
"""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import StringConstraints

from shipyard.domain.references import MAX_NAME_LENGTH
from shipyard.errors import PermissionDeniedError
from shipyard.server.api.auth import caller
from shipyard.server.api.context import ApiContext, Caller
from shipyard.server.api.policy import API_PREFIX
from shipyard.server.api.schemas import NAME_PATTERN, InputBody, MonitorRunBody, RunIdPath
from shipyard.services.monitoring import MonitoringService

__all__ = [
    "ARROW_STREAM",
    "LABEL_KEY",
    "MAX_METRICS_MODELS",
    "NO_RETRAIN",
    "PROMETHEUS_TEXT",
    "router",
]

router = APIRouter(prefix=API_PREFIX, tags=["monitoring"])
Who = Annotated[Caller, Depends(caller)]
# A model name, or ``name@ref`` as the CLI accepts (the reference is ignored).
_MODEL = r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*(@[A-Za-z0-9_][A-Za-z0-9_.\-]*)?$"
ModelName = Annotated[str, StringConstraints(pattern=NAME_PATTERN, max_length=MAX_NAME_LENGTH)]
# Names in one query (a URL of a few KiB at most); the client asks for all beyond that.
MAX_METRICS_MODELS = 40
PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"
NO_RETRAIN = (
    "the retraining loop does not run on the server (it would run pipeline code there): the "
    "shipyard client runs it where the pipeline code is, with its own [monitoring] settings"
)
ARROW_STREAM = "application/vnd.apache.arrow.stream"
LABEL_KEY = b"shipyard.label"  # the window's label column, in the Arrow schema's metadata


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
        deployments=p.deployments,  # read only: the servers' request counts of the window
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


@router.get(
    "/monitoring/runs/{run_id}/window",
    response_class=Response,
    responses={
        200: {"content": {ARROW_STREAM: {"schema": {"type": "string", "format": "binary"}}}}
    },
)
def get_monitor_window(request: Request, run_id: RunIdPath, who: Who) -> Response:
    """The rows the run judged (model inputs, prediction, labels), as Arrow IPC.

    What the retraining loop trains on; the label column's name is in the schema's metadata
    under ``shipyard.label``.
    """
    import pyarrow as pa

    table, label = _monitoring(request).window(run_id)
    schema = table.schema.with_metadata({**(table.schema.metadata or {}), LABEL_KEY: label})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, schema) as writer:
        writer.write_table(table.replace_schema_metadata(schema.metadata))
    return Response(sink.getvalue().to_pybytes(), media_type=ARROW_STREAM)


@router.post("/monitoring/runs/{run_id}/datasets")
def link_monitor_dataset(
    request: Request, run_id: RunIdPath, body: InputBody, who: Who
) -> JSONResponse:
    """Record that the retraining loop made a dataset version from the caller's run."""
    service = _monitoring_as(request, who)
    run = service.show(run_id)
    if run.created_by != who.identity.user:
        raise PermissionDeniedError(
            f"monitor run {run_id} was made by {run.created_by}; only they retrain from it"
        )
    dataset = who.services.datasets.resolve(body.dataset).ref
    service.link_dataset(run, dataset)
    return JSONResponse({"run": run.id, "dataset": dataset})
