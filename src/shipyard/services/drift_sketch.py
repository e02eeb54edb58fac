"""Compute drift sketches from Arrow tables and files, streaming, in bounded memory.

A table in memory is sketched column by column (each column once, exactly). Files (a dataset
version, the prediction log's Parquet files, any DuckDB-readable table) are read by DuckDB as
Arrow record batches of ``BATCH_ROWS`` rows, so memory stays bounded however large the window:

- numeric columns: each batch's finite values are sorted once (numpy's sort is faster than
  binning them); min, max, mean and the squared deviations are merged across batches
  (Chan et al.); the cumulative counts at the sketch's points come from two binary searches
  of the sorted batch. A column with few distinct values (``exact_limit``) is kept exactly.
  Without given points (a reference), a many-valued column gets ``GRID_BINS`` bins between
  its quantiles: exact from the sorted column when it arrived in one batch, otherwise from a
  weighted sample of every batch's order statistics, then counted exactly in a second pass.
- categorical columns: Arrow's hash ``value_counts`` per batch, merged, pruned to the most
  frequent ``_KEEP`` values when a column has more (the pruned counts go to ``other``), so a
  column with a million distinct values costs bounded memory and time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from shipyard.domain.drift_sketches import (
    GRID_BINS,
    TOP_VALUES,
    CategoricalSketch,
    ColumnSketch,
    NumericSketch,
    SketchKind,
    TableSketch,
)
from shipyard.errors import InvalidArgumentError
from shipyard.services.sql_quoting import sql_name

__all__ = [
    "BATCH_ROWS",
    "EXACT_LIMIT",
    "TableSource",
    "column_kind",
    "counting_grid",
    "sketch_table",
    "table_source",
]

BATCH_ROWS = 131_072  # rows per record batch read from files: about 50 MB for 50 columns
EXACT_LIMIT = 10_000  # up to this many distinct values a numeric column is kept exactly
_SUMMARY = 4 * GRID_BINS  # order statistics kept per batch to place a large column's grid
_COUNT_POINTS = 4_096  # about how many points a current window is counted at
_KEEP = 100_000  # distinct categories kept while streaming; beyond, the rarest are pruned
Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
Batch = Mapping[str, "pa.Array | pa.ChunkedArray"]


def column_kind(arrow_type: pa.DataType) -> SketchKind:
    """How a column of this Arrow type is sketched and tested."""
    if pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type):
        return "numeric"
    if pa.types.is_decimal(arrow_type):
        return "numeric"
    if pa.types.is_dictionary(arrow_type):
        return column_kind(arrow_type.value_type)
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return "categorical"
    if pa.types.is_boolean(arrow_type) or pa.types.is_string_view(arrow_type):
        return "categorical"
    return "other"


# -- sources ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TableSource:
    """Something to sketch: its schema, row count, and a way to read it batch by batch.

    Attributes:
        schema: the Arrow schema.
        rows: the number of rows.
        batches: called with the column names to read; yields batches (column -> values).
        label: what the table is, for reports.
    """

    schema: pa.Schema
    rows: int
    batches: Callable[[Sequence[str]], Iterator[Batch]]
    label: str = "table"


def table_source(data: Any, *, label: str | None = None, fmt: str | None = None) -> TableSource:
    """Wrap a table for sketching.

    Args:
        data: a ``pyarrow.Table``, a pandas or polars DataFrame, a file or folder, or a list
            of files (Parquet, CSV, JSON Lines or Arrow IPC, read by DuckDB).
        label: what to call it in reports.
        fmt: the file format when the suffix does not tell (``parquet``, ``csv``...).

    Returns:
        The source.

    Raises:
        InvalidArgumentError: for anything else, or files of unknown format.
        NotFoundError: if a file does not exist.
    """
    if isinstance(data, TableSource):
        return data
    if isinstance(data, str | Path) or (
        isinstance(data, list | tuple) and data and all(isinstance(p, str | Path) for p in data)
    ):
        paths = [Path(p) for p in (data if isinstance(data, list | tuple) else [data])]
        return _file_source(paths, fmt, label)
    table = _as_arrow(data)

    def whole(columns: Sequence[str]) -> Iterator[Batch]:
        yield {name: table.column(name) for name in columns}

    return TableSource(table.schema, table.num_rows, whole, label or "table")


def _as_arrow(data: Any) -> pa.Table:
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    module = type(data).__module__.split(".", 1)[0]
    if module == "pandas":
        return pa.Table.from_pandas(data, preserve_index=False)
    if module == "polars":
        table: pa.Table = data.to_arrow()
        return table
    raise InvalidArgumentError(
        f"cannot read a table from {type(data).__name__}: give a pyarrow Table, a pandas or "
        "polars DataFrame, or Parquet/CSV/JSON Lines/Arrow files"
    )


def _file_source(paths: list[Path], fmt: str | None, label: str | None) -> TableSource:
    from shipyard.domain.datasets import format_of
    from shipyard.services.tables import open_table, table_files

    if fmt is None:
        found = {format_of(p.name) for p in paths if not p.is_dir()} or {"parquet"}
        if len(found) != 1 or None in found:
            raise InvalidArgumentError(
                f"cannot tell the table format of {paths[0]}: "
                "pass fmt= (parquet, csv, jsonl or arrow)"
            )
        fmt = str(found.pop())
    files = table_files(paths, fmt)
    with open_table(files, fmt) as (con, source):
        schema = con.sql(f"SELECT * FROM {source} LIMIT 0").to_arrow_table().schema
        rows = int(con.sql(f"SELECT count(*) FROM {source}").fetchall()[0][0])

    def stream(columns: Sequence[str]) -> Iterator[Batch]:
        listed = ", ".join(sql_name(c) for c in columns) or "1 AS _one"
        with open_table(files, fmt) as (con, source):
            # a scan needs a few batches in flight, not the session's default 1 GB: DuckDB
            # would otherwise read ahead more as the window grows
            limit = max(256, 2 * BATCH_ROWS * max(len(columns), 1) * 16 // 2**20)
            con.execute(f"SET memory_limit = '{limit}MB'")
            reader = con.sql(f"SELECT {listed} FROM {source}").to_arrow_reader(BATCH_ROWS)
            for batch in reader:
                yield {name: batch.column(i) for i, name in enumerate(columns)}

    return TableSource(schema, rows, stream, label or str(paths[0]))


# -- numeric columns ----------------------------------------------------------------------------


def _finite_sorted(values: pa.Array | pa.ChunkedArray) -> tuple[Floats, int, int]:
    """The sorted finite values of a batch, and its NaN and infinity counts."""
    kept = pc.drop_null(values) if values.null_count else values
    if not pa.types.is_floating(kept.type):
        kept = pc.cast(kept, pa.float64())
    x = np.asarray(kept.to_numpy(), dtype=np.float64) if len(kept) else np.empty(0)
    finite = np.isfinite(x)
    nan = inf = 0
    if not finite.all():
        nan = int(np.count_nonzero(np.isnan(x)))
        inf = int(len(x) - np.count_nonzero(finite)) - nan
        x = x[finite]
    elif not x.flags.writeable or x.base is not None:
        x = x.copy()
    x.sort()  # in place: the one copy above is the only one
    return x, nan, inf


def _probabilities(n: int) -> Floats:
    """Where a large column's grid sits: even quantiles, denser towards both extremes.

    The tails get points at 2^-k from each end, so that the outermost bins (the widest ones
    for a heavy tail) hold only a few values each.
    """
    tails = 2.0 ** -np.arange(10, max(11, int(np.ceil(np.log2(max(n, 2)))) + 1))
    return np.unique(np.concatenate((np.linspace(0, 1, GRID_BINS + 1), tails, 1 - tails)))


def counting_grid(points: Floats, std: float, width: int = _COUNT_POINTS) -> Floats:
    """The points a current window is counted at, finer than the reference's own.

    The reference's points with each gap split in equal parts, plus points beyond both ends
    that widen geometrically (in reference standard deviations), so that values outside the
    reference's range are placed finely too.

    Args:
        points: the reference's sorted points.
        std: the reference's standard deviation (the unit beyond its ends).
        width: about how many points to return.

    Returns:
        Sorted distinct points.
    """
    if len(points) == 0:
        return points
    parts = max(1, width // max(len(points), 1))
    if parts > 1 and len(points) > 1:
        steps = np.linspace(0, 1, parts, endpoint=False)
        gaps = points[:-1, None] + np.diff(points)[:, None] * steps[None, :]
        points = np.concatenate((gaps.ravel(), points[-1:]))
    unit = std if np.isfinite(std) and std > 0 else max(abs(float(points[-1])), 1.0)
    reach = unit * (2.0 ** np.arange(-4, 11))  # 1/16 to 1024 standard deviations
    return np.unique(np.concatenate((points[0] - reach, points, points[-1] + reach)))


class _Numeric:
    """Merges the batches of one numeric column into a ``NumericSketch``."""

    def __init__(self, arrow_type: pa.DataType, grid: Floats | None, exact_limit: int) -> None:
        self.type = str(arrow_type)
        self.integer = pa.types.is_integer(arrow_type)
        self.grid = grid
        self.exact_limit = exact_limit
        self.count = self.nulls = self.nan = self.inf = self.n = 0
        self.mean = self.m2 = 0.0
        self.low, self.high = np.inf, -np.inf
        self.values: dict[float, int] | None = {}  # exact counts while there are few values
        self.below = np.zeros(0 if grid is None else len(grid), dtype=np.int64)
        self.upto = self.below.copy()
        self.summary: list[tuple[Floats, Floats]] = []  # (values, weights)
        self.summary_size = 0
        # the quantile grid of the first batch, counted exactly (used when it is the only one)
        self.single: tuple[Floats, Ints, Ints] | None = None
        self.batches = 0

    def add(self, values: pa.Array | pa.ChunkedArray) -> None:
        self.batches += 1
        self.count += len(values)
        self.nulls += values.null_count
        s, nan, inf = _finite_sorted(values)
        self.nan += nan
        self.inf += inf
        if not len(s):
            return
        self._moments(s)
        self._exact(s)
        if self.grid is not None:
            self.below += np.searchsorted(s, self.grid, side="left")
            self.upto += np.searchsorted(s, self.grid, side="right")
            return
        self.single = None
        if self.batches == 1:
            points = np.unique(s[np.round(_probabilities(len(s)) * (len(s) - 1)).astype(int)])
            below = np.searchsorted(s, points, side="left")
            self.single = (points, below, np.searchsorted(s, points, side="right"))
        step = max(len(s) / _SUMMARY, 1.0)
        picks = s if len(s) <= _SUMMARY else s[np.linspace(0, len(s) - 1, _SUMMARY).astype(int)]
        self.summary.append((picks, np.full(len(picks), step)))
        self.summary_size += len(picks)
        if self.summary_size > 64 * _SUMMARY:  # compact: memory stays bounded for any size
            values, cum = self._cumulative()
            keep = np.searchsorted(cum, np.linspace(0, cum[-1], 16 * _SUMMARY, endpoint=False))
            picked = values[np.minimum(keep, len(values) - 1)]
            self.summary = [(picked, np.full(len(picked), cum[-1] / len(picked)))]
            self.summary_size = len(picked)

    def _cumulative(self) -> tuple[Floats, Floats]:
        values = np.concatenate([v for v, _ in self.summary])
        weights = np.concatenate([w for _, w in self.summary])
        order = np.argsort(values, kind="stable")
        return values[order], np.cumsum(weights[order])

    def _moments(self, s: Floats) -> None:
        n_b = len(s)
        shift = float(s[n_b // 2])  # the median: the squares below stay small and exact
        d = s - shift
        sum_d = float(d.sum())
        mean_b = shift + sum_d / n_b
        m2_b = max(float(np.einsum("i,i->", d, d)) - sum_d * sum_d / n_b, 0.0)
        total = self.n + n_b
        delta = mean_b - self.mean
        self.m2 += m2_b + delta * delta * self.n * n_b / total
        self.mean += delta * n_b / total
        self.n = total
        self.low = min(self.low, float(s[0]))
        self.high = max(self.high, float(s[-1]))

    def _exact(self, s: Floats) -> None:
        if self.values is None:
            return
        starts = np.flatnonzero(np.concatenate(([True], s[1:] != s[:-1])))
        if len(starts) > self.exact_limit:
            self.values = None
            return
        counts = np.diff(np.append(starts, len(s)))
        for value, n in zip(s[starts].tolist(), counts.tolist(), strict=True):
            self.values[value] = self.values.get(value, 0) + n
        if len(self.values) > self.exact_limit:
            self.values = None

    @property
    def needs_second_pass(self) -> bool:
        """True when the grid of a large multi-batch column must be counted in a second pass."""
        return self.grid is None and self.values is None and self.single is None and self.n > 0

    def grid_from_summary(self) -> Floats:
        """Quantile points from the weighted order statistics of every batch."""
        values, cum = self._cumulative()
        wanted = _probabilities(self.n)[1:-1] * cum[-1]
        inner = values[np.minimum(np.searchsorted(cum, wanted), len(values) - 1)]
        return np.unique(np.concatenate(([self.low], inner, [self.high])))

    def finish(self, counted: _Numeric | None = None) -> NumericSketch:
        """The sketch; ``counted`` is the second pass that counted this column's grid."""
        points: Floats
        if self.n == 0:
            points, below, upto, exact = (
                np.empty(0),
                np.empty(0, np.int64),
                np.empty(0, np.int64),
                True,
            )
        elif self.values is not None:
            points = np.array(sorted(self.values), dtype=np.float64)
            upto = np.cumsum([self.values[p] for p in points.tolist()], dtype=np.int64)
            below = upto - np.array([self.values[p] for p in points.tolist()], dtype=np.int64)
            exact = True
        elif self.grid is not None or counted is not None:
            source = counted if counted is not None else self
            assert source.grid is not None
            points, below, upto = self._with_range(source.grid, source.below, source.upto)
            exact = False
        else:
            assert self.single is not None
            points, below, upto = self.single
            exact = False
        return NumericSketch(
            type=self.type,
            count=self.count,
            nulls=self.nulls,
            nan=self.nan,
            inf=self.inf,
            min=self.low if self.n else float("nan"),
            max=self.high if self.n else float("nan"),
            mean=self.mean if self.n else float("nan"),
            m2=self.m2 if self.n else float("nan"),
            points=tuple(points.tolist()),
            below=tuple(int(v) for v in below),
            upto=tuple(int(v) for v in upto),
            exact=exact,
            integer=self.integer,
        )

    def _with_range(self, grid: Floats, below: Ints, upto: Ints) -> tuple[Floats, Ints, Ints]:
        """Grid points inside [min, max], plus min and max themselves.

        Min and max count as if no value sat exactly on them, unless they are grid points.
        """
        inside = (grid >= self.low) & (grid <= self.high)
        points, b, u = grid[inside], below[inside], upto[inside]
        if not len(points) or points[0] > self.low:
            points, b, u = np.r_[self.low, points], np.r_[0, b], np.r_[0, u]
        if points[-1] < self.high:
            points, b, u = np.r_[points, self.high], np.r_[b, self.n], np.r_[u, self.n]
        return points, b.astype(np.int64), u.astype(np.int64)


