"""Metric series: append points in batches, keep each key's latest value, read histories fast."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np
from sqlalchemy import Connection, select

from shipyard.domain.metrics import CHUNK_POINTS, POINT, MetricHistory, pack, unpack
from shipyard.domain.runs import MetricSummary
from shipyard.errors import NotFoundError
from shipyard.services.gc_pause import gc_paused
from shipyard.stores.metadata import SqlMetadataStore
from shipyard.stores.metadata.schema import metric_chunks, metric_latest

__all__ = ["MetricPoint", "MetricStore"]

MetricPoint = tuple[str, int, float, float]  # key, step, timestamp, value
_BATCH = 2000


class MetricStore:
    """Writes and reads metric series of runs."""

    def __init__(self, metadata: SqlMetadataStore) -> None:
        self._metadata = metadata

    def append(self, conn: Connection, run_id: str, points: Sequence[MetricPoint]) -> None:
        """Append points, in the caller's write transaction (the caller holds the run's lock).

        Points of one key keep the order they come in; the latest value is the one with
        the highest step, then the latest timestamp.
        """
        if not points:
            return
        with gc_paused():  # thousands of small rows at once (see gc_pause)
            self._append(conn, run_id, points)

    def _append(self, conn: Connection, run_id: str, points: Sequence[MetricPoint]) -> None:
        by_key: dict[str, list[tuple[int, float, float]]] = defaultdict(list)
        for key, step, timestamp, value in points:
            by_key[key].append((step, timestamp, value))
        keys = sorted(by_key)
        if self._has_metrics(conn, run_id):
            tails = self._tails(conn, run_id, keys)
            latest = self._latest(conn, run_id, keys)
        else:  # a run's first metrics: no chunk to extend, no summary to merge
            tails, latest = {}, {}
        # Every point packed in one array, key after key; a key's points are a slice of it.
        flat: list[tuple[int, float, float]] = []
        spans: list[tuple[str, int, int]] = []
        for key in keys:
            spans.append((key, len(flat), len(by_key[key])))
            flat += by_key[key]
        raw = pack(np.array(flat, dtype=POINT))
        size = POINT.itemsize
        inserts: list[tuple[Any, ...]] = []
        updates: list[tuple[Any, ...]] = []
        summaries: list[dict[str, Any]] = []
        for key, first, n in spans:
            seq, count, data = tails.get(key, (-1, CHUNK_POINTS, b""))
            start = first
            if count < CHUNK_POINTS:
                start += min(CHUNK_POINTS - count, n)
                grown = data + raw[first * size : start * size]
                updates.append((count + start - first, grown, run_id, key, seq))
            for begin in range(start, first + n, CHUNK_POINTS):
                stop = min(begin + CHUNK_POINTS, first + n)
                seq += 1
                inserts.append((run_id, key, seq, stop - begin, raw[begin * size : stop * size]))
            summaries.append(_summary(run_id, key, by_key[key], latest.get(key)))
        sql = self._metadata.driver_sql
        if updates:
            conn.exec_driver_sql(sql(conn, _UPDATE_CHUNK), updates)
        if inserts:
            self._metadata.bulk_insert(conn, metric_chunks, _CHUNK_COLUMNS, inserts)
        existing = [s for s in summaries if s["key"] in latest]
        fresh = [s for s in summaries if s["key"] not in latest]
        if existing:
            rows = [(*(e[c] for c in _SUMMARY_COLUMNS), e["run_id"], e["key"]) for e in existing]
            conn.exec_driver_sql(sql(conn, _UPDATE_LATEST), rows)
        if fresh:
            self._metadata.bulk_insert(
                conn,
                metric_latest,
                _LATEST_COLUMNS,
                [[r[c] for c in _LATEST_COLUMNS] for r in fresh],
            )

    def _has_metrics(self, conn: Connection, run_id: str) -> bool:
        query = self._metadata.driver_sql(conn, _ANY_METRIC)
        found = conn.exec_driver_sql(query, (run_id,)).first()
        return found is not None

    def _tails(
        self, conn: Connection, run_id: str, keys: list[str]
    ) -> dict[str, tuple[int, int, bytes]]:
        """(seq, count, data) of the last chunk of each of these keys that has one."""
        found: dict[str, tuple[int, int, bytes]] = {}
        for start in range(0, len(keys), _BATCH):
            batch = keys[start : start + _BATCH]
            query = self._metadata.driver_sql(conn, _TAILS.format(keys=_marks(len(batch))))
            for key, seq, count, data in conn.exec_driver_sql(query, (run_id, *batch, run_id)):
                found[key] = (int(seq), int(count), bytes(data))
        return found

    def _latest(self, conn: Connection, run_id: str, keys: list[str]) -> dict[str, Any]:
        """The stored summary of each of these keys that has one."""
        found: dict[str, Any] = {}
        for start in range(0, len(keys), _BATCH):
            batch = keys[start : start + _BATCH]
            query = self._metadata.driver_sql(conn, _LATEST.format(keys=_marks(len(batch))))
            for row in conn.exec_driver_sql(query, (run_id, *batch)):
                found[row[0]] = dict(zip(_SUMMARY_COLUMNS, row[1:], strict=True))
        return found

    def history(self, run_id: str, key: str) -> MetricHistory:
        """Every point of one metric, in logging order.

        Raises:
            NotFoundError: if the run has no such metric.
        """
        query = (
            select(metric_chunks.c.data)
            .where(metric_chunks.c.run_id == run_id, metric_chunks.c.key == key)
            .order_by(metric_chunks.c.seq)
        )
        with self._metadata.read() as conn:
            parts = [unpack(bytes(row.data)) for row in conn.execute(query)]
        if not parts:
            raise NotFoundError(f"run {run_id} has no metric {key!r}")
        points = np.concatenate(parts) if len(parts) > 1 else parts[0]
        return MetricHistory(
            key,
            np.ascontiguousarray(points["step"]),
            np.ascontiguousarray(points["timestamp"]),
            np.ascontiguousarray(points["value"]),
        )

    def keys(self, run_id: str) -> list[str]:
        """The metric keys a run logged."""
        query = select(metric_latest.c.key).where(metric_latest.c.run_id == run_id)
        with self._metadata.read() as conn:
            return sorted(conn.execute(query).scalars())


# Plain driver SQL (``?`` marks, made the driver's by ``driver_sql``): appending a batch runs
# these every time, where building them in SQLAlchemy cost more than running them.
_ANY_METRIC = "SELECT 1 FROM metric_latest WHERE run_id = ? LIMIT 1"
_TAILS = (
    'SELECT c."key", c.seq, c."count", c.data FROM metric_chunks c JOIN ('
    'SELECT "key", max(seq) AS seq FROM metric_chunks WHERE run_id = ? AND "key" IN ({keys}) '
    'GROUP BY "key") t ON c."key" = t."key" AND c.seq = t.seq WHERE c.run_id = ?'
)
_LATEST = (
    'SELECT "key", value, is_nan, step, "timestamp", min_value, max_value, "count" '
    'FROM metric_latest WHERE run_id = ? AND "key" IN ({keys})'
)
_UPDATE_CHUNK = (
    'UPDATE metric_chunks SET "count" = ?, data = ? WHERE run_id = ? AND "key" = ? AND seq = ?'
)
_UPDATE_LATEST = (
    'UPDATE metric_latest SET value = ?, is_nan = ?, step = ?, "timestamp" = ?, min_value = ?, '
    'max_value = ?, "count" = ? WHERE run_id = ? AND "key" = ?'
)
_CHUNK_COLUMNS = ("run_id", "key", "seq", "count", "data")
_LATEST_COLUMNS = (
    "run_id",
    "key",
    "value",
    "is_nan",
    "step",
    "timestamp",
    "min_value",
    "max_value",
    "count",
)
_SUMMARY_COLUMNS = ("value", "is_nan", "step", "timestamp", "min_value", "max_value", "count")


def _marks(n: int) -> str:
    return ", ".join("?" * n)


def _summary(
    run_id: str, key: str, points: list[tuple[int, float, float]], before: Any
) -> dict[str, Any]:
    if before is None and len(points) == 1:  # a new key's first point (a batch of many keys)
        step, timestamp, value = points[0]
        nan = math.isnan(value)
        bound = None if nan else value
        return {
            "run_id": run_id,
            "key": key,
            "value": bound,
            "is_nan": nan,
            "step": step,
            "timestamp": timestamp,
            "min_value": bound,
            "max_value": bound,
            "count": 1,
        }
    step, timestamp, value = max(points, key=lambda p: (p[0], p[1]))
    if before is not None and (before["step"], before["timestamp"]) > (step, timestamp):
        step, timestamp = before["step"], before["timestamp"]
        value = math.nan if before["is_nan"] else before["value"]
    finite = [p[2] for p in points if not math.isnan(p[2])]
    low = min(finite) if finite else None
    high = max(finite) if finite else None
    if before is not None:
        low = _pick(min, low, before["min_value"])
        high = _pick(max, high, before["max_value"])
    count = len(points) + (before["count"] if before is not None else 0)
    is_nan = math.isnan(value)
    return {
        "run_id": run_id,
        "key": key,
        # SQL has no NaN; +/-inf are stored as they are (both SQLite and PostgreSQL keep them).
        "value": None if is_nan else value,
        "is_nan": is_nan,
        "step": step,
        "timestamp": timestamp,
        "min_value": low,
        "max_value": high,
        "count": count,
    }


def _pick(choose: Any, a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return float(choose(a, b))


def _to_summary(row: Any) -> MetricSummary:
    value = math.nan if row.is_nan else float(row.value)
    return MetricSummary(
        row.key,
        value,
        int(row.step),
        float(row.timestamp),
        row.min_value,
        row.max_value,
        int(row.count),
    )
