"""The prediction log's writer: record on the serving path, write Parquet in the background.

``record`` appends to an in-memory queue (no I/O, no lock held for long). Every
``_CHUNK_ROWS`` rows of small requests it turns the waiting requests into one Arrow table,
on the caller's thread: a fraction of a millisecond, amortised to a few microseconds a
request. Done there, between two requests of the event loop, the conversion never makes a
serving thread wait for the GIL; done on the writer thread (as before), a batch of 5,000
requests kept the event loop waiting in turns for tens of milliseconds, and the p99 latency
at concurrency 16 rose from 1.7 to 4.5-6 ms. A request of many rows is converted by the
writer thread instead.

A background thread takes a batch when ``max_rows`` rows wait or the oldest has waited
``max_delay`` seconds, joins its tables into one zstd Parquet file and hands it to a
``BatchSink``. ``StoredBatches`` stores the file content-addressed, then inserts its
``prediction_batches`` row in one transaction: a batch is visible only once both are
committed, so a crash loses at most the queue and never leaves a row pointing at a missing
file (an orphan blob, at worst, is collected by gc). A server behind a remote serving process
does the same with the file it was sent (the client's sink uploads, then records).

When the queue is full (``max_queued_rows``) new requests are dropped and counted: the
log never slows down serving.
"""

from __future__ import annotations

import bisect
import collections
import contextlib
import itertools
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple, Protocol

from shipyard.domain.ids import as_utc, new_id, utcnow
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
    "dictionary_columns",
    "joined_table",
]