# -- categorical columns ------------------------------------------------------------------------


class _Categorical:
    """Merges the batches of one categorical column into a ``CategoricalSketch``."""

    def __init__(self, arrow_type: pa.DataType) -> None:
        self.type = str(arrow_type)
        self.count = self.nulls = 0
        self.pending: list[pa.Table] = []
        self.pending_rows = 0
        self.pruned = 0  # values dropped while streaming (they stay counted in ``other``)
        self.distinct_seen = 0

    def add(self, values: pa.Array | pa.ChunkedArray) -> None:
        self.count += len(values)
        self.nulls += values.null_count
        if values.null_count == len(values):
            return
        counted = pc.value_counts(values)
        if isinstance(counted, pa.ChunkedArray):
            counted = counted.combine_chunks()
        keys, counts = counted.field("values"), counted.field("counts")
        if not pa.types.is_string(keys.type):
            keys = keys.cast(pa.string())
        table = pa.table({"v": keys, "n": counts}).filter(pc.is_valid(keys))
        self.pending.append(table)
        self.pending_rows += table.num_rows
        if self.pending_rows > 2 * _KEEP:
            self._merge(_KEEP)

    def _merge(self, keep: int | None) -> pa.Table:
        if not self.pending:
            return pa.table({"v": pa.array([], pa.string()), "n": pa.array([], pa.int64())})
        merged = self.pending[0] if len(self.pending) == 1 else pa.concat_tables(self.pending)
        if len(self.pending) > 1:
            merged = merged.group_by("v").aggregate([("n", "sum")]).rename_columns(["v", "n"])
        self.distinct_seen = max(self.distinct_seen, merged.num_rows)
        if keep is not None and merged.num_rows > keep:
            top = pc.select_k_unstable(merged, keep, sort_keys=[("n", "descending")])
            kept = merged.take(top)
            self.pruned += int(pc.sum(merged["n"]).as_py()) - int(pc.sum(kept["n"]).as_py())
            merged = kept
        self.pending = [merged]
        self.pending_rows = merged.num_rows
        return merged

    def finish(self) -> CategoricalSketch:
        merged = self._merge(None)
        distinct = merged.num_rows
        if distinct > TOP_VALUES:
            merged = merged.take(
                pc.select_k_unstable(merged, TOP_VALUES, sort_keys=[("n", "descending")])
            )
        merged = merged.sort_by([("n", "descending"), ("v", "ascending")])
        top = tuple(zip(merged["v"].to_pylist(), merged["n"].to_pylist(), strict=True))
        kept = sum(n for _, n in top)
        return CategoricalSketch(
            type=self.type,
            count=self.count,
            nulls=self.nulls,
            top=top,
            other=self.count - self.nulls - kept,
            distinct=max(distinct, self.distinct_seen),
            complete=self.pruned == 0 and distinct <= TOP_VALUES,
        )


