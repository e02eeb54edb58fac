"""The prediction log's writer: record on the serving path, write Parquet in the background.

``record`` only appends to an in-memory queue (no I/O, no Arrow, no lock held for long).
A background thread takes a batch when ``max_rows`` rows wait or the oldest has waited
``max_delay`` seconds, turns it into one zstd Parquet file and hands it to a ``BatchSink``.
``StoredBatches`` stores the file content-addressed, then inserts its ``prediction_batches``
row in one transaction: a batch is visible only once both are committed, so a crash loses
at most the queue and never leaves a row pointing at a missing file (an orphan blob, at
worst, is collected by gc). A server behind a remote serving process does the same with
the file it was sent (the client's sink uploads, then records).

When the queue is full (``max_queued_rows``) new requests are dropped and counted: the
log never slows down serving.
"""

from __future__ import annotations

import collections
import json
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from shipyard.domain.ids import new_id, utcnow
from shipyard.domain.predictions import InputBlock, Logged, columns_of, sampled
from shipyard.domain.references import validate_name
from shipyard.errors import InvalidArgumentError
from shipyard.stores.artifacts.content import ContentStore
from shipyard.stores.metadata import SqlMetadataStore
from shipyard.stores.metadata.schema import prediction_batches

__all__ = [
    "BatchSink",
    "PredictionLog",
    "StoredBatches",
    "batch_table",
    "batch_types",
    "sliced_table",
]

_log = logging.getLogger(__name__)
_RETRIES = (0.2, 1.0, 5.0)  # seconds between attempts to store a batch before dropping it
_SLICE = 250  # requests a batch is built in at a time (see sliced_table)


class BatchSink(Protocol):
    """Where the log's Parquet files go: the project's stores, or a server."""

    def store_batch(
        self,
        *,
        deployment_id: str,
        name: str,
        data: bytes,
        rows: int,
        first_at: datetime,
        last_at: datetime,
    ) -> None:
        """Store one batch file and make it visible to readers (both, or neither)."""
        ...


class StoredBatches:
    """A ``BatchSink`` on the project's stores.

    Args:
        metadata: the metadata store (receives one ``prediction_batches`` row a file).
        content: the content store (receives the Parquet files).
    """

    def __init__(self, metadata: SqlMetadataStore, content: ContentStore) -> None:
        self._metadata = metadata
        self._content = content

    def store_batch(
        self,
        *,
        deployment_id: str,
        name: str,
        data: bytes,
        rows: int,
        first_at: datetime,
        last_at: datetime,
    ) -> None:
        """Store the file, then its row (after the blob: a row never dangles)."""
        digest = self._content.put_bytes(data).digest
        self.record(deployment_id, name, digest, rows, first_at, last_at)

    def record(
        self,
        deployment_id: str,
        name: str,
        digest: str,
        rows: int,
        first_at: datetime,
        last_at: datetime,
    ) -> None:
        """Insert the row of a batch file already stored as ``digest``."""
        with self._metadata.write() as conn:
            conn.execute(
                prediction_batches.insert().values(
                    id=new_id(),
                    deployment_id=deployment_id,
                    name=name,
                    digest=digest,
                    rows=rows,
                    first_at=first_at,
                    last_at=last_at,
                    created_at=utcnow(),
                )
            )


