"""One router per domain word; ``ROUTERS`` is the list the app mounts under /api/v1."""

from __future__ import annotations

from fastapi import APIRouter

from shipyard.server.api.routes import (
    audit,
    datasets,
    deployments,
    models,
    pipelines,
    runs,
    system,
    users,
)

__all__ = ["ROUTERS"]

ROUTERS: tuple[APIRouter, ...] = (
    system.router,
    runs.router,
    models.router,
    audit.router,
    datasets.router,
    deployments.router,
    pipelines.router,
    users.router,
)
