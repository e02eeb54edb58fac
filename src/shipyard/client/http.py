"""One keep-alive HTTP client for a shipyard server; error answers become shipyard errors."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterable, Iterator
from typing import Any

import httpx

import shipyard.errors as errors
from shipyard.domain.pipelines import CURRENT_PIPELINE_RUN, PIPELINE_RUN_HEADER
from shipyard.errors import BackendError, ShipyardError, StoreUnavailableError

__all__ = ["ApiClient"]

try:
    import orjson
except ModuleNotFoundError:  # pragma: no cover - orjson comes with the server extra
    orjson = None  # type: ignore[assignment]

_KINDS: dict[str, type[ShipyardError]] = {
    name: getattr(errors, name)
    for name in (
        "UnauthenticatedError",
        "PermissionDeniedError",
        "NotFoundError",
        "AlreadyExistsError",
        "ConflictError",
        "BodyTooLargeError",
        "MalformedBodyError",
        "InvalidArgumentError",
        "NotSupportedError",
        "MissingDependencyError",
        "BackendError",
    )
}


class ApiClient:
    """Calls ``/api/v1`` of a server over one pooled, keep-alive connection per thread.

    Args:
        base_url: the server, such as ``http://127.0.0.1:5000``.
        token: the API token (None for a server without auth).
        timeout: seconds to wait for an answer.
    """

    def __init__(self, base_url: str, token: str | None, *, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {"user-agent": "shipyard-client"}
        if token:
            headers["authorization"] = f"Bearer {token}"
        self._http = httpx.Client(
            base_url=f"{self.base_url}/api/v1",
            headers=headers,
            timeout=timeout,
            limits=httpx.Limits(max_keepalive_connections=8, keepalive_expiry=60),
        )
        self._lock = threading.Lock()

    def call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: dict[str, Any] | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Send one request and return the decoded JSON answer.

        ``timeout`` overrides the client's for a call the server may work on for long (a
        monitor run over a large log).

        Raises:
            ShipyardError: the category the server answered with (404 NotFoundError, ...).
            StoreUnavailableError: when the server cannot be reached.
        """
        content = None if body is None else json.dumps(body, allow_nan=False).encode()
        headers = {"content-type": "application/json"} if content is not None else None
        return self.send(
            method, path, content=content, params=params, headers=headers, timeout=timeout
        )

    def send(
        self,
        method: str,
        path: str,
        *,
        content: bytes | Iterable[bytes] | None = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Send a request with a raw (possibly streamed) body; return the decoded JSON answer.

        Raises:
            ShipyardError: the category the server answered with.
            StoreUnavailableError: when the server cannot be reached.
        """
        try:
            answer = self._http.request(
                method,
                path,
                content=content,
                params=params,
                headers=_scoped(headers),
                timeout=self._http.timeout if timeout is None else httpx.Timeout(timeout),
            )
        except httpx.HTTPError as exc:
            raise StoreUnavailableError(self.base_url, f"{type(exc).__name__}: {exc}") from None
        data = _json(answer)
        if answer.is_success:
            return data
        raise _error(answer.status_code, data)

    @contextlib.contextmanager
    def stream(
        self, method: str, path: str, *, params: dict[str, Any] | None = None
    ) -> Iterator[httpx.Response]:
        """An answer whose body is read in pieces (``iter_bytes``), for downloads.

        Raises:
            ShipyardError: the category the server answered with.
            StoreUnavailableError: when the server cannot be reached or the stream breaks.
        """
        try:
            with self._http.stream(method, path, params=params, headers=_scoped(None)) as answer:
                if not answer.is_success:
                    answer.read()
                    raise _error(answer.status_code, _json(answer))
                yield answer
        except httpx.HTTPError as exc:
            raise StoreUnavailableError(self.base_url, f"{type(exc).__name__}: {exc}") from None

    def close(self) -> None:
        """Close the pooled connections."""
        self._http.close()


def _scoped(headers: dict[str, str] | None) -> dict[str, str] | None:
    # Inside a pipeline task, the server links what the request creates to the run.
    run_id = CURRENT_PIPELINE_RUN.get()
    if run_id is None:
        return headers
    return {**(headers or {}), PIPELINE_RUN_HEADER: run_id}


def _json(answer: httpx.Response) -> Any:
    if not answer.content:
        return None
    try:
        # orjson (with the server extra) decodes a page of runs several times faster.
        return answer.json() if orjson is None else orjson.loads(answer.content)
    except ValueError:  # not JSON (a proxy's error page): the status says what happened
        return None


def _error(status: int, data: Any) -> ShipyardError:
    detail = data.get("error") if isinstance(data, dict) else None
    if not isinstance(detail, dict):
        return BackendError(f"the server answered {status} without an error body")
    kind = _KINDS.get(str(detail.get("type")), BackendError)
    # Rebuilt from the message alone: the server's fields (digest, path...) are in it.
    error = kind.__new__(kind)
    ShipyardError.__init__(error, str(detail.get("message", "")))
    return error