_log = logging.getLogger(__name__)
_RETRIES = (0.2, 1.0, 5.0)  # seconds between attempts to store a batch before dropping it
_JSON_TEXT_KEY = b"shipyard.json_text"
_JSON_TEXT = {_JSON_TEXT_KEY: b"1"}  # field metadata: this column's values are JSON text
_DISTINCT = ("request_id", "row", "at")  # batch columns whose values rarely repeat
_WRITER_NICE = 10  # the writer thread's nice value (see _lower_priority)
_CHUNK_ROWS = 128  # rows of small requests record() turns into one table at a time
_INLINE_ROWS = 1024  # more rows than this waiting: the writer thread converts them


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
        self._chunk_rows = min(_CHUNK_ROWS, max_rows)
        self._pending: list[Logged] = []  # the newest requests, not yet a table
        self._pending_rows = 0
        self._chunks: collections.deque[_Chunk] = collections.deque()  # older ones, in order
        self._lock = threading.Lock()  # guards the pending requests, chunks and counters
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
        """Queue one request's rows for logging; never waits for I/O.

        Amortised O(1): every ``_CHUNK_ROWS`` rows of small requests, this call turns the
        waiting ones into one Arrow table (a fraction of a millisecond; see the module
        docstring). The lists are kept as they are until then: do not change them.

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
            self._pending.append(
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
            self._pending_rows += rows
            self._queued += rows
            if self._pending_rows >= self._chunk_rows:
                self._seal(convert=self._pending_rows <= _INLINE_ROWS)
            full = self._queued >= self._max_rows
        if full and not self._wake.is_set():  # one wake-up, not one per request
            self._wake.set()

    def _seal(self, *, convert: bool) -> None:
        """Move the pending requests into a chunk, as one table if ``convert`` (lock held).

        A conversion that fails leaves the requests for the writer thread, which tries
        again (and counts the batch as dropped, with ``last_error``, if it fails there too).
        """
        entries, self._pending, self._pending_rows = self._pending, [], 0
        table = None
        if convert:
            try:
                table = batch_table(entries, self.deployment_id)
            except Exception:  # the writer tries again and records the error
                table = None
        ends = list(itertools.accumulate(len(e.inputs) for e in entries))
        self._chunks.append(
            _Chunk(table, None if table is not None else entries, ends, entries[0].arrived)
        )

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
        _lower_priority()
        while True:
            with self._lock:
                if self._stopping:
                    return
                wait = self._max_delay
                oldest = self._oldest()
                if oldest is not None:
                    wait = oldest + self._max_delay - time.monotonic()
            if wait > 0 and self._queued < self._max_rows:
                self._wake.wait(wait)
                self._wake.clear()
                continue
            with self._write_lock:
                while batch := self._take(force=False):
                    self._store(batch)

    def _oldest(self) -> float | None:
        """When the oldest waiting request was queued (lock held)."""
        if self._chunks:
            return self._chunks[0].arrived
        return self._pending[0].arrived if self._pending else None

    def _take(self, *, force: bool) -> list[_Chunk]:
        """Up to ``max_rows`` rows of whole requests, if a batch is due (or ``force``)."""
        with self._lock:
            oldest = self._oldest()
            if oldest is None:
                return []
            due = (
                force
                or self._queued >= self._max_rows
                or time.monotonic() - oldest >= self._max_delay
            )
            if not due:
                return []
            if self._pending and self._queued - self._pending_rows < self._max_rows:
                self._seal(convert=False)  # the writer converts the few left (off the loop)
            batch: list[_Chunk] = []
            rows = 0
            while self._chunks and rows < self._max_rows:
                chunk = self._chunks.popleft()
                room = self._max_rows - rows
                if chunk.ends[-1] > room:  # whole requests only, up to max_rows
                    cut = bisect.bisect_right(chunk.ends, room)
                    if cut == 0 and batch:  # not even its first request fits: next batch
                        self._chunks.appendleft(chunk)
                        break
                    cut = max(cut, 1)  # a request larger than max_rows goes alone
                    if cut < len(chunk.ends):
                        chunk, tail = chunk.split(cut)
                        self._chunks.appendleft(tail)
                    batch.append(chunk)
                    rows += chunk.ends[-1]
                    break
                batch.append(chunk)
                rows += chunk.ends[-1]
            self._queued -= rows
            return batch

    def _store(self, batch: Sequence[_Chunk]) -> None:
        rows = sum(c.ends[-1] for c in batch)
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

    def _write(self, batch: Sequence[_Chunk], rows: int) -> None:
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        tables = [
            c.table if c.table is not None else batch_table(c.entries or [], self.deployment_id)
            for c in batch
        ]
        table = joined_table(tables)
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, compression="zstd", use_dictionary=dictionary_columns(table))
        times = pc.min_max(table["at"]).as_py()
        self._sink.store_batch(
            deployment_id=self.deployment_id,
            name=self.name,
            data=sink.getvalue().to_pybytes(),
            rows=rows,
            first_at=as_utc(times["min"]),
            last_at=as_utc(times["max"]),
        )


def _lower_priority() -> None:
    """Make the calling thread (the writer) yield the CPU to serving when both want it.

    Encoding Parquet releases the GIL, so the operating system shares the core between it
    and the event loop: at equal priority, in slices of milliseconds. At nice 10 the writer
    gets about a tenth of a busy core: several times what a saturated server's log needs
    (~1 µs a row), so it never falls behind for want of CPU. Linux only (there a thread has
    its own nice value); a refusal changes nothing.
    """
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), _WRITER_NICE)


class _Chunk(NamedTuple):
    """Queued requests, in order: as one Arrow table, or (not converted yet) as entries."""

    table: Any | None
    entries: list[Logged] | None
    ends: list[int]  # the row count after each request (whole requests stay together)
    arrived: float  # time.monotonic() when its first request was queued

    def split(self, count: int) -> tuple[_Chunk, _Chunk]:
        """The first ``count`` requests, and the rest."""
        rows = self.ends[count - 1]
        tail_ends = [end - rows for end in self.ends[count:]]
        if self.table is not None:
            head_table, tail_table = self.table.slice(0, rows), self.table.slice(rows)
            return (
                _Chunk(head_table, None, self.ends[:count], self.arrived),
                _Chunk(tail_table, None, tail_ends, self.arrived),
            )
        entries = self.entries or []
        return (
            _Chunk(None, entries[:count], self.ends[:count], self.arrived),
            _Chunk(None, entries[count:], tail_ends, entries[count].arrived),
        )


def joined_table(tables: Sequence[Any]) -> Any:
    """Tables of one batch as one, each column typed as if the batch were built whole.

    A column null in one table and typed in another takes the type; integers and floats
    become floats. A column holding numbers in one table and text in another, or stored as
    JSON text in any (``batch_table`` does that to a column it cannot type), becomes JSON
    text in all, as ``batch_table`` would have stored it for the whole batch.
    """
    import pyarrow as pa

    marked = {
        field.name
        for table in tables
        for field in table.schema
        if field.metadata and _JSON_TEXT_KEY in field.metadata
    }
    if not marked:  # the common case (a model server's requests): Arrow alone, no Python
        joined = _concatenated(tables)
        if joined is not None:
            return joined
    kinds: dict[str, set[str]] = {}
    for table in tables:
        for field in table.schema:
            if field.name not in marked and not pa.types.is_null(field.type):
                kinds.setdefault(field.name, set()).add(_kind(field.type))
    encode = marked | {name for name, found in kinds.items() if len(found) > 1}
    plain = []
    for table in tables:
        columns, fields = [], []
        for field, column in zip(table.schema, table.columns, strict=True):
            if field.name in encode and not (field.metadata and _JSON_TEXT_KEY in field.metadata):
                column = _json_text(column.to_pylist())
            columns.append(column)
            fields.append(pa.field(field.name, column.type))  # without the JSON mark
        plain.append(pa.Table.from_arrays(columns, schema=pa.schema(fields)))
    if len(plain) == 1:
        return plain[0]
    return pa.concat_tables(plain, promote_options="permissive")


def _concatenated(tables: Sequence[Any]) -> Any | None:
    """The tables as one, by Arrow's permissive promotion, or None.

    None where Arrow cannot join a column (numbers in one table and text in another, say).
    """
    import pyarrow as pa

    if len(tables) == 1:
        return tables[0]
    try:
        return pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return None


def _kind(arrow_type: Any) -> str:
    """What a column's values are, as far as joining tables goes: numbers join as floats."""
    import pyarrow as pa

    if pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type):
        return "number"
    return str(arrow_type)  # bool, text, lists, ...: Arrow joins none of them with another


