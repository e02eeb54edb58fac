"""What a Parquet table's footers already know, and a sample read from its row groups.

Profiling a table of tens of millions of rows by scanning every value costs seconds per
gigabyte. A Parquet file's footer holds, per row group and column, the row count, the null
count and (for most writers) the min and max, so those are exact without reading a value;
the statistics that need values (moments, quantiles, histograms, top values, distinct counts)
come from whole row groups picked evenly across the files, which reads a few percent of the
bytes instead of all of them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

__all__ = ["FooterStats", "read_footers", "sample_row_groups"]

# A row group larger than this many times the sample cannot be sampled by picking row groups:
# the caller falls back to scanning.
_MAX_GROUP_SHARE = 4
# Row groups read holding more than this many times the rows wanted are thinned to them.
_THIN_ABOVE = 2


@dataclass
class FooterStats:
    """Exact counts and bounds of a Parquet table, from its footers alone.

    Attributes:
        rows: rows in all files.
        nulls: per top-level column name, its null count (absent when a row group lacks it).
        bounds: per column name, (min, max) over row groups (absent when any lacks them).
        groups: (file index, row group index, rows) of every row group, in file order.
    """

    rows: int = 0
    nulls: dict[str, int] = field(default_factory=dict)
    bounds: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    groups: list[tuple[int, int, int]] = field(default_factory=list)


def read_footers(files: Sequence[Path], names: Sequence[str]) -> FooterStats:
    """Row counts, null counts and min/max of ``names``, summed over every row group.

    Only flat columns get statistics (a nested column's leaves do not describe the column);
    a column some row group has no statistics for is left out, and the caller reads values.

    Args:
        files: the Parquet files of one table.
        names: the top-level columns wanted.

    Returns:
        The statistics.
    """
    stats = FooterStats()
    wanted = set(names)
    missing_nulls: set[str] = set()
    missing_bounds: set[str] = set()
    for f, path in enumerate(files):
        meta = pq.ParquetFile(path).metadata
        leaves = {}
        for k in range(meta.num_columns):
            column_path = meta.schema.column(k).path
            if column_path in wanted:  # a flat column: its path is its name
                leaves[column_path] = k
        missing = wanted - leaves.keys()
        missing_nulls |= missing
        missing_bounds |= missing
        for g in range(meta.num_row_groups):
            group = meta.row_group(g)
            stats.rows += group.num_rows
            stats.groups.append((f, g, group.num_rows))
            for name, k in leaves.items():
                s = group.column(k).statistics
                if s is None or not s.has_null_count:
                    missing_nulls.add(name)
                else:
                    stats.nulls[name] = stats.nulls.get(name, 0) + s.null_count
                if s is None or not s.has_min_max:
                    if group.num_rows > (s.null_count if s is not None else 0):
                        missing_bounds.add(name)
                    continue
                low, high = _plain(s.min), _plain(s.max)
                if low is None or high is None:
                    missing_bounds.add(name)
                    continue
                old = stats.bounds.get(name)
                stats.bounds[name] = (low, high) if old is None else _widen(old, low, high)
    for name in missing_nulls:
        stats.nulls.pop(name, None)
    for name in missing_bounds:
        stats.bounds.pop(name, None)
    return stats


def _plain(value: Any) -> Any:
    """A footer bound as a comparable Python value, or None for one that is not usable."""
    if isinstance(value, bool):
        return None  # booleans get counts, not ranges
    if isinstance(value, int | Decimal):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None  # ranges leave infinities out
    if isinstance(value, datetime | date | time):
        return value
    return None


def _widen(old: tuple[Any, Any], low: Any, high: Any) -> tuple[Any, Any]:
    try:
        return min(old[0], low), max(old[1], high)
    except TypeError:  # aware and naive datetimes from files written differently
        return old


def sample_row_groups(
    files: Sequence[Path], groups: Sequence[tuple[int, int, int]], target_rows: int
) -> pa.Table | None:
    """Row groups picked evenly across the table, about ``target_rows`` rows in all.

    Whole row groups; when they hold more than twice the rows wanted (a table of few, large
    row groups), evenly spaced rows of them.

    Args:
        files: the Parquet files of one table.
        groups: their row groups, from ``read_footers``.
        target_rows: rows wanted.

    Returns:
        The sample, or None when the row groups are too coarse to sample this way (a few
        huge row groups) and the caller should scan instead.
    """
    if not groups:
        return None
    largest = max(rows for _, _, rows in groups)
    if largest > _MAX_GROUP_SHARE * target_rows:
        return None
    total = sum(rows for _, _, rows in groups)
    share = min(1.0, target_rows / max(total, 1))
    picked: dict[int, list[int]] = {}
    credit = 0.0
    for f, g, rows in groups:  # a running share: every k-th group, spread over the files
        credit += share * rows
        if credit >= rows / 2 or share >= 1.0:
            picked.setdefault(f, []).append(g)
            credit -= rows
    if not picked:
        f, g, _ = groups[len(groups) // 2]
        picked[f] = [g]
    parts = [pq.ParquetFile(files[f]).read_row_groups(gs) for f, gs in sorted(picked.items())]
    table = parts[0] if len(parts) == 1 else pa.concat_tables(parts, promote_options="permissive")
    if table.num_rows > _THIN_ABOVE * target_rows:
        # Row groups much larger than the sample: keep evenly spaced rows of them, so the
        # statistics run over about ``target_rows`` rows, not over whole groups.
        # Built from a buffer: pa.array() of Python or numpy values imports pandas (~0.3 s).
        step = table.num_rows / target_rows
        rows = (np.arange(target_rows) * step).astype(np.int64)
        table = table.take(pa.Array.from_buffers(pa.int64(), len(rows), [None, pa.py_buffer(rows)]))
    return table
