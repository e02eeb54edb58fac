"""A per-machine cache of file digests keyed by (path, size, mtime, inode).

Re-adding a folder whose files did not change re-hashes nothing: a file whose size,
modification time and inode match the cached entry gets the cached digest. The cache lives
beside the project's local state (``.shipyard/cache/stat.db``), never in the shared metadata
store: stat results mean nothing on another machine.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["StatCache", "StatKey"]

_RACY_NS = 2_000_000_000
# Up to this many paths are looked up one by one (by key, bound parameters within SQLite's
# limit of 32,766); more are read in one range scan of their common prefix.
_POINT_LOOKUPS = 5_000
_SELECT = "select path, size, mtime_ns, inode, digest from stat_cache"
_ANY = "select 1 from stat_cache limit 1"

_SCHEMA = """
create table if not exists stat_cache (
    path text primary key,
    size integer not null,
    mtime_ns integer not null,
    inode integer not null,
    digest text not null
)
"""


@dataclass(frozen=True, slots=True)
class StatKey:
    """What must be unchanged for a cached digest to be trusted."""

    size: int
    mtime_ns: int
    inode: int


class StatCache:
    """Digests of local files, trusted while their stat results are unchanged.

    One connection serves every thread of the process (pipeline tasks add datasets from
    worker threads), one call at a time.

    Args:
        path: the SQLite file holding the cache; created if missing.
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(
            path, timeout=30, isolation_level=None, check_same_thread=False
        )
        self._conn.execute("pragma journal_mode = wal")
        self._conn.execute("pragma synchronous = normal")
        self._conn.execute(_SCHEMA)

    def lookup(self, paths: Sequence[str]) -> dict[str, tuple[int, int, int, str]]:
        """The cached entries of these absolute paths: path -> (size, mtime_ns, inode, digest).

        Plain tuples, not ``StatKey``: a re-add of 100,000 files compares them all.
        """
        with self._lock:
            return self._lookup(paths)

    def _lookup(self, paths: Sequence[str]) -> dict[str, tuple[int, int, int, str]]:
        if not paths or self._conn.execute(_ANY).fetchone() is None:
            return {}
        if len(paths) <= _POINT_LOOKUPS:
            marks = ", ".join("?" * len(paths))
            rows = self._conn.execute(f"{_SELECT} where path in ({marks})", paths).fetchall()
        else:
            # The entries under the paths' common prefix, in one range scan of the key. The
            # prefix of the first and last path in sort order is the prefix of them all; a
            # character prefix, not a folder, is what a range of keys needs.
            prefix = os.path.commonprefix([min(paths), max(paths)])  # noqa: RUF071
            prefix = prefix.rstrip(chr(sys.maxunicode))  # no character sorts after it
            if prefix:
                end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
                rows = self._conn.execute(
                    f"{_SELECT} where path >= ? and path < ?", (prefix, end)
                ).fetchall()
            else:
                rows = self._conn.execute(_SELECT).fetchall()
        return {row[0]: row[1:] for row in rows}

    def get(self, path: Path, key: StatKey) -> str | None:
        """The cached digest of one file, if its stat key still matches."""
        with self._lock:
            row = self._conn.execute(
                "select size, mtime_ns, inode, digest from stat_cache where path = ?", (str(path),)
            ).fetchone()
        if row is None or StatKey(row[0], row[1], row[2]) != key:
            return None
        return str(row[3])

    def update(self, entries: Iterable[tuple[str, int, int, int, str]]) -> None:
        """Remember digests, given as (path, size, mtime_ns, inode, digest); one transaction.

        Plain tuples, not ``StatKey``: the first add of 100,000 files makes as many.
        """
        # A file modified in the same tick as it was cached would look unchanged ("racily
        # clean", as git calls it): entries this fresh are not cached.
        fresh = time.time_ns() - _RACY_NS
        rows = [entry for entry in entries if entry[2] < fresh]
        if not rows:
            return
        with self._lock:
            self._write(rows)

    def _write(self, rows: list[tuple[str, int, int, int, str]]) -> None:
        try:
            self._conn.execute("begin immediate")
            self._conn.executemany("insert or replace into stat_cache values (?, ?, ?, ?, ?)", rows)
            self._conn.execute("commit")
        except sqlite3.OperationalError:  # a busy cache is only a cache: skip this update
            if self._conn.in_transaction:
                self._conn.execute("rollback")

    def close(self) -> None:
        """Close the cache file."""
        with self._lock:
            self._conn.close()
