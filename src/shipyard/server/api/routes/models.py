"""The model registry: models, versions, aliases and promotion requests with approvals."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import JSONResponse

from shipyard.domain.models import Signature
from shipyard.domain.references import validate_name
from shipyard.server.api.auth import caller
from shipyard.server.api.context import Caller
from shipyard.server.api.policy import API_PREFIX
from shipyard.server.api.schemas import (
    NAME_PATTERN,
    AliasBody,
    DecisionBody,
    ModelChangeBody,
    ModelVersionBody,
    NamePath,
    PromotionBody,
    VersionPath,
)
from shipyard.services.objects import StoredFile

__all__ = ["router"]

router = APIRouter(prefix=API_PREFIX, tags=["registry"])
Who = Annotated[Caller, Depends(caller)]
RequestId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$")]


@router.get("/models")
def list_models(who: Who) -> JSONResponse:
    """Every registered model with its latest version and aliases."""
    return JSONResponse([m.to_dict() for m in who.services.registry.models()])


@router.get("/models/{name}")
def get_model(name: NamePath, who: Who) -> JSONResponse:
    """One registered model with its description, tags, latest version and aliases."""
    validate_name(name, what="model name")
    return JSONResponse(who.services.registry.model(name).to_dict())


@router.patch("/models/{name}")
def update_model(name: NamePath, body: ModelChangeBody, who: Who) -> JSONResponse:
    """Set a model's description and merge its tags (a null or empty value removes a tag)."""
    validate_name(name, what="model name")
    found = who.services.registry.update_model(name, description=body.description, tags=body.tags)
    return JSONResponse(found.to_dict())


@router.get("/models/{name}/versions")
def list_versions(name: NamePath, who: Who) -> JSONResponse:
    """Every version of a model, oldest first."""
    validate_name(name, what="model name")
    return JSONResponse([v.to_dict() for v in who.services.registry.versions(name)])


@router.get("/models/{name}/versions/{version}")
def get_version(name: NamePath, version: VersionPath, who: Who) -> JSONResponse:
    """One version of a model."""
    validate_name(name, what="model name")
    return JSONResponse(who.services.registry.resolve(f"{name}@{version}").to_dict())


@router.post("/models/{name}/versions", status_code=201)
def register_version(name: NamePath, body: ModelVersionBody, who: Who) -> JSONResponse:
    """Register the next version from uploaded files (upload their content to /blobs first)."""
    version = who.services.models.register_stored(
        name,
        [StoredFile(f.path, f.size, f.digest) for f in body.files],
        flavor=body.flavor,
        signature=None if body.signature is None else Signature.from_dict(body.signature),
        requirements=body.requirements,
        onnx=body.onnx.model_dump(),
        run_id=body.run_id,
        description=body.description,
        tags=body.tags,
    )
    return JSONResponse(version.to_dict(), 201)


@router.get("/model-versions")
def resolve_version(
    who: Who,
    reference: Annotated[str, Query(min_length=3, max_length=300, pattern=r"^[A-Za-z0-9_.@\-]+$")],
) -> JSONResponse:
    """The version ``name@N``, ``name@latest``, ``name@ALIAS`` or ``name@STAGE`` means now."""
    return JSONResponse(who.services.registry.resolve(reference).to_dict())


@router.put("/models/{name}/stages/{stage}")
def set_stage(name: NamePath, stage: NamePath, body: AliasBody, who: Who) -> JSONResponse:
    """Move a version to an unprotected stage (protected ones need a promotion request)."""
    validate_name(name, what="model name")
    return JSONResponse(who.services.registry.set_stage(f"{name}@{body.version}", stage).to_dict())


@router.put("/models/{name}/aliases/{alias}")
def set_alias(name: NamePath, alias: NamePath, body: AliasBody, who: Who) -> JSONResponse:
    """Point an unprotected alias at a version (protected ones need a promotion request)."""
    validate_name(name, what="model name")
    validate_name(alias, what="alias")
    version = who.services.registry.set_alias(f"{name}@{body.version}", alias)
    return JSONResponse(version.to_dict())


@router.get("/promotions")
def list_promotions(
    who: Who,
    status: Annotated[
        str | None, Query(pattern=r"^(pending|approved|rejected|cancelled|all)$")
    ] = "pending",
    name: Annotated[str | None, Query(pattern=NAME_PATTERN, max_length=128)] = None,
) -> JSONResponse:
    """Promotion requests, newest first (``status=all`` for every one)."""
    if name is not None:
        validate_name(name, what="model name")
    found = who.services.registry.requests(status=None if status == "all" else status, name=name)
    return JSONResponse([r.to_dict() for r in found])


@router.post("/promotions", status_code=201)
def request_promotion(body: PromotionBody, who: Who) -> JSONResponse:
    """Ask for a version to get a protected stage or alias."""
    found = who.services.registry.request(body.reference, body.to, body.reason)
    return JSONResponse(found.to_dict(), 201)


@router.post("/promotions/{request_id}/approve")
def approve_promotion(request_id: RequestId, body: DecisionBody, who: Who) -> JSONResponse:
    """Approve a request (approvers; not the requester when a second person is required)."""
    return JSONResponse(who.services.registry.approve(request_id, body.comment).to_dict())


@router.post("/promotions/{request_id}/reject")
def reject_promotion(request_id: RequestId, body: DecisionBody, who: Who) -> JSONResponse:
    """Reject a request."""
    return JSONResponse(who.services.registry.reject(request_id, body.comment).to_dict())


@router.post("/promotions/{request_id}/cancel")
def cancel_promotion(request_id: RequestId, who: Who) -> JSONResponse:
    """Withdraw a pending request (its requester, or an admin)."""
    return JSONResponse(who.services.registry.cancel(request_id).to_dict())
