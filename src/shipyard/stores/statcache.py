"""A per-machine cache of file digests keyed by (path, size, mtime, inode).

Re-adding a folder whose files did not change re-hashes nothing: a file whose size,
modification time and inode match the cached entry gets the cached digest. The cache lives
beside the project's local state (``.shipyard/cache/stat.db``), never in the shared metadata
store: stat results mean nothing on another machine.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["StatCache", "StatKey"]

_RACY_NS = 2_000_000_000

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

    Args:
        path: the SQLite file holding the cache; created if missing.
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(path, timeout=30, isolation_level=None)
        self._conn.execute("pragma journal_mode = wal")
        self._conn.execute("pragma synchronous = normal")
        self._conn.execute(_SCHEMA)

    def lookup(self, folder: Path) -> dict[str, tuple[StatKey, str]]:
        """Every cached entry under ``folder`` (absolute paths), with its stat key and digest."""
        prefix = str(folder).rstrip("/") + "/"
        rows = self._conn.execute(
            "select path, size, mtime_ns, inode, digest from stat_cache "
            "where path >= ? and path < ?",
            (prefix, prefix[:-1] + "0"),  # '0' sorts right after '/'
        )
        return {row[0]: (StatKey(row[1], row[2], row[3]), row[4]) for row in rows}

    def get(self, path: Path, key: StatKey) -> str | None:
        """The cached digest of one file, if its stat key still matches."""
        row = self._conn.execute(
            "select size, mtime_ns, inode, digest from stat_cache where path = ?", (str(path),)
        ).fetchone()
        if row is None or StatKey(row[0], row[1], row[2]) != key:
            return None
        return str(row[3])

    def update(self, entries: Iterable[tuple[Path, StatKey, str]]) -> None:
        """Remember digests; one transaction for the lot."""
        # A file modified in the same tick as it was cached would look unchanged ("racily
        # clean", as git calls it): entries this fresh are not cached.
        fresh = time.time_ns() - _RACY_NS
        rows = [
            (str(p), k.size, k.mtime_ns, k.inode, d) for p, k, d in entries if k.mtime_ns < fresh
        ]
        if not rows:
            return
        try:
            self._conn.execute("begin immediate")
            self._conn.executemany("insert or replace into stat_cache values (?, ?, ?, ?, ?)", rows)
            self._conn.execute("commit")
        except sqlite3.OperationalError:  # a busy cache is only a cache: skip this update
            if self._conn.in_transaction:
                self._conn.execute("rollback")

    def close(self) -> None:
        """Close the cache file."""
        self._conn.close()
