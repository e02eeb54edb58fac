"""Metric series: append points in batches, keep each key's latest value, read histories fast."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np
from sqlalchemy import Connection, and_, bindparam, func, select

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
        updates: list[dict[str, Any]] = []
        summaries: list[dict[str, Any]] = []
        for key, first, n in spans:
            seq, count, data = tails.get(key, (-1, CHUNK_POINTS, b""))
            start = first
            if count < CHUNK_POINTS:
                start += min(CHUNK_POINTS - count, n)
                updates.append(
                    {
                        "r": run_id,
                        "k": key,
                        "s": seq,
                        "count": count + start - first,
                        "data": data + raw[first * size : start * size],
                    }
                )
            for begin in range(start, first + n, CHUNK_POINTS):
                stop = min(begin + CHUNK_POINTS, first + n)
                seq += 1
                inserts.append((run_id, key, seq, stop - begin, raw[begin * size : stop * size]))
            summaries.append(_summary(run_id, key, by_key[key], latest.get(key)))
        if updates:
            conn.execute(
                metric_chunks.update()
                .where(
                    metric_chunks.c.run_id == _bind("r"),
                    metric_chunks.c.key == _bind("k"),
                    metric_chunks.c.seq == _bind("s"),
                )
                .values(count=_bind("count"), data=_bind("data")),
                updates,
            )
        if inserts:
            self._metadata.bulk_insert(conn, metric_chunks, _CHUNK_COLUMNS, inserts)
        existing = [s for s in summaries if s["key"] in latest]
        fresh = [s for s in summaries if s["key"] not in latest]
        if existing:
            conn.execute(
                metric_latest.update()
                .where(metric_latest.c.run_id == _bind("r"), metric_latest.c.key == _bind("k"))
                .values({c: _bind(c) for c in _SUMMARY_COLUMNS}),
                [{**s, "r": s["run_id"], "k": s["key"]} for s in existing],
            )
        if fresh:
            self._metadata.bulk_insert(
                conn,
                metric_latest,
                _LATEST_COLUMNS,
                [[r[c] for c in _LATEST_COLUMNS] for r in fresh],
            )

    def _has_metrics(self, conn: Connection, run_id: str) -> bool:
        mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
        found = conn.exec_driver_sql(_ANY_METRIC.format(mark=mark), (run_id,)).first()
        return found is not None

    def _tails(
        self, conn: Connection, run_id: str, keys: list[str]
    ) -> dict[str, tuple[int, int, bytes]]:
        found: dict[str, tuple[int, int, bytes]] = {}
        c = metric_chunks.c
        for start in range(0, len(keys), _BATCH):
            batch = keys[start : start + _BATCH]
            last = (
                select(c.key, func.max(c.seq).label("seq"))
                .where(c.run_id == run_id, c.key.in_(batch))
                .group_by(c.key)
                .subquery()
            )
            rows = conn.execute(
                select(c.key, c.seq, c.count, c.data)
                .join(last, and_(c.key == last.c.key, c.seq == last.c.seq))
                .where(c.run_id == run_id)
            )
            for row in rows:
                m = row._mapping
                found[m["key"]] = (int(m["seq"]), int(m["count"]), bytes(m["data"]))
        return found

    def _latest(self, conn: Connection, run_id: str, keys: list[str]) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for start in range(0, len(keys), _BATCH):
            batch = keys[start : start + _BATCH]
            query = select(metric_latest).where(
                metric_latest.c.run_id == run_id, metric_latest.c.key.in_(batch)
            )
            for row in conn.execute(query):
                found[row.key] = row._mapping
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


_ANY_METRIC = "SELECT 1 FROM metric_latest WHERE run_id = {mark} LIMIT 1"
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


def _bind(name: str) -> Any:
    return bindparam(name)


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
