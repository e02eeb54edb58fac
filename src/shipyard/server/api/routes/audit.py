"""The hash-chained audit log: read it and verify it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from shipyard.server.api.auth import caller
from shipyard.server.api.context import ApiContext, Caller
from shipyard.server.api.policy import API_PREFIX

__all__ = ["router"]

router = APIRouter(prefix=API_PREFIX, tags=["audit"])
Who = Annotated[Caller, Depends(caller)]


def _context(request: Request) -> ApiContext:
    context: ApiContext = request.app.state.context
    return context


@router.get("/audit")
def list_audit(
    request: Request,
    who: Who,
    after: Annotated[int, Query(ge=0, le=2**62)] = 0,
    limit: Annotated[int, Query(ge=1, le=5000)] = 100,
    entity_kind: Annotated[str | None, Query(pattern=r"^[a-z_]{1,64}$")] = None,
) -> JSONResponse:
    """Entries after ``after``, oldest first (cursor paging)."""
    entries = _context(request).project.audit.list(
        after=after, limit=limit, entity_kind=entity_kind
    )
    return JSONResponse([e.to_dict() for e in entries])


@router.get("/audit/verify")
def verify_audit(request: Request, who: Who) -> JSONResponse:
    """Re-compute the chain; report the first broken entry."""
    check = _context(request).project.audit.verify()
    return JSONResponse(
        {
            "ok": check.ok,
            "entries": check.entries,
            "broken_at": check.broken_at,
            "reason": check.reason,
        }
    )
