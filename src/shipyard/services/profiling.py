"""Describe a table: its schema and per-column statistics, computed by streaming SQL.

A table is one file or several files of one format (Parquet, CSV, JSON Lines, Arrow IPC); a
folder stands for the files directly inside it. DuckDB reads them in a dedicated in-memory
connection with bounded memory that spills to a temporary folder, so a table larger than
memory can be profiled. Every statistic is an SQL aggregate:

1. counts, nulls, NaN/inf, min, max, mean, standard deviation (and estimated distinct counts
   when the table may be above ``exact_distinct_limit`` rows);
2. histograms (they need min and max), quantiles and exact distinct counts;
3. the 20 most frequent values of every categorical and boolean column.

Columnar files (Parquet, Arrow) get one small query per column where that parallelises
better; row files (CSV, JSON Lines) are parsed once per pass, however many columns they have.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from shipyard.domain.profiles import (
    QUANTILES,
    ColumnProfile,
    ColumnSchema,
    Histogram,
    Kind,
    Scalar,
    TableProfile,
)
from shipyard.services.parquet_footers import read_footers, sample_row_groups
from shipyard.services.tables import FORMATS, open_table, table_files

__all__ = ["FORMATS", "HISTOGRAM_BINS", "TOP_VALUES", "profile_table", "read_schema"]

HISTOGRAM_BINS = 20
# Above exact_distinct_limit rows, shapes come from this many: estimates from 250,000 rows
# are as close as a report shows them, and cost a quarter of the work of 1,000,000.
SAMPLE_ROWS = 250_000
TOP_VALUES = 20

_SAMPLE = "_shipyard_sample"
_MAX_VALUE_CHARS = 200  # a longer top value is cut: profiles stay small records
_COLUMNAR = frozenset({"arrow", "parquet"})  # a scan reads only the columns it names
_SIGNED = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT")
_INTEGERS = frozenset(_SIGNED) | {f"U{name}" for name in _SIGNED}
_FLOATS = frozenset({"FLOAT", "DOUBLE"})
_TEMPORAL = frozenset({"DATE", "TIME", "TIME_NS", "TIMESTAMP WITH TIME ZONE"}) | {
    f"TIMESTAMP{unit}" for unit in ("", "_S", "_MS", "_NS")
}


@dataclass(frozen=True, slots=True)
class _Column:
    """A column as DuckDB sees it, with the SQL that reads it."""

    index: int
    name: str  # as the file spells it
    sql_name: str  # as DuckDB does: "a" beside "A" becomes "a_1"
    sql_type: str
    kind: Kind

    @property
    def ident(self) -> str:
        return '"' + self.sql_name.replace('"', '""') + '"'

    @property
    def is_float(self) -> bool:
        return self.sql_type in _FLOATS

    @property
    def value(self) -> str:
        """What distinct counts run on: any type hashes, and nulls stay null."""
        if self.kind == "other":
            return f"CASE WHEN {self.ident} IS NOT NULL THEN hash({self.ident}) END"
        return self.ident

    @property
    def finite(self) -> str:
        """The filter that keeps NaN and infinities out of min, max, mean and std."""
        return f" FILTER (WHERE isfinite({self.ident}))" if self.is_float else ""


def read_schema(paths: Sequence[Path], fmt: str) -> tuple[ColumnSchema, ...]:
    """The schema of a table, read without scanning its rows (CSV and JSON Lines: a sample).

    Args:
        paths: the files of the table; a folder stands for the files directly inside it.
        fmt: ``parquet``, ``csv``, ``jsonl`` or ``arrow`` (Arrow IPC file, Feather v2).

    Returns:
        One entry per column, with its Arrow type.

    Raises:
        NotFoundError: if a path does not exist.
        InvalidArgumentError: if the format is unknown, a file is empty or unreadable.
    """
    files = table_files(paths, fmt)
    with open_table(files, fmt) as (con, source):
        return _describe(con, source, files, fmt)[0]


def profile_table(
    paths: Sequence[Path], fmt: str, *, exact_distinct_limit: int = 1_000_000
) -> TableProfile:
    """Profile a table: its schema and the statistics of every column.

    NaN and infinities are counted (``nan_count``, ``inf_count``) and left out of min, max,
    mean, std, quantiles and histograms.

    Args:
        paths: the files of the table; a folder stands for the files directly inside it.
        fmt: ``parquet``, ``csv``, ``jsonl`` or ``arrow`` (Arrow IPC file, Feather v2).
        exact_distinct_limit: up to this many rows every statistic is exact; above it,
            distinct counts are estimated and quantiles, histograms and top values come
            from a sample of about ``SAMPLE_ROWS`` rows scaled to the table
            (``distinct_approx`` is True, ``sample_rows`` says how many). For Parquet the
            sample is whole row groups picked evenly across the files, and rows, nulls and
            numeric ranges come exact from the footers, so nothing else is read; mean, std
            and NaN/inf counts are then sample estimates. Other formats are scanned: counts,
            nulls, range, mean and std stay exact.

    Returns:
        The profile.

    Raises:
        NotFoundError: if a path does not exist.
        InvalidArgumentError: if the format is unknown, a file is empty or malformed.
        BackendError: if DuckDB fails for another reason (such as running out of memory).

    Example:
        >>> profile = profile_table([Path("customers.parquet")], "parquet")  # doctest: +SKIP
        >>> profile.column("age").quantiles["p50"]  # doctest: +SKIP
        41.0
    """
    files = table_files(paths, fmt)
    union = fmt in _COLUMNAR
    with open_table(files, fmt) as (con, source):
        schema, columns = _describe(con, source, files, fmt)
        # Columnar files know their row count from metadata; row files learn it in the first
        # pass, so that pass estimates distinct counts in case the table is above the limit.
        known = _fetch_one(con, f"SELECT count(*) AS n FROM {source}")["n"] if union else None
        sampled = None
        if fmt == "parquet" and known is not None and known > exact_distinct_limit:
            sampled = _sampled_parquet(con, files, columns, int(known))
        sample_rows: int | None
        if sampled is not None:
            stats, top, sample_rows = sampled
            exact = False
        else:
            stats, top, sample_rows = _scanned(con, source, columns, known, exact_distinct_limit)
            exact = sample_rows is None
    return TableProfile(
        rows=stats["rows"],
        columns=tuple(_column_profile(c, schema[c.index].type, stats, top, exact) for c in columns),
        schema=schema,
        sample_rows=sample_rows,
    )


def _scanned(
    con: duckdb.DuckDBPyConnection,
    source: str,
    columns: list[_Column],
    known: int | None,
    limit: int,
) -> tuple[dict[str, Any], dict[int, tuple[tuple[str, int], ...]], int | None]:
    """Statistics from scanning every row; the sample size when shapes were sampled."""
    union = known is not None
    stats = _first_pass(con, source, columns, estimate=known is None or known > limit)
    if stats["rows"] <= limit:
        stats.update(_second_pass(con, source, columns, stats, True, union))
        return stats, _top_values(con, source, columns, union), None
    # Counts, nulls, range, mean and std above are exact; quantiles, histograms and top
    # values come from a uniform sample, scaled to the table (distinct_approx).
    sample = _sample(con, source, stats["rows"])
    stats.update(_second_pass(con, sample, columns, stats, False, False))
    top = _top_values(con, sample, columns, False)
    sample_rows = _count(con, sample)
    _scale(stats, top, columns, stats["rows"] / max(sample_rows, 1))
    return stats, top, sample_rows


def _sampled_parquet(
    con: duckdb.DuckDBPyConnection, files: list[Path], columns: list[_Column], rows: int
) -> tuple[dict[str, Any], dict[int, tuple[tuple[str, int], ...]], int] | None:
    """Statistics of a big Parquet table from its footers and a row-group sample.

    Rows, nulls and numeric ranges are exact (footers); the rest is estimated from whole row
    groups picked evenly across the files and scaled to the table. None when the footers or
    the row-group layout do not allow it (the caller scans instead).
    """
    footers = read_footers(files, [c.name for c in columns])
    if footers.rows != rows:
        return None
    table = sample_row_groups(files, footers.groups, SAMPLE_ROWS)
    if table is None:
        return None
    table = table.rename_columns([c.sql_name for c in columns])
    con.register(_SAMPLE, table)
    stats = _first_pass(con, _SAMPLE, columns, estimate=True)
    n = int(stats["rows"])
    factor = rows / max(n, 1)
    for c in columns:
        i = c.index
        sample_nn = int(stats[f"c{i}_nn"])
        nulls = footers.nulls.get(c.name)
        table_nn = rows - nulls if nulls is not None else round(sample_nn * factor)
        stats[f"c{i}_approx"] = _estimate_distinct(con, c, stats, sample_nn, table_nn)
        stats[f"c{i}_nn"] = table_nn
        for key in (f"c{i}_nan", f"c{i}_inf"):
            if key in stats:
                stats[key] = min(round(int(stats[key]) * factor), table_nn)
        if c.kind == "numeric" and c.name in footers.bounds:
            stats[f"c{i}_min"], stats[f"c{i}_max"] = footers.bounds[c.name]
    stats["rows"] = rows
    stats.update(_second_pass(con, _SAMPLE, columns, stats, False, False))
    top = _top_values(con, _SAMPLE, columns, False)
    _scale(stats, top, columns, factor)
    return stats, top, n


def _estimate_distinct(
    con: duckdb.DuckDBPyConnection, c: _Column, stats: dict[str, Any], n: int, total: int
) -> int:
    """Distinct values of the table from a sample: d + f1 * (f1 / n) * (N - n) / n.

    d is the sample's distinct count and f1 how many values it holds once. A column whose
    values repeat within the sample (f1 small) is saturated, d stands; a column of unique
    values (f1 = n) scales to N; in between, the singletons stand for unseen values in
    proportion to how common they are. Only columns with many distinct values pay for f1.
    """
    d = int(stats.get(f"c{c.index}_approx") or 0)
    if n <= 0 or total <= n or d <= n // 2:
        return min(d, total)
    f1 = int(
        _fetch_one(
            con,
            f"SELECT count(*) AS f1 FROM (SELECT {c.value} AS v FROM {_SAMPLE}"
            f" WHERE {c.ident} IS NOT NULL GROUP BY v HAVING count(*) = 1)",
        )["f1"]
    )
    return min(total, round(d + f1 * (f1 / n) * (total - n) / n))


def _describe(
    con: duckdb.DuckDBPyConnection, source: str, files: list[Path], fmt: str
) -> tuple[tuple[ColumnSchema, ...], list[_Column]]:
    described = con.sql(f"DESCRIBE SELECT * FROM {source}").fetchall()
    arrow: Any = None  # the schema a file declares keeps Arrow types and nullability exact
    if fmt == "parquet":
        arrow = pq.read_schema(files[0])
    elif fmt == "arrow":
        with ipc.open_file(files[0]) as reader:
            arrow = reader.schema
    if arrow is None or len(arrow) != len(described):
        arrow = con.sql(f"SELECT * FROM {source} LIMIT 0").to_arrow_table().schema
    columns = []
    for index, (row, arrow_field) in enumerate(zip(described, arrow, strict=True)):
        sql_type = str(row[1])
        kind = "other" if pa.types.is_null(arrow_field.type) else _kind(sql_type)
        columns.append(_Column(index, arrow_field.name, str(row[0]), sql_type, kind))
    schema = tuple(ColumnSchema(f.name, str(f.type), bool(f.nullable)) for f in arrow)
    return schema, columns


def _kind(sql_type: str) -> Kind:
    if sql_type in _INTEGERS or sql_type in _FLOATS or sql_type.startswith("DECIMAL"):
        return "numeric"
    if sql_type == "BOOLEAN":
        return "boolean"
    if sql_type in _TEMPORAL:
        return "temporal"
    if sql_type in {"VARCHAR", "UUID"} or sql_type.startswith("ENUM"):
        return "categorical"
    return "other"


# -- the three passes ---------------------------------------------------------------------------


def _fetch_one(con: duckdb.DuckDBPyConnection, sql: str) -> dict[str, Any]:
    rows: list[dict[str, Any]] = con.sql(sql).to_arrow_table().to_pylist()
    return rows[0]


def _first_pass(
    con: duckdb.DuckDBPyConnection, source: str, columns: list[_Column], estimate: bool
) -> dict[str, Any]:
    parts = ["count(*) AS rows"]
    for c in columns:
        i, q, keep = c.index, c.ident, c.finite
        parts.append(f"count({q}) AS c{i}_nn")
        if estimate:
            parts.append(f"approx_count_distinct({c.value}) AS c{i}_approx")
        if c.is_float:
            parts += [f"count(*) FILTER (WHERE isnan({q})) AS c{i}_nan"]
            parts += [f"count(*) FILTER (WHERE isinf({q})) AS c{i}_inf"]
        if c.kind == "numeric":
            bound = q if c.sql_type in _INTEGERS else f"CAST({q} AS DOUBLE)"
            parts += [f"min({bound}){keep} AS c{i}_min", f"max({bound}){keep} AS c{i}_max"]
            parts += [f"CAST(avg({q}){keep} AS DOUBLE) AS c{i}_mean"]
            parts += [f"stddev_samp(CAST({q} AS DOUBLE)){keep} AS c{i}_std"]
        elif c.kind == "temporal":  # Arrow gives date, time and datetime objects (microseconds)
            cast = {"TIMESTAMP_NS": "TIMESTAMP", "TIME_NS": "TIME"}.get(c.sql_type)
            bound = f"CAST({q} AS {cast})" if cast else q
            parts += [f"min({bound}) AS c{i}_min", f"max({bound}) AS c{i}_max"]
    return _fetch_one(con, f"SELECT {', '.join(parts)} FROM {source}")


def _range(c: _Column, stats: dict[str, Any]) -> tuple[float, float] | None:
    low, high = stats.get(f"c{c.index}_min"), stats.get(f"c{c.index}_max")
    if c.kind != "numeric" or low is None or high is None:
        return None
    return float(low), float(high)


def _second_pass(
    con: duckdb.DuckDBPyConnection,
    source: str,
    columns: list[_Column],
    stats: dict[str, Any],
    exact: bool,
    union: bool,
) -> dict[str, Any]:
    probabilities = "[" + ", ".join(repr(p) for _, p in QUANTILES) + "]"
    # Exact quantiles of what is read, the table or its sample (about SAMPLE_ROWS rows):
    # DuckDB's exact quantile takes half the time of its t-digest on a sample of 1M rows.
    quantile = "quantile_cont"
    parts = []
    for c in columns:
        i, x = c.index, f"CAST({c.ident} AS DOUBLE)"
        if exact and not union:
            parts.append(f"count(DISTINCT {c.value}) AS c{i}_distinct")
        if (span := _range(c, stats)) is None:
            continue
        parts.append(f"{quantile}({x}, {probabilities}){c.finite} AS c{i}_q")
        low, high = span
        if low < high:
            if math.isfinite(high - low):
                offset = f"({x} - {low!r}) * {HISTOGRAM_BINS / (high - low)!r}"
            else:  # the span overflows a double: halve everything first
                offset = f"({x} / 2 - {low / 2!r}) * {HISTOGRAM_BINS / (high / 2 - low / 2)!r}"
            bucket = f"greatest(0, least({HISTOGRAM_BINS - 1}, CAST(floor({offset}) AS INTEGER)))"
            # Not a FILTER: the cast runs first, and NaN/inf break it. Not bare: least() and
            # greatest() skip nulls, which would land in a bin.
            keep = f"isfinite({c.ident})" if c.is_float else f"{c.ident} IS NOT NULL"
            parts.append(f"histogram(CASE WHEN {keep} THEN {bucket} END) AS c{i}_hist")
    found = _fetch_one(con, f"SELECT {', '.join(parts)} FROM {source}") if parts else {}
    if exact and union and columns:
        sql = " UNION ALL ".join(
            f"SELECT {c.index}, count(DISTINCT {c.value}) FROM {source}" for c in columns
        )
        found.update((f"c{k}_distinct", n) for k, n in con.sql(sql).fetchall())
    return found


def _sample(con: duckdb.DuckDBPyConnection, source: str, rows: int) -> str:
    """A uniform reservoir sample of ``SAMPLE_ROWS`` rows, kept in a temporary table."""
    con.execute(
        f"CREATE TEMP TABLE {_SAMPLE} AS SELECT * FROM {source} "
        f"USING SAMPLE reservoir({min(rows, SAMPLE_ROWS)} ROWS) REPEATABLE (7)"
    )
    return _SAMPLE


def _count(con: duckdb.DuckDBPyConnection, table: str) -> int:
    return int(_fetch_one(con, f"SELECT count(*) AS n FROM {table}")["n"])


def _scale(
    stats: dict[str, Any],
    top: dict[int, tuple[tuple[str, int], ...]],
    columns: list[_Column],
    factor: float,
) -> None:
    """Scale sample histograms to the table's finite count, and sample top counts."""
    for c in columns:
        key = f"c{c.index}_hist"
        if not stats.get(key):
            continue
        finite = stats[f"c{c.index}_nn"] - stats.get(f"c{c.index}_nan", 0)
        finite -= stats.get(f"c{c.index}_inf", 0)
        pairs = [(int(b), round(int(n) * factor)) for b, n in stats[key]]
        if pairs:  # rounding leftovers go to the fullest bin: the counts sum to the total
            fullest = max(range(len(pairs)), key=lambda k: pairs[k][1])
            bucket, n = pairs[fullest]
            pairs[fullest] = (bucket, max(0, n + int(finite) - sum(p[1] for p in pairs)))
        stats[key] = pairs
    for k, values in top.items():
        top[k] = tuple((v, round(n * factor)) for v, n in values)