def dictionary_columns(table: Any) -> list[str]:
    """The columns worth Parquet's dictionary encoding: all but floats and per-row values.

    Trying a dictionary on a column of distinct values (request ids, times, measured
    features) is wasted work: half the time of writing a batch, for a larger file.
    """
    import pyarrow as pa

    return [
        field.name
        for field in table.schema
        if field.name not in _DISTINCT and not pa.types.is_floating(field.type)
    ]


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


def batch_table(batch: Sequence[Logged], deployment_id: str) -> Any:
    """Logged requests as a ``pyarrow.Table``, each input column typed by Arrow inference.

    A column whose values Arrow cannot give one type (numbers and text mixed) is stored
    as JSON text, its field marked so (``_JSON_TEXT`` metadata) for ``joined_table``.
    """
    import pyarrow as pa

    fixed = batch_types()
    fields: list[Any] = []
    arrays: list[Any] = []
    for name, values in columns_of(batch, deployment_id).items():
        marks = None
        if name in fixed:
            array = pa.array(values, fixed[name])
        else:
            try:
                array = pa.array(values)
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                array, marks = _json_text(values), _JSON_TEXT
        fields.append(pa.field(name, array.type, metadata=marks))
        arrays.append(array)
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def _json_text(values: Sequence[Any]) -> Any:
    import pyarrow as pa

    return pa.array(
        [None if v is None else json.dumps(v, default=str) for v in values], pa.string()
    )
