"""The model server's HTTP app: a raw ASGI callable, kept lean on the /predict path.

Routes: ``POST /predict``, ``POST /feedback``, ``GET /health``, ``/ready``, ``/metadata``,
``/metrics`` and ``/openapi.json``. Every rule lives in ``shipyard.services.serving``;
this module parses HTTP, calls it, and maps errors to statuses in one table.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from shipyard.domain.deployments import RequestCounts
from shipyard.domain.ids import new_id
from shipyard.errors import (
    BackendError,
    BodyTooLargeError,
    ConflictError,
    InvalidArgumentError,
    MalformedBodyError,
    NotFoundError,
    NotSupportedError,
    PermissionDeniedError,
    PredictionInputError,
    ShipyardError,
)
from shipyard.server.serving.metrics import MONITORING_EVERY, ServingMetrics
from shipyard.server.serving.openapi import openapi
from shipyard.services.serving import Output, ServingSession
from shipyard.services.serving_inputs import ARROW, CSV, JSON

__all__ = ["ERROR_STATUS", "ServingApp", "create_serving_app"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_log = logging.getLogger("shipyard.serving")

# One table from error category to HTTP status and metrics kind; first match wins.
ERROR_STATUS: tuple[tuple[type[ShipyardError], int, str], ...] = (
    (BodyTooLargeError, 413, "body_too_large"),
    (MalformedBodyError, 400, "malformed_body"),
    (PredictionInputError, 422, "invalid_input"),
    (InvalidArgumentError, 422, "invalid_input"),
    (NotFoundError, 404, "not_found"),
    (PermissionDeniedError, 403, "permission_denied"),
    (ConflictError, 409, "conflict"),
    (NotSupportedError, 501, "not_supported"),
    (BackendError, 503, "backend"),
)
_MEDIA = {JSON, CSV, ARROW, ""}
_INLINE_BYTES = 64 * 1024  # bodies at least this big are parsed off the event loop
_INLINE_ROWS = 256  # ONNX batches larger than this run in the prediction thread
_JSON_HEADERS = [(b"content-type", b"application/json")]


class _ClientGone(Exception):
    """The client disconnected before sending its whole body."""


def create_serving_app(
    session: ServingSession,
    *,
    body_limit: int = 10 * 1024 * 1024,
    follow_every: float | None = None,
    heartbeat_every: float = 15.0,
    metrics: ServingMetrics | None = None,
) -> ServingApp:
    """The ASGI app serving ``session``.

    Args:
        session: the loaded model server and its deployment.
        body_limit: largest request body, in bytes (413 above).
        follow_every: seconds between checks of the followed alias; None does not follow.
        heartbeat_every: seconds between deployment heartbeats.
        metrics: counters to fill (pass the ones the batcher reports batch sizes to).
    """
    return ServingApp(
        session,
        body_limit=body_limit,
        follow_every=follow_every,
        heartbeat_every=heartbeat_every,
        metrics=metrics,
    )


class ServingApp:
    """See ``create_serving_app``."""

    def __init__(
        self,
        session: ServingSession,
        *,
        body_limit: int,
        follow_every: float | None,
        heartbeat_every: float,
        metrics: ServingMetrics | None,
    ) -> None:
        self.session = session
        self.body_limit = body_limit
        self.follow_every = follow_every
        self.heartbeat_every = heartbeat_every
        self.metrics = metrics or ServingMetrics()
        self.monitoring_every = MONITORING_EVERY  # the latest monitor run is read this often
        self.draining = False
        # request ids: a UUIDv7 prefix of this process then a counter; unique, sortable, cheap
        self._id_prefix = new_id()[:20]
        self._ids = itertools.count()
        self._tasks: list[asyncio.Task[None]] = []
        self._routes: dict[tuple[str, str], Callable[[Scope, Receive, Send], Awaitable[None]]] = {
            ("POST", "/predict"): self._predict,
            ("POST", "/feedback"): self._feedback,
            ("GET", "/health"): self._health,
            ("GET", "/ready"): self._ready,
            ("GET", "/metadata"): self._metadata,
            ("GET", "/metrics"): self._metrics,
            ("GET", "/openapi.json"): self._openapi,
        }
        self._paths = {path for _, path in self._routes}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The ASGI entry point."""
        kind = scope["type"]
        if kind == "http":
            handler = self._routes.get((scope["method"], scope["path"]))
            if handler is not None:
                await handler(scope, receive, send)
                return
            path = scope["path"]
            status = 405 if path in self._paths else 404
            self.metrics.request("other", status)
            reason = "method not allowed" if status == 405 else f"no route {path}"
            await _json(send, status, {"error": reason})
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    # -- /predict -------------------------------------------------------------------------

    async def _predict(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        at = time.time()
        served = self.session.server.current  # one version answers the whole request
        length, media = None, ""
        for key, value in scope["headers"]:
            if key == b"content-length":
                length = value
            elif key == b"content-type":
                media = value.decode("latin-1")
        try:
            kind = media.split(";", 1)[0].strip().lower()
            if kind not in _MEDIA and not kind.endswith("+json"):
                await self._fail(
                    send,
                    "/predict",
                    415,
                    "unsupported_media_type",
                    f"unsupported content type {media!r}: send {JSON}, {CSV} or {ARROW}",
                )
                return
            body = await self._body(receive, length)
            if len(body) < _INLINE_BYTES:
                frame = served.schema.parse(body, kind)
            else:  # a big batch would hold the event loop: parse it in a thread
                loop = asyncio.get_running_loop()
                frame = await loop.run_in_executor(None, served.schema.parse, body, kind)
            batcher = served.batcher
            output: Output
            if frame.rows == 1 and batcher is not None:
                output = await batcher.submit(frame)
            elif served.inline and frame.rows <= _INLINE_ROWS:
                output = served.predict(frame)
            else:
                loop = asyncio.get_running_loop()
                output = await loop.run_in_executor(served.executor, served.predict, frame)
        except _ClientGone:
            self.metrics.request("/predict", 499)
            return
        except ShipyardError as exc:
            status, what = _status(exc)
            await self._fail(send, "/predict", status, what, str(exc), exc)
            return
        except Exception as exc:  # a model failure on valid input: the server's fault
            _log.exception("prediction failed")
            await self._fail(send, "/predict", 500, "internal", f"prediction failed: {exc}")
            return
        request_id = f"{self._id_prefix}{next(self._ids):012x}"
        version = served.version
        answer = output.to_dict()
        answer["request_id"] = request_id
        answer["model"] = version.name
        answer["version"] = version.version
        data = _json_bytes(answer)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(data)).encode()),
                    (b"x-request-id", request_id.encode()),
                    (b"x-model-version", str(version.version).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": data})
        latency = time.perf_counter() - started
        metrics = self.metrics
        metrics.request("/predict", 200)
        metrics.latency.observe(latency)
        metrics.rows += frame.rows
        self.session.record(request_id, at, version.version, frame, output, latency)

    async def _body(self, receive: Receive, length: bytes | None) -> bytes:
        limit = self.body_limit
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                raise MalformedBodyError(
                    "HTTP", f"Content-Length {length!r} is not a number"
                ) from None
            if declared > limit:
                raise BodyTooLargeError(limit)
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _ClientGone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise BodyTooLargeError(limit)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def _fail(
        self,
        send: Send,
        endpoint: str,
        status: int,
        kind: str,
        message: str,
        exc: ShipyardError | None = None,
    ) -> None:
        self.metrics.request(endpoint, status)
        self.metrics.error(kind)
        body: dict[str, Any] = {"error": message}
        if isinstance(exc, PredictionInputError):
            body["column"] = exc.column
        await _json(send, status, body)

    # -- the other routes -------------------------------------------------------------------

    async def _feedback(self, scope: Scope, receive: Receive, send: Send) -> None:
        length = next((v for k, v in scope["headers"] if k == b"content-length"), None)
        try:
            body = await self._body(receive, length)
            try:
                value = json.loads(body)
            except (UnicodeDecodeError, ValueError) as exc:
                raise MalformedBodyError(JSON, str(exc)) from None
            if type(value) is not dict or type(value.get("labels")) is not dict:
                raise InvalidArgumentError('send {"labels": {"<request_id>": <label>, ...}}')
            loop = asyncio.get_running_loop()
            stored = await loop.run_in_executor(None, self.session.feedback, value["labels"])
        except _ClientGone:
            return
        except ShipyardError as exc:
            status, what = _status(exc)
            await self._fail(send, "/feedback", status, what, str(exc), exc)
            return
        self.metrics.request("/feedback", 200)
        await _json(send, 200, {"stored": stored})

    async def _health(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.metrics.request("/health", 200)
        await _json(send, 200, {"status": "ok"})

    async def _ready(self, scope: Scope, receive: Receive, send: Send) -> None:
        server = self.session.server
        if self.draining or not server.loaded:
            self.metrics.request("/ready", 503)
            reason = "shutting down" if self.draining else "loading the model"
            await _json(send, 503, {"ready": False, "reason": reason})
            return
        self.metrics.request("/ready", 200)
        await _json(send, 200, {"ready": True, "version": server.current.version.version})

    async def _metadata(self, scope: Scope, receive: Receive, send: Send) -> None:
        loop = asyncio.get_running_loop()
        body = await loop.run_in_executor(None, self.session.metadata)  # lineage reads the store
        self.metrics.request("/metadata", 200)
        await _json(send, 200, body)

    async def _metrics(self, scope: Scope, receive: Receive, send: Send) -> None:
        session = self.session
        served = session.server.current
        self.metrics.request("/metrics", 200)
        text = self.metrics.render(
            model=served.version.name,
            version=served.version.version,
            runtime=served.runtime,
            log=session.log.counters() if session.log is not None else {},
            switches=session.switches,
            uptime=time.time() - session.started_at,
        )
        data = text.encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/plain; version=0.0.4; charset=utf-8"),
                    (b"content-length", str(len(data)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": data})

    async def _openapi(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.metrics.request("/openapi.json", 200)
        await _json(send, 200, openapi(self.session.server.current))

    # -- lifespan: deployment record, heartbeat, following the alias --------------------------

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        loop = asyncio.get_running_loop()
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await loop.run_in_executor(None, self.session.start)
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                beat = self._every("heartbeat", self.heartbeat_every, self._heartbeat)
                self._tasks.append(loop.create_task(beat))
                if self.follow_every is not None and self.session.server.follows:
                    follow = self._every("follow", self.follow_every, self._follow)
                    self._tasks.append(loop.create_task(follow))
                if self.metrics.monitoring_source is not None:
                    every = self.monitoring_every
                    watch = self._every("monitoring", every, self.metrics.refresh_monitoring, 0.0)
                    self._tasks.append(loop.create_task(watch))
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                # uvicorn has stopped accepting and finished the requests in flight
                self.draining = True
                for task in self._tasks:
                    task.cancel()
                for task in self._tasks:
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
                try:  # the final counts, so the requests since the last heartbeat count
                    await loop.run_in_executor(None, self.session.close, self.predict_counts())
                except Exception as exc:
                    await send({"type": "lifespan.shutdown.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _every(
        self, what: str, seconds: float, job: Callable[[], object], first: float | None = None
    ) -> None:
        loop = asyncio.get_running_loop()
        wait = seconds if first is None else first
        while True:
            await asyncio.sleep(wait)
            wait = seconds
            try:
                await loop.run_in_executor(None, job)
            except Exception as exc:  # keep serving; the next round tries again
                _log.warning("%s failed: %s", what, exc)
                self.metrics.error(what)

    def predict_counts(self) -> RequestCounts:
        """``/predict`` answers since the process started: all, 4xx and 5xx.

        A request whose client left before the answer (499) was not answered: not counted.
        """
        requests = client = server = 0
        # list() copies the items in one step under the GIL, also from the heartbeat thread
        for (endpoint, status), count in list(self.metrics.requests.items()):
            if endpoint != "/predict" or status == 499:
                continue
            requests += count
            if status >= 500:
                server += count
            elif status >= 400:
                client += count
        return RequestCounts(requests, client, server)

    def _heartbeat(self) -> None:
        self.session.heartbeat(self.predict_counts())

    def _follow(self) -> None:
        served = self.session.refresh()
        if served is not None:
            _log.warning("now serving %s (%s)", served.version.ref, served.runtime)


def _status(exc: ShipyardError) -> tuple[int, str]:
    for kind, status, name in ERROR_STATUS:
        if isinstance(exc, kind):
            return status, name
    return 500, "internal"


async def _json(send: Send, status: int, body: Any) -> None:
    data = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*_JSON_HEADERS, (b"content-length", str(len(data)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": data})


def _json_bytes(answer: dict[str, Any]) -> bytes:
    """Strict JSON: a NaN or infinite prediction becomes null (JSON has no spelling for it)."""
    try:
        return json.dumps(answer, allow_nan=False).encode()
    except ValueError:
        return json.dumps(_finite(answer), allow_nan=False).encode()


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