def _top_values(
    con: duckdb.DuckDBPyConnection, source: str, columns: list[_Column], union: bool
) -> dict[int, tuple[tuple[str, int], ...]]:
    wanted = [c for c in columns if c.kind in ("categorical", "boolean")]
    if not wanted:
        return {}
    if union:
        sql = " UNION ALL ".join(
            f"(SELECT {c.index} AS k, CAST({c.ident} AS VARCHAR) AS v, count(*) AS n"
            f" FROM {source} WHERE {c.ident} IS NOT NULL GROUP BY {c.ident}"
            f" ORDER BY n DESC, v LIMIT {TOP_VALUES})"
            for c in wanted
        )
    else:  # one scan: each grouping set counts the values of one column
        values = ", ".join(f"CAST({c.ident} AS VARCHAR) AS v{c.index}" for c in wanted)
        which = " ".join(f"WHEN GROUPING(v{c.index}) = 0 THEN {c.index}" for c in wanted)
        sets = ", ".join(f"(v{c.index})" for c in wanted)
        value = f"COALESCE({', '.join(f'v{c.index}' for c in wanted)})"
        sql = (
            f"SELECT k, v, n FROM (SELECT CASE {which} END AS k, {value} AS v, count(*) AS n"
            f" FROM (SELECT {values} FROM {source}) GROUP BY GROUPING SETS ({sets}))"
            f" WHERE v IS NOT NULL"
            f" QUALIFY row_number() OVER (PARTITION BY k ORDER BY n DESC, v) <= {TOP_VALUES}"
        )
    top: dict[int, list[tuple[str, int]]] = {}
    for k, v, n in con.sql(f"SELECT * FROM ({sql}) ORDER BY k, n DESC, v").fetchall():
        text = v if len(v) <= _MAX_VALUE_CHARS else v[: _MAX_VALUE_CHARS - 1] + "…"
        top.setdefault(int(k), []).append((text, int(n)))
    return {k: tuple(pairs) for k, pairs in top.items()}


