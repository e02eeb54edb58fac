"""Datasets: list them, their versions, one version with its files and profile."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from shipyard.domain.datasets import DatasetCard
from shipyard.domain.profiles import TableProfile
from shipyard.domain.references import validate_name
from shipyard.errors import InvalidArgumentError
from shipyard.server.api.auth import caller
from shipyard.server.api.context import ApiContext, Caller
from shipyard.server.api.policy import API_PREFIX
from shipyard.server.api.schemas import (
    NAME_PATTERN,
    DatasetVersionBody,
    LabelBody,
    NamePath,
    VersionPath,
)
from shipyard.services.objects import StoredFile

__all__ = ["router"]

router = APIRouter(prefix=API_PREFIX, tags=["datasets"])
Who = Annotated[Caller, Depends(caller)]


def _context(request: Request) -> ApiContext:
    context: ApiContext = request.app.state.context
    return context


def _table_profile(data: dict[str, Any] | None) -> TableProfile | None:
    """The profile the client computed, or a 422 naming what is malformed (never a 500)."""
    if data is None:
        return None
    try:
        return TableProfile.from_dict(data)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InvalidArgumentError(
            f"profile is not a table profile as TableProfile.to_dict writes it: "
            f"{type(exc).__name__} {exc}"
        ) from None


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
    request: Request,
    name: NamePath,
    version: VersionPath,
    who: Who,
    files: bool = True,
    profile: bool = True,
) -> JSONResponse:
    """One version: its record, files and profile (null for opaque files, or when not asked)."""
    validate_name(name, what="dataset name")
    datasets = _context(request).project.datasets
    found = datasets.resolve(f"{name}@{version}")
    described = datasets.profile(found) if profile else None
    listed = datasets.manifest(found) if files else None
    return JSONResponse(
        {
            "version": found.to_dict(),
            "files": None
            if listed is None
            else [{"path": f.path, "size": f.size, "digest": f.digest} for f in listed],
            "profile": described.to_dict() if described is not None else None,
        }
    )


@router.get("/dataset-versions")
def resolve_dataset_version(
    request: Request,
    who: Who,
    reference: Annotated[str, Query(min_length=1, max_length=300, pattern=r"^[^\x00/\\]+$")],
) -> JSONResponse:
    """The version ``name``, ``name@N``, ``name@latest`` or ``name@label`` means now."""
    return JSONResponse(_context(request).project.datasets.resolve(reference).to_dict())


@router.post("/datasets/{name}/versions", status_code=201)
def add_dataset_version(name: NamePath, body: DatasetVersionBody, who: Who) -> JSONResponse:
    """Add a version from uploaded files (201), or answer the latest when unchanged (200)."""
    card = DatasetCard(
        description=body.description,
        owner=body.owner,
        license=body.license,
        source_uri=body.source_uri,
        fetched_at=body.fetched_at,
        tags=body.tags,
    )
    result = who.services.datasets.add_stored(
        name,
        [StoredFile(f.path, f.size, f.digest) for f in body.files],
        table_format=body.format,
        profile=_table_profile(body.profile),
        card=card,
        key=body.key,
    )
    return JSONResponse(result.to_dict(), 201 if result.created else 200)


@router.put("/datasets/{name}/labels/{label}")
def label_dataset_version(
    name: NamePath, label: NamePath, body: LabelBody, who: Who
) -> JSONResponse:
    """Point ``name@label`` at a version."""
    return JSONResponse(who.services.datasets.label(f"{name}@{body.version}", label).to_dict())