# -- tables -------------------------------------------------------------------------------------


def sketch_table(
    data: Any,
    *,
    grid: TableSketch | None = None,
    columns: Sequence[str] | None = None,
    exact_limit: int = EXACT_LIMIT,
) -> TableSketch:
    """Sketch every column of a table (numeric and categorical; others by type only).

    Args:
        data: a table (see ``table_source``) or a ``TableSource``.
        grid: a reference sketch: numeric columns are counted at its points, so that the
            two can be compared (the Kolmogorov-Smirnov statistic exactly).
        columns: only these columns (default: all).
        exact_limit: numeric columns with at most this many distinct values are kept exactly.

    Returns:
        The sketch.

    Raises:
        InvalidArgumentError: if a named column is not in the table.
    """
    source = table_source(data)
    names = list(source.schema.names if columns is None else columns)
    missing = [n for n in names if n not in source.schema.names]
    if missing:
        raise InvalidArgumentError(
            f"no column {', '.join(map(repr, missing))} in {source.label}; it has "
            f"{', '.join(source.schema.names)}"
        )
    accumulators: dict[str, _Numeric | _Categorical] = {}
    other: dict[str, str] = {}
    for name in names:
        arrow_type = source.schema.field(name).type
        kind = column_kind(arrow_type)
        if kind == "numeric":
            accumulators[name] = _Numeric(arrow_type, _grid_of(grid, name), exact_limit)
        elif kind == "categorical":
            accumulators[name] = _Categorical(arrow_type)
        else:
            other[name] = str(arrow_type)
    _scan(source, accumulators)
    second = {
        name: _Numeric(source.schema.field(name).type, acc.grid_from_summary(), 0)
        for name, acc in accumulators.items()
        if isinstance(acc, _Numeric) and acc.needs_second_pass
    }
    if second:
        _scan(source, second)
    sketches: dict[str, ColumnSketch] = {}
    for name, acc in accumulators.items():
        sketches[name] = acc.finish(second.get(name)) if isinstance(acc, _Numeric) else acc.finish()
    return TableSketch(rows=source.rows, columns=sketches, other=other)


def _grid_of(grid: TableSketch | None, name: str) -> Floats | None:
    if grid is None:
        return None
    found = grid.columns.get(name)
    if not isinstance(found, NumericSketch) or not found.points:
        return None
    return counting_grid(np.asarray(found.points, dtype=np.float64), found.std)


def _scan(source: TableSource, accumulators: Mapping[str, _Numeric | _Categorical]) -> None:
    if not accumulators or not source.rows:
        return
    for batch in source.batches(list(accumulators)):
        for name, acc in accumulators.items():
            acc.add(batch[name])