# -- assembling the records ---------------------------------------------------------------------


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _bound(value: Any, c: _Column) -> Scalar:
    if value is None:
        return None
    if c.kind == "temporal":
        return str(value.isoformat())
    if c.sql_type in _INTEGERS:
        return int(value)  # HUGEINT arrives as a Decimal
    return _finite(value)


def _histogram(c: _Column, stats: dict[str, Any]) -> Histogram | None:
    if (span := _range(c, stats)) is None:
        return None
    low, high = span
    i = c.index
    finite = stats[f"c{i}_nn"] - stats.get(f"c{i}_nan", 0) - stats.get(f"c{i}_inf", 0)
    if low == high:
        return Histogram(edges=(low, high), counts=(int(finite),))
    counts = [0] * HISTOGRAM_BINS
    for bucket, n in stats.get(f"c{i}_hist") or ():
        counts[int(bucket)] += int(n)
    if math.isfinite(step := (high - low) / HISTOGRAM_BINS):  # as numpy.linspace computes
        inner = [low + k * step for k in range(1, HISTOGRAM_BINS)]
    else:  # a span beyond the largest double: step in halves so that every edge is finite
        half = high / 2 / HISTOGRAM_BINS - low / 2 / HISTOGRAM_BINS
        inner = [low + k * half + k * half for k in range(1, HISTOGRAM_BINS)]
    return Histogram(edges=(low, *inner, high), counts=tuple(counts))