class PredictionLog:
    """The asynchronous, batched writer of one deployment's predictions.

    Args:
        sink: where batch files go (``StoredBatches``, or a server's).
        deployment_id: the deployment whose predictions these are.
        name: the model's name.
        sample_rate: the share of requests logged, 0 to 1, decided by request id.
        max_rows: a batch file holds at most this many rows; a full batch is written at once.
        max_delay: seconds a request waits at most before its batch is written.
        max_queued_rows: rows the queue holds at most; beyond, requests are dropped.
    """

    def __init__(
        self,
        sink: BatchSink,
        *,
        deployment_id: str,
        name: str,
        sample_rate: float = 1.0,
        max_rows: int = 5000,
        max_delay: float = 2.0,
        max_queued_rows: int = 200_000,
    ) -> None:
        validate_name(name, what="model name")
        if not 0.0 <= sample_rate <= 1.0:
            raise InvalidArgumentError(f"sample_rate is between 0 and 1, not {sample_rate!r}")
        if max_rows < 1 or max_queued_rows < max_rows:
            raise InvalidArgumentError("max_rows must be >= 1 and <= max_queued_rows")
        if not max_delay > 0:
            raise InvalidArgumentError(f"max_delay is a number of seconds > 0, not {max_delay!r}")
        self._sink = sink
        self.deployment_id = deployment_id
        self.name = name
        self._rate = float(sample_rate)
        self._max_rows = max_rows
        self._max_delay = float(max_delay)
        self._max_queued = max_queued_rows
        self._queue: collections.deque[Logged] = collections.deque()
        self._lock = threading.Lock()  # guards the queue and the counters
        self._write_lock = threading.Lock()  # one batch is taken and written at a time
        self._wake = threading.Event()
        self._queued = 0
        self._written = 0
        self._dropped = 0
        self._sampled_out = 0
        self._batches = 0
        self._closed = False
        self._stopping = False
        self.last_error: str | None = None
        self._thread = threading.Thread(
            target=self._run, name=f"shipyard-prediction-log-{name}", daemon=True
        )
        self._thread.start()

    # -- the serving path ---------------------------------------------------------------------

    def record(
        self,
        *,
        request_id: str,
        at: float,
        version: int,
        inputs: Sequence[Mapping[str, Any]] | InputBlock,
        outputs: list[Any],
        latency: float,
        probabilities: Sequence[Sequence[float]] | None = None,
    ) -> None:
        """Queue one request's rows for logging; O(1), never waits for I/O.

        The lists are kept as they are (not copied): do not change them afterwards.

        Args:
            request_id: the request's id (what feedback labels refer to).
            at: when the request arrived, in seconds since the epoch.
            version: the model version that answered.
            inputs: the request's input rows, one mapping of field to value each, or one
                ``InputBlock`` (a matrix and its column names).
            outputs: the model's output for each input row.
            latency: seconds the request took.
            probabilities: class probabilities of each row, stored as ``probability_<i>``.

        Raises:
            InvalidArgumentError: if there are not as many outputs (or rows of
                probabilities) as inputs.
        """
        if len(outputs) != len(inputs) or (
            probabilities is not None and len(probabilities) != len(inputs)
        ):
            raise InvalidArgumentError(
                f"request {request_id}: {len(inputs)} input rows but {len(outputs)} outputs"
                + ("" if probabilities is None else f" and {len(probabilities)} probability rows")
            )
        rows = len(inputs)
        keep = self._rate >= 1.0 or sampled(request_id, self._rate)
        with self._lock:
            if not keep:
                self._sampled_out += rows
                return
            if self._closed or self._queued + rows > self._max_queued:
                self._dropped += rows
                return
            self._queue.append(
                Logged(
                    request_id,
                    at,
                    version,
                    inputs,
                    outputs,
                    latency,
                    time.monotonic(),
                    probabilities,
                )
            )
            self._queued += rows
            full = self._queued >= self._max_rows
        if full and not self._wake.is_set():  # one wake-up, not one per request
            self._wake.set()

    @property
    def queued(self) -> int:
        """Rows waiting in the queue now."""
        return self._queued

    @property
    def written(self) -> int:
        """Rows written to the log since this writer started."""
        return self._written

    @property
    def dropped(self) -> int:
        """Rows lost since this writer started: the queue was full, or storing failed."""
        return self._dropped

    def counters(self) -> dict[str, int]:
        """Every counter at once: queued, written, dropped, sampled_out, batches."""
        with self._lock:
            return {
                "queued": self._queued,
                "written": self._written,
                "dropped": self._dropped,
                "sampled_out": self._sampled_out,
                "batches": self._batches,
            }

    # -- writing ------------------------------------------------------------------------------

    def flush(self) -> None:
        """Write everything queued now, on the caller's thread; returns once it is stored."""
        with self._write_lock:
            while batch := self._take(force=True):
                self._store(batch)

    def close(self) -> None:
        """Stop taking requests, write what is queued, and stop the background thread."""
        with self._lock:
            if self._stopping:
                return
            self._closed = True
            self._stopping = True
        self._wake.set()
        self._thread.join()
        self.flush()

    def __enter__(self) -> PredictionLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self) -> None:
        while True:
            with self._lock:
                if self._stopping:
                    return
                wait = self._max_delay
                if self._queue:
                    wait = self._queue[0].arrived + self._max_delay - time.monotonic()
            if wait > 0 and self._queued < self._max_rows:
                self._wake.wait(wait)
                self._wake.clear()
                continue
            with self._write_lock:
                while batch := self._take(force=False):
                    self._store(batch)

    def _take(self, *, force: bool) -> list[Logged]:
        """Up to ``max_rows`` rows of whole requests, if a batch is due (or ``force``)."""
        with self._lock:
            if not self._queue:
                return []
            due = (
                force
                or self._queued >= self._max_rows
                or time.monotonic() - self._queue[0].arrived >= self._max_delay
            )
            if not due:
                return []
            batch: list[Logged] = []
            rows = 0
            while self._queue and rows < self._max_rows:
                entry = self._queue.popleft()
                batch.append(entry)
                rows += len(entry.inputs)
            self._queued -= rows
            return batch

    def _store(self, batch: Sequence[Logged]) -> None:
        rows = sum(len(e.inputs) for e in batch)
        for attempt, pause in enumerate((*_RETRIES, None)):
            try:
                self._write(batch, rows)
            except Exception as exc:  # a failed write must never kill the writer thread
                self.last_error = f"{type(exc).__name__}: {exc}"
                if pause is None or self._stopping:
                    _log.error("prediction log of %s dropped %d rows: %s", self.name, rows, exc)
                    with self._lock:
                        self._dropped += rows
                    return
                _log.warning("prediction log of %s: attempt %d failed: %s", self.name, attempt, exc)
                time.sleep(pause)
            else:
                with self._lock:
                    self._written += rows
                    self._batches += 1
                return

    def _write(self, batch: Sequence[Logged], rows: int) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = sliced_table(batch, self.deployment_id)
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, compression="zstd")
        times = [e.at for e in batch]
        self._sink.store_batch(
            deployment_id=self.deployment_id,
            name=self.name,
            data=sink.getvalue().to_pybytes(),
            rows=rows,
            first_at=datetime.fromtimestamp(min(times), UTC),
            last_at=datetime.fromtimestamp(max(times), UTC),
        )


