"""Lineage: the records upstream and downstream of one, and the kinds an id is known as."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from shipyard.domain.lineage import KINDS, Node
from shipyard.server.api.auth import caller
from shipyard.server.api.context import ApiContext, Caller
from shipyard.server.api.policy import API_PREFIX

__all__ = ["router"]

router = APIRouter(prefix=API_PREFIX, tags=["lineage"])
Who = Annotated[Caller, Depends(caller)]
NodeId = Annotated[
    str, Query(min_length=1, max_length=300, pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.@\-]*$")
]
_KIND = "^(" + "|".join(sorted(KINDS)) + ")$"


def _context(request: Request) -> ApiContext:
    context: ApiContext = request.app.state.context
    return context


@router.get("/lineage")
def lineage_graph(
    request: Request,
    who: Who,
    kind: Annotated[str, Query(pattern=_KIND)],
    id: NodeId,
    depth: Annotated[int, Query(ge=1, le=100)] = 20,
) -> JSONResponse:
    """Everything upstream and downstream of a record, ``depth`` hops each way."""
    graph = _context(request).project.lineage.graph(Node(kind, id), depth=depth)
    return JSONResponse(graph.to_dict())


@router.get("/lineage/kinds")
def lineage_kinds(request: Request, who: Who, id: NodeId) -> JSONResponse:
    """The kinds of the records some edge knows by this id."""
    return JSONResponse(_context(request).project.lineage.kinds_of(id))