def _column_profile(
    c: _Column,
    arrow_type: str,
    stats: dict[str, Any],
    top: dict[int, tuple[tuple[str, int], ...]],
    exact: bool,
) -> ColumnProfile:
    i, rows = c.index, int(stats["rows"])
    nulls = rows - int(stats[f"c{i}_nn"])
    nan_count = int(stats.get(f"c{i}_nan", 0))
    quantiles = zip(QUANTILES, stats.get(f"c{i}_q") or (), strict=False)
    return ColumnProfile(
        name=c.name,
        type=arrow_type,
        kind=c.kind,
        count=rows,
        nulls=nulls,
        na_share=(nulls + nan_count) / rows if rows else 0.0,
        # HyperLogLog may overshoot: never more distinct values than non-null ones
        distinct=min(
            int(stats.get(f"c{i}_distinct" if exact else f"c{i}_approx") or 0),
            int(stats[f"c{i}_nn"]),
        ),
        distinct_approx=not exact,
        min=_bound(stats.get(f"c{i}_min"), c),
        max=_bound(stats.get(f"c{i}_max"), c),
        mean=_finite(stats.get(f"c{i}_mean")),
        std=_finite(stats.get(f"c{i}_std")),
        quantiles={key: v for (key, _), q in quantiles if (v := _finite(q)) is not None},
        histogram=_histogram(c, stats),
        top=top.get(i, ()),
        nan_count=nan_count,
        inf_count=int(stats.get(f"c{i}_inf", 0)),
    )
