"""The one table from shipyard's error categories to HTTP statuses, and the handlers."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from shipyard.errors import (
    AlreadyExistsError,
    BackendError,
    BodyTooLargeError,
    ConflictError,
    InvalidArgumentError,
    MalformedBodyError,
    MissingDependencyError,
    NotFoundError,
    NotSupportedError,
    PermissionDeniedError,
    ShipyardError,
    UnauthenticatedError,
)
from shipyard.server.api.auth import authorize

__all__ = [
    "ERROR_RESPONSES",
    "STATUSES",
    "ErrorBody",
    "ErrorDetail",
    "error_body",
    "install_error_handlers",
    "status_of",
]

_log = logging.getLogger("shipyard.server.api")

# Most specific first: UnauthenticatedError is a PermissionDeniedError.
STATUSES: tuple[tuple[type[ShipyardError], int], ...] = (
    (UnauthenticatedError, 401),
    (PermissionDeniedError, 403),
    (NotFoundError, 404),
    (AlreadyExistsError, 409),
    (ConflictError, 409),
    (BodyTooLargeError, 413),
    (MalformedBodyError, 400),
    (InvalidArgumentError, 422),
    (NotSupportedError, 501),
    (MissingDependencyError, 501),
    (BackendError, 503),
)


class ErrorDetail(BaseModel):
    """What went wrong: the error's category and a message saying what to do next."""

    type: str
    message: str


class ErrorBody(BaseModel):
    """The JSON of every error answer (see ``error_body``)."""

    error: ErrorDetail


def _error_responses() -> dict[int | str, dict[str, Any]]:
    """Every status of the table, and 400 for an uncategorised error, as OpenAPI responses.

    Any route may answer any category, so every route lists them all, with the error body.
    """
    kinds: dict[int, list[str]] = {400: [ShipyardError.__name__]}
    for kind, status in STATUSES:
        kinds.setdefault(status, []).append(kind.__name__)
    return {
        status: {"model": ErrorBody, "description": ", ".join(names)}
        for status, names in sorted(kinds.items())
    }


# The app declares these on every route, so every status the table can answer is documented.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = _error_responses()


def status_of(error: ShipyardError) -> int:
    """The HTTP status of an error, by its category (400 for an uncategorised one)."""
    for kind, status in STATUSES:
        if isinstance(error, kind):
            return status
    return 400


def error_body(kind: str, message: str) -> dict[str, dict[str, str]]:
    """The JSON every error answer has: ``{"error": {"type": ..., "message": ...}}``."""
    return {"error": {"type": kind, "message": message}}


def _category(error: ShipyardError) -> str:
    for kind, _ in STATUSES:
        if isinstance(error, kind):
            return kind.__name__
    return ShipyardError.__name__


async def _shipyard_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, ShipyardError)
    status = status_of(error)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(error_body(_category(error), str(error)), status, headers=headers)


async def _refused(request: Request) -> JSONResponse | None:
    """The 401 or 403 of a request whose body failed before its caller was checked.

    FastAPI reads and decodes a JSON body before it runs the route's dependencies, so a body
    that cannot be read (400) or is not JSON (422) fails before ``authorize``: check the
    caller first, so that a request without a valid token learns nothing but 401, whatever
    it sent.
    """
    if hasattr(request.state, "caller"):
        return None
    try:
        await authorize(request)
    except ShipyardError as refused:
        return await _shipyard_error(request, refused)
    return None


async def _validation_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    refused = await _refused(request)
    if refused is not None:
        return refused
    problems = "; ".join(
        f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', 'invalid')}"
        for e in error.errors()[:5]
    )
    body = error_body(InvalidArgumentError.__name__, f"invalid request: {problems}")
    return JSONResponse(body, 422)


async def _http_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, HTTPException)
    if error.status_code == 400:  # FastAPI's "There was an error parsing the body"
        refused = await _refused(request)
        if refused is not None:
            return refused
    kind = NotFoundError.__name__ if error.status_code == 404 else "HTTPError"
    return JSONResponse(
        error_body(kind, str(error.detail)), error.status_code, headers=error.headers
    )


async def _unexpected(request: Request, error: Exception) -> JSONResponse:
    # Never a traceback to the client; the server's log keeps it.
    _log.exception("unexpected error answering %s %s", request.method, request.url.path)
    body = error_body("InternalError", "the server failed; its log has the details")
    return JSONResponse(body, 500)


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error as JSON with the status of its category."""
    app.add_exception_handler(ShipyardError, _shipyard_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
