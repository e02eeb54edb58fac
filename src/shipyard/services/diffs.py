"""Diff two dataset versions: files, schema, rows by key (hash join in DuckDB), statistics."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb

from shipyard.domain.datasets import DatasetVersion, ManifestEntry
from shipyard.domain.diffs import (
    ColumnChange,
    ColumnDelta,
    DatasetDiff,
    FileChange,
    RowChanges,
    population_stability_index,
)
from shipyard.domain.profiles import ColumnProfile, TableProfile
from shipyard.errors import InvalidArgumentError
from shipyard.services.sql_quoting import sql_name
from shipyard.services.tables import add_source, check_csv_width, input_errors, open_table

__all__ = ["TableSide", "diff_versions"]

SAMPLE = 5


class TableSide:
    """One version as the diff sees it: record, manifest, and, for tables, files and profile."""

    def __init__(
        self,
        version: DatasetVersion,
        manifest: Sequence[ManifestEntry],
        files: Sequence[Path] | None = None,
        profile: TableProfile | None = None,
    ) -> None:
        self.version = version
        self.manifest = manifest
        self.files = list(files) if files is not None else None
        self.profile = profile


def diff_versions(old: TableSide, new: TableSide, *, key: Sequence[str] = ()) -> DatasetDiff:
    """Compare two versions; rows and statistics only when both are tables.

    Args:
        old: the earlier (reference) side.
        new: the later side.
        key: columns identifying a row; default: the new version's key, else none (rows are
            then compared as multisets of whole rows).

    Raises:
        InvalidArgumentError: if a key column is missing or not unique.
    """
    files = _file_changes(old.manifest, new.manifest)
    same = old.version.content_digest == new.version.content_digest
    if old.profile is None or new.profile is None or old.files is None or new.files is None:
        return DatasetDiff(
            old.version.ref,
            new.version.ref,
            same,
            files,
            (),
            old.version.rows,
            new.version.rows,
            None,
            (),
        )
    keys = tuple(key or new.version.key_columns or old.version.key_columns)
    old_types = {c.name: c.type for c in old.profile.schema}
    new_types = {c.name: c.type for c in new.profile.schema}
    for column in keys:
        if column not in old_types or column not in new_types:
            raise InvalidArgumentError(
                f"key column {column!r} must be in both versions; "
                f"{old.version.ref} has {', '.join(old_types)}, "
                f"{new.version.ref} has {', '.join(new_types)}"
            )
    schema = _schema_changes(old_types, new_types)
    assert old.version.format is not None and new.version.format is not None
    with (
        open_table(old.files, old.version.format) as (con, old_sql),
        input_errors(new.files, new.version.format),
    ):
        new_sql = add_source(con, new.files, new.version.format, "_shipyard_new")
        if new.version.format == "csv":
            check_csv_width(con, new_sql, new.files)
        common = [c for c in old_types if c in new_types]
        rows = _row_changes(con, old_sql, new_sql, common, keys, old_types, new_types)
        deltas = _column_deltas(con, old_sql, new_sql, old.profile, new.profile, common)
    return DatasetDiff(
        old.version.ref,
        new.version.ref,
        same,
        files,
        schema,
        old.profile.rows,
        new.profile.rows,
        rows,
        deltas,
    )


def _file_changes(
    old: Sequence[ManifestEntry], new: Sequence[ManifestEntry]
) -> tuple[FileChange, ...]:
    before = {e.path: e for e in old}
    after = {e.path: e for e in new}
    changes = [FileChange(p, "removed", e.size, None) for p, e in before.items() if p not in after]
    changes += [FileChange(p, "added", None, e.size) for p, e in after.items() if p not in before]
    changes += [
        FileChange(p, "changed", before[p].size, e.size)
        for p, e in after.items()
        if p in before and before[p].digest != e.digest
    ]
    return tuple(sorted(changes, key=lambda c: c.path))


def _schema_changes(old: dict[str, str], new: dict[str, str]) -> tuple[ColumnChange, ...]:
    changes = [ColumnChange(n, "removed", t, None) for n, t in old.items() if n not in new]
    changes += [ColumnChange(n, "added", None, t) for n, t in new.items() if n not in old]
    changes += [
        ColumnChange(n, "retyped", t, new[n]) for n, t in old.items() if n in new and new[n] != t
    ]
    return tuple(changes)


def _rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = con.sql(sql).to_arrow_table().to_pylist()
    return [{k: _plain(v) for k, v in r.items()} for r in records]


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    return str(value)


def _row_changes(
    con: duckdb.DuckDBPyConnection,
    old: str,
    new: str,
    common: list[str],
    keys: tuple[str, ...],
    old_types: dict[str, str],
    new_types: dict[str, str],
) -> RowChanges:
    compared = [c for c in common if c not in keys]

    def value(column: str) -> str:
        retyped = old_types[column] != new_types[column]
        return f"CAST({sql_name(column)} AS VARCHAR)" if retyped else sql_name(column)

    digest = f"hash({', '.join(value(c) for c in compared)})" if compared else "0"
    if not keys:
        return _multiset_changes(con, old, new, digest)
    key_list = ", ".join(sql_name(k) for k in keys)
    for side, sql in (("old", old), ("new", new)):
        dupes = con.execute(
            f"SELECT count(*) - count(DISTINCT ({key_list})) FROM {sql}"
        ).fetchall()[0]
        if dupes and dupes[0]:
            raise InvalidArgumentError(
                f"key {', '.join(keys)} is not unique in the {side} version "
                f"({dupes[0]:,} repeated rows): choose a key that identifies one row"
            )
    on = " AND ".join(f"o.{sql_name(k)} IS NOT DISTINCT FROM n.{sql_name(k)}" for k in keys)
    hashed = f"SELECT {key_list}, {digest} AS _h, true AS _p FROM"
    counts = con.execute(
        f"SELECT count(*) FILTER (WHERE o._p IS NULL), count(*) FILTER (WHERE n._p IS NULL), "
        f"count(*) FILTER (WHERE o._h <> n._h), count(*) FILTER (WHERE o._h = n._h) "
        f"FROM ({hashed} {old}) o FULL OUTER JOIN ({hashed} {new}) n ON {on}"
    ).fetchall()[0]
    assert counts is not None
    added, removed, changed, unchanged = (int(c) for c in counts)
    samples: dict[str, list[dict[str, Any]]] = {
        "added": _rows(con, f"SELECT n.* FROM {new} n ANTI JOIN {old} o ON {on} LIMIT {SAMPLE}"),
        "removed": _rows(con, f"SELECT o.* FROM {old} o ANTI JOIN {new} n ON {on} LIMIT {SAMPLE}"),
        "changed": _changed_samples(con, old, new, keys, compared, digest, on),
    }
    return RowChanges(keys, added, removed, changed, unchanged, samples)


def _changed_samples(
    con: duckdb.DuckDBPyConnection,
    old: str,
    new: str,
    keys: tuple[str, ...],
    compared: list[str],
    digest: str,
    on: str,
) -> list[dict[str, Any]]:
    if not compared:
        return []
    pairs = ", ".join(
        f"o.{sql_name(c)} AS {sql_name('old.' + c)}, n.{sql_name(c)} AS {sql_name('new.' + c)}"
        for c in compared
    )
    key_cols = ", ".join(f"n.{sql_name(k)}" for k in keys)
    rows = _rows(
        con,
        f"SELECT {key_cols}, {pairs} FROM (SELECT *, {digest} AS _h FROM {old}) o "
        f"JOIN (SELECT *, {digest} AS _h FROM {new}) n ON {on} WHERE o._h <> n._h "
        f"LIMIT {SAMPLE}",
    )
    samples = []
    for row in rows:
        sample: dict[str, Any] = {k: row[k] for k in keys}
        sample["changes"] = {
            c: {"old": row[f"old.{c}"], "new": row[f"new.{c}"]}
            for c in compared
            if row[f"old.{c}"] != row[f"new.{c}"]
        }
        samples.append(sample)
    return samples


def _multiset_changes(
    con: duckdb.DuckDBPyConnection, old: str, new: str, digest: str
) -> RowChanges:
    counts = con.execute(
        f"SELECT coalesce(sum(greatest(coalesce(n.c, 0) - coalesce(o.c, 0), 0)), 0), "
        f"coalesce(sum(greatest(coalesce(o.c, 0) - coalesce(n.c, 0), 0)), 0), "
        f"coalesce(sum(least(coalesce(o.c, 0), coalesce(n.c, 0))), 0) "
        f"FROM (SELECT {digest} AS h, count(*) AS c FROM {old} GROUP BY 1) o "
        f"FULL OUTER JOIN (SELECT {digest} AS h, count(*) AS c FROM {new} GROUP BY 1) n "
        f"ON o.h = n.h"
    ).fetchall()[0]
    assert counts is not None
    added, removed, unchanged = (int(c) for c in counts)
    only = "SELECT * FROM {a} WHERE {d} NOT IN (SELECT {d} FROM {b}) LIMIT {n}"
    samples = {
        "added": _rows(con, only.format(a=new, b=old, d=digest, n=SAMPLE)),
        "removed": _rows(con, only.format(a=old, b=new, d=digest, n=SAMPLE)),
    }
    return RowChanges((), added, removed, 0, unchanged, samples)


def _column_deltas(
    con: duckdb.DuckDBPyConnection,
    old: str,
    new: str,
    old_profile: TableProfile,
    new_profile: TableProfile,
    common: list[str],
) -> tuple[ColumnDelta, ...]:
    deltas = []
    for name in common:
        a, b = old_profile.column(name), new_profile.column(name)
        shift = None
        if a.mean is not None and b.mean is not None and a.std:
            shift = (b.mean - a.mean) / a.std
        deltas.append(
            ColumnDelta(
                name=name,
                kind=b.kind,
                mean_old=a.mean,
                mean_new=b.mean,
                mean_shift=shift,
                na_old=a.na_share,
                na_new=b.na_share,
                distinct_old=a.distinct,
                distinct_new=b.distinct,
                psi=_psi(con, old, new, a, b),
            )
        )
    return tuple(deltas)


def _psi(
    con: duckdb.DuckDBPyConnection, old: str, new: str, a: ColumnProfile, b: ColumnProfile
) -> float | None:
    column = sql_name(a.name)
    if a.kind == "numeric" and a.histogram is not None and b.kind == "numeric":
        edges = a.histogram.edges
        inner = edges[1:-1]
        # Bin the new values on the old edges; values outside fall into the end bins.
        cases = " ".join(f"WHEN {column} < {e!r} THEN {i}" for i, e in enumerate(inner))
        binned = f"CASE {cases} ELSE {len(inner)} END" if inner else "0"
        rows = con.execute(
            f"SELECT {binned} AS bin, count(*) FROM {new} "
            f"WHERE {column} IS NOT NULL AND isfinite(CAST({column} AS DOUBLE)) GROUP BY 1"
        ).fetchall()
        current = [0] * len(a.histogram.counts)
        for bin_index, count in rows:
            current[int(bin_index)] += int(count)
        return population_stability_index(list(a.histogram.counts), current)
    if a.kind in ("categorical", "boolean") and a.top:
        values = sorted({v for v, _ in a.top} | {v for v, _ in b.top})
        listed = ", ".join("'" + v.replace("'", "''") + "'" for v in values)

        def counts(sql: str) -> list[int]:
            found = dict(
                con.execute(
                    f"SELECT CAST({column} AS VARCHAR), count(*) FROM {sql} "
                    f"WHERE CAST({column} AS VARCHAR) IN ({listed}) GROUP BY 1"
                ).fetchall()
            )
            total = con.execute(f"SELECT count({column}) FROM {sql}").fetchall()[0]
            rest = int(total[0] if total else 0) - sum(int(v) for v in found.values())
            return [int(found.get(v, 0)) for v in values] + [rest]

        return population_stability_index(counts(old), counts(new))
    return None
