"""Blobs: content uploaded and downloaded by its digest, never by a path."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from shipyard.server.api.auth import caller
from shipyard.server.api.context import ApiContext, Caller
from shipyard.server.api.policy import API_PREFIX
from shipyard.server.api.schemas import MissingBody

__all__ = ["router"]

router = APIRouter(prefix=API_PREFIX, tags=["blobs"])
Who = Annotated[Caller, Depends(caller)]
DigestPath = Annotated[
    str,
    Path(
        pattern=r"^blake3:[0-9a-f]{64}$",
        description="``blake3:`` and the 64 lowercase hex digits of the content's BLAKE3",
    ),
]
_BINARY = "application/octet-stream"


def _context(request: Request) -> ApiContext:
    context: ApiContext = request.app.state.context
    return context


@router.post("/blobs/missing")
def missing_blobs(request: Request, body: MissingBody, who: Who) -> JSONResponse:
    """Which of these digests the server does not hold: the ones a client must upload."""
    return JSONResponse({"missing": _context(request).transfers.missing(body.digests)})


@router.post(
    "/blobs/batch",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {_BINARY: {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
async def put_blob_batch(request: Request, who: Who) -> JSONResponse:
    """Upload many small files in one body, each verified; all or nothing.

    The body is a JSON line ``{"files": [[digest, size], ...]}`` and a newline, then the
    bytes of the files in that order.
    """
    transfers = _context(request).transfers
    stored = await transfers.receive_batch(request.stream())
    return JSONResponse(
        {"stored": [{"digest": u.digest, "size": u.size, "new": u.new} for u in stored]}
    )


@router.put(
    "/blobs/{digest}",
    status_code=201,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {_BINARY: {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
async def put_blob(request: Request, digest: DigestPath, who: Who) -> JSONResponse:
    """Upload content that must hash to ``digest``: streamed, size-limited, verified.

    201 when the content is new, 200 when the server held it already; 413 over the upload
    limit and 422 when the bytes hash to another digest (nothing is stored either way).
    """
    transfers = _context(request).transfers
    declared = request.headers.get("content-length")
    transfers.check_size(int(declared) if declared and declared.isdigit() else None)
    stored = await transfers.receive(digest, request.stream())
    body = {"digest": stored.digest, "size": stored.size, "new": stored.new}
    return JSONResponse(body, 201 if stored.new else 200)


@router.get(
    "/blobs/{digest}",
    response_class=StreamingResponse,
    responses={200: {"content": {_BINARY: {"schema": {"type": "string", "format": "binary"}}}}},
)
def get_blob(request: Request, digest: DigestPath, who: Who) -> StreamingResponse:
    """Download content by digest, streamed; the server checks it as it reads (so should you)."""
    found = _context(request).transfers.open(digest)
    headers = {"content-length": str(found.size), "x-content-digest": found.digest}
    return StreamingResponse(found.pieces, media_type=_BINARY, headers=headers)


@router.head("/blobs/{digest}")
def head_blob(request: Request, digest: DigestPath, who: Who) -> Response:
    """200 with the size when the server holds the content, 404 when it does not."""
    size = _context(request).transfers.size(digest)
    return Response(headers={"content-length": str(size), "x-content-digest": digest})