def batch_types() -> dict[str, Any]:
    """The Arrow type of each column every batch file has."""
    import pyarrow as pa

    return {
        "request_id": pa.string(),
        "row": pa.int32(),
        "at": pa.timestamp("us", tz="UTC"),
        "deployment_id": pa.string(),
        "version": pa.int32(),
        "latency_ms": pa.float64(),
    }


def sliced_table(batch: Sequence[Logged], deployment_id: str) -> Any:
    """``batch_table`` built ``_SLICE`` requests at a time, handing the GIL over in between.

    Building a batch is Python work on the writer thread; in one piece it keeps the serving
    thread waiting for the GIL up to a switch interval at every hand-over, for the whole
    build. Slices with a ``sleep(0)`` between them let the event loop in every few
    hundred microseconds. Slices that Arrow cannot join (a column of numbers in one, of text
    in another) are built again in one piece, as ``batch_table`` types such a column.
    """
    import pyarrow as pa

    if len(batch) <= _SLICE:
        return batch_table(batch, deployment_id)
    tables = []
    for start in range(0, len(batch), _SLICE):
        tables.append(batch_table(batch[start : start + _SLICE], deployment_id))
        time.sleep(0)  # the serving thread takes the GIL now if it waits for it
    try:
        return pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return batch_table(batch, deployment_id)


def batch_table(batch: Sequence[Logged], deployment_id: str) -> Any:
    """Logged requests as a ``pyarrow.Table``, each input column typed by Arrow inference.

    A column whose values Arrow cannot give one type (numbers and text mixed) is stored
    as JSON text.
    """
    import pyarrow as pa

    fixed = batch_types()
    arrays: dict[str, Any] = {}
    for name, values in columns_of(batch, deployment_id).items():
        if name in fixed:
            arrays[name] = pa.array(values, fixed[name])
            continue
        try:
            arrays[name] = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            arrays[name] = pa.array(
                [None if v is None else json.dumps(v, default=str) for v in values], pa.string()
            )
    return pa.table(arrays)
