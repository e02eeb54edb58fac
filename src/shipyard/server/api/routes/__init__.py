"""One router per domain word; ``ROUTERS`` is the list the app mounts under /api/v1."""

from __future__ import annotations

from fastapi import APIRouter

from shipyard.server.api.routes import (
    artifacts,
    audit,
    blobs,
    datasets,
    deployments,
    lineage,
    models,
    monitoring,
    pipelines,
    predictions,
    runs,
    schedules,
    system,
    users,
)

__all__ = ["ROUTERS"]

ROUTERS: tuple[APIRouter, ...] = (
    system.router,
    runs.router,
    artifacts.router,
    models.router,
    audit.router,
    blobs.router,
    datasets.router,
    deployments.router,
    lineage.router,
    pipelines.router,
    predictions.router,
    monitoring.router,
    users.router,
    schedules.router,
)
