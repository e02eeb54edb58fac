"""Datasets: list them, their versions, one version with its files and profile."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from shipyard.domain.references import validate_name
from shipyard.server.api.auth import caller
from shipyard.server.api.context import ApiContext, Caller
from shipyard.server.api.policy import API_PREFIX
from shipyard.server.api.schemas import NAME_PATTERN, NamePath, VersionPath

__all__ = ["router"]

router = APIRouter(prefix=API_PREFIX, tags=["datasets"])
Who = Annotated[Caller, Depends(caller)]


def _context(request: Request) -> ApiContext:
    context: ApiContext = request.app.state.context
    return context


@router.get("/datasets")
def list_datasets(
    request: Request,
    who: Who,
    after: Annotated[str | None, Query(pattern=NAME_PATTERN, max_length=128)] = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
) -> JSONResponse:
    """Datasets by name, ``limit`` at a time after the name ``after``."""
    found = _context(request).project.datasets.list(after=after, limit=limit)
    return JSONResponse([d.to_dict() for d in found])


@router.get("/datasets/{name}/versions")
def list_dataset_versions(request: Request, name: NamePath, who: Who) -> JSONResponse:
    """Every version of a dataset."""
    validate_name(name, what="dataset name")
    found = _context(request).project.datasets.versions(name)
    return JSONResponse([v.to_dict() for v in found])


@router.get("/datasets/{name}/versions/{version}")
def get_dataset_version(
    request: Request, name: NamePath, version: VersionPath, who: Who
) -> JSONResponse:
    """One version: its record, files and profile (null for opaque files)."""
    validate_name(name, what="dataset name")
    datasets = _context(request).project.datasets
    found = datasets.resolve(f"{name}@{version}")
    profile = datasets.profile(found)
    return JSONResponse(
        {
            "version": found.to_dict(),
            "files": [
                {"path": f.path, "size": f.size, "digest": f.digest}
                for f in datasets.manifest(found)
            ],
            "profile": profile.to_dict() if profile is not None else None,
        }
    )
