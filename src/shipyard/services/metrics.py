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
        by_key: dict[str, list[tuple[int, float, float]]] = defaultdict(list)
        for key, step, timestamp, value in points:
            by_key[key].append((step, timestamp, value))
        keys = sorted(by_key)
        tails = self._tails(conn, run_id, keys)
        latest = self._latest(conn, run_id, keys)
        inserts: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        summaries: list[dict[str, Any]] = []
        for key in keys:
            new = np.array(by_key[key], dtype=POINT)
            seq, count, data = tails.get(key, (-1, CHUNK_POINTS, b""))
            if count < CHUNK_POINTS:
                room = CHUNK_POINTS - count
                merged = data + pack(new[:room])
                updates.append(
                    {
                        "r": run_id,
                        "k": key,
                        "s": seq,
                        "count": count + len(new[:room]),
                        "data": merged,
                    }
                )
                new = new[room:]
            for start in range(0, len(new), CHUNK_POINTS):
                part = new[start : start + CHUNK_POINTS]
                seq += 1
                inserts.append(
                    {
                        "run_id": run_id,
                        "key": key,
                        "seq": seq,
                        "count": len(part),
                        "data": pack(part),
                    }
                )
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
            self._metadata.bulk_insert(
                conn,
                metric_chunks,
                _CHUNK_COLUMNS,
                [[r[c] for c in _CHUNK_COLUMNS] for r in inserts],
            )
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
