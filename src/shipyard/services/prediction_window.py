"""A window of the prediction log as a DuckDB view, queried without loading it into memory.

The batch files of the window (verified local copies) are read by DuckDB, columns matched by
name, with the feedback labels joined by request id. Reading it whole (``to_arrow``) is for
windows that fit in memory; ``export`` streams the rows into one Parquet file and
``operations`` aggregates them, both within DuckDB's memory limit (spilling to a scratch
folder), so a window of tens of millions of rows costs bounded memory.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from shipyard.domain.predictions import BASE_COLUMNS, LABEL
from shipyard.errors import BackendError
from shipyard.services.sql_quoting import sql_name, sql_text

__all__ = ["LogWindow"]

_MEMORY_LIMIT = "256MB"  # DuckDB spills to the scratch folder beyond this
_EXACT_QUANTILES_UP_TO = 1_000_000  # requests; above, t-digest quantiles in bounded memory
_QUANTILES = (("latency_p50_ms", 0.5), ("latency_p95_ms", 0.95), ("latency_p99_ms", 0.99))


class LogWindow:
    """The rows of batch ``files`` within ``[since, until)``, labels joined, as ``predictions``.

    Use it as a context manager; it holds a DuckDB connection.

    Args:
        files: verified local copies of the batch files.
        labels: a ``pyarrow.Table`` of ``request_id`` and ``label``.
        since: only rows at or after this time (UTC).
        until: only rows before this time (UTC).
        scratch: where DuckDB may spill.
    """

    def __init__(
        self,
        files: Sequence[Path],
        labels: Any,
        since: datetime | None,
        until: datetime | None,
        scratch: Path,
    ) -> None:
        import duckdb

        scratch.mkdir(parents=True, exist_ok=True)
        self._con = duckdb.connect(
            config={
                "memory_limit": _MEMORY_LIMIT,
                "temp_directory": str(scratch),
                "preserve_insertion_order": False,
            }
        )
        try:
            self._con.execute("SET TimeZone = 'UTC'")
            self._con.register("labels", labels)
            if files:
                where = []
                if since is not None:
                    where.append(f'p."at" >= TIMESTAMPTZ {sql_text(since.isoformat())}')
                if until is not None:
                    where.append(f'p."at" < TIMESTAMPTZ {sql_text(until.isoformat())}')
                listed = ", ".join(sql_text(str(f)) for f in files)
                self._con.execute(
                    "CREATE VIEW predictions AS SELECT p.*, l.label FROM "
                    f"read_parquet([{listed}], union_by_name = true) AS p "
                    "LEFT JOIN labels AS l ON l.request_id = p.request_id"
                    + (" WHERE " + " AND ".join(where) if where else "")
                )
            else:
                self._con.register("predictions", _empty(labels))
        except duckdb.Error as exc:
            self._con.close()
            raise _backend(exc) from None

    def __enter__(self) -> LogWindow:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the DuckDB connection."""
        self._con.close()

    def columns(self) -> list[str]:
        """The window's column names: the log's own, the inputs, predictions, ``label``."""
        return [d[0] for d in self._run("SELECT * FROM predictions LIMIT 0").description]

    def to_arrow(self) -> Any:
        """Every row as a ``pyarrow.Table``, oldest first (the window must fit in memory)."""
        query = 'SELECT * FROM predictions ORDER BY "at", "request_id", "row"'
        import duckdb

        try:
            return self._con.sql(query).to_arrow_table()
        except duckdb.Error as exc:
            raise _backend(exc) from None

    def export(self, dest: Path, columns: Mapping[str, str], *, version: int | None = None) -> int:
        """Stream the rows (of one model version) into a Parquet file; returns the row count.

        Args:
            dest: the file to write.
            columns: the window's columns to keep, each mapped to its name in the file.
            version: only rows this model version answered.
        """
        if not columns:
            raise ValueError("export needs at least one column")
        select = ", ".join(f"{sql_name(src)} AS {sql_name(dst)}" for src, dst in columns.items())
        query = f"SELECT {select} FROM predictions" + _version_filter(version, "WHERE")
        self._run(f"COPY ({query}) TO {sql_text(str(dest))} (FORMAT parquet, COMPRESSION zstd)")
        count = self._run(f"SELECT count(*) FROM read_parquet({sql_text(str(dest))})").fetchone()
        return int(count[0]) if count else 0

    def operations(self, *, version: int | None, seconds: float | None) -> dict[str, float]:
        """Latency percentiles, requests and throughput, aggregated in bounded memory.

        A request's latency counts once (its first row), so a batch request weighs as one.
        Above a million requests the percentiles are t-digest estimates.

        Args:
            version: only rows this model version answered.
            seconds: the window's length; None: the span between the first and last row.

        Returns:
            ``latency_p50_ms``, ``latency_p95_ms``, ``latency_p99_ms``, ``requests``,
            ``throughput_rps`` (rows per second); empty for an empty window.
        """
        names = set(self.columns())
        if not {"row", "at", "latency_ms"} <= names:
            return {}
        only = _version_filter(version, "AND")
        found = self._run(
            'SELECT count(*), count(*) FILTER (WHERE "row" = 0), '
            'epoch(max("at")) - epoch(min("at")) '
            f"FROM predictions WHERE TRUE{only}"
        ).fetchone()
        rows, requests, span = found if found else (0, 0, None)
        if not rows:
            return {}
        out: dict[str, float] = {"requests": float(requests)}
        quantile = "quantile_cont" if requests <= _EXACT_QUANTILES_UP_TO else "approx_quantile"
        picks = ", ".join(f'{quantile}("latency_ms", {q})' for _, q in _QUANTILES)
        values = self._run(
            f'SELECT {picks} FROM predictions WHERE "row" = 0 AND isfinite("latency_ms"){only}'
        ).fetchone()
        for (key, _), value in zip(_QUANTILES, values or (), strict=False):
            if value is not None:
                out[key] = float(value)
        if seconds is None and span is not None:
            seconds = float(span)
        if seconds:
            out["throughput_rps"] = rows / seconds
        return out

    def deployment(self, *, version: int | None) -> str | None:
        """The deployment that logged the newest row (of this version), if any."""
        if "deployment_id" not in self.columns():
            return None
        found = self._run(
            'SELECT "deployment_id" FROM predictions WHERE "deployment_id" IS NOT NULL'
            f'{_version_filter(version, "AND")} ORDER BY "at" DESC LIMIT 1'
        ).fetchone()
        return None if not found else str(found[0])

    def _run(self, sql: str) -> Any:
        import duckdb

        try:
            return self._con.execute(sql)
        except duckdb.Error as exc:  # a cached copy changed under us, or a DuckDB limit
            raise _backend(exc) from None


def _version_filter(version: int | None, keyword: str) -> str:
    if version is None:
        return ""
    return f' {keyword} "version" = {int(version)}'


def _backend(exc: Exception) -> BackendError:
    message = " ".join(str(exc).split())
    return BackendError(f"cannot read the prediction log: {message}")


def _empty(labels: Any) -> Any:
    import pyarrow as pa

    empty = {
        "request_id": pa.string(),
        "row": pa.int32(),
        "at": pa.timestamp("us", tz="UTC"),
        "deployment_id": pa.string(),
        "version": pa.int32(),
        "latency_ms": pa.float64(),
        "prediction": pa.null(),
        LABEL: labels.schema.field(LABEL).type,
    }
    assert tuple(empty)[: len(BASE_COLUMNS)] == BASE_COLUMNS
    return pa.schema(empty).empty_table()
