"""Run artifacts and inputs: files recorded by digest, datasets a run consumed."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from shipyard.server.api.auth import caller
from shipyard.server.api.context import Caller
from shipyard.server.api.policy import API_PREFIX
from shipyard.server.api.schemas import ArtifactsBody, InputBody, RunIdPath
from shipyard.services.objects import StoredFile

__all__ = ["router"]

router = APIRouter(prefix=API_PREFIX, tags=["runs"])
Who = Annotated[Caller, Depends(caller)]


@router.get("/runs/{run_id}/artifacts")
def list_artifacts(run_id: RunIdPath, who: Who) -> JSONResponse:
    """The files a run logged: path, digest and size (download each from /blobs)."""
    runs = who.services.runs
    runs.get(run_id)
    return JSONResponse([a.to_dict() for a in runs.artifacts(run_id)])


@router.post("/runs/{run_id}/artifacts", status_code=201)
def record_artifacts(run_id: RunIdPath, body: ArtifactsBody, who: Who) -> JSONResponse:
    """Record uploaded content as artifacts of a running run (404 for content not uploaded)."""
    files = [StoredFile(f.path, f.size, f.digest) for f in body.files]
    recorded = who.services.runs.record_artifacts(run_id, files)
    return JSONResponse([a.to_dict() for a in recorded], 201)


@router.post("/runs/{run_id}/inputs", status_code=201)
def record_input(run_id: RunIdPath, body: InputBody, who: Who) -> JSONResponse:
    """Record that a run consumed a dataset version (lineage)."""
    runs = who.services.runs
    runs.get(run_id)
    runs.link_input(run_id, body.dataset)
    return JSONResponse({"run_id": run_id, "dataset": body.dataset}, 201)
