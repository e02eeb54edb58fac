"""A per-machine cache of file digests, trusted while the files' stat results are unchanged.

Re-adding a folder whose files did not change re-hashes nothing. Two kinds of entries:

- one row per file path (size, mtime, inode -> digest), for files stored one by one;
- one row per added folder (or single file): its *snapshot*, the names, stat results
  (size, mtime, inode, ctime) and digests of all its files in columns, with the content
  identity of the whole. A re-add walks the folder, compares its columns with the snapshot
  in C (list and array equality), and when nothing differs takes the digests and identity
  as they are: no per-file Python work beyond the walk's one stat per file.

The cache lives beside the project's local state (``.shipyard/cache/stat.db``), never in the
shared metadata store: stat results mean nothing on another machine.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import sys
import threading
import time
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["FolderSnapshot", "StatCache", "StatKey", "racy_after"]

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
_FOLDER_SCHEMA = """
create table if not exists folder_cache (
    root text primary key,
    identity text not null,
    names blob not null,
    stats blob not null,
    digests blob not null
)
"""
# A cached mtime no file has: the entry of a racily clean file, which must never match.
_UNTRUSTED = -(2**63)
_STATS = 4  # size, mtime_ns, inode, ctime_ns


def racy_after() -> int:
    """Files modified at or after this time (ns) are racily clean: their digests are not kept.

    A write in the same clock tick as the cached stat could leave size and mtime unchanged
    ("racily clean", as git calls it); a file this fresh is hashed again next time.
    """
    return time.time_ns() - _RACY_NS


@dataclass(frozen=True, slots=True)
class FolderSnapshot:
    """The files of an added folder as last hashed, in columns, packed as they are stored.

    Names and digests stay packed until asked for: a re-add that finds nothing changed
    compares the packed names and the stat array, both in C, and unpacks nothing.

    Attributes:
        packed_names: the files' names inside the folder, in walk order, NUL-separated UTF-8.
        stats: size, mtime_ns, inode and ctime_ns of every file, flattened (four per file);
            a racily clean file's mtime is a value no file has, so it never matches.
        packed_digests: every file's digest, in the same order, LF-separated.
        identity: the content identity of the whole folder (``content_identity``).
    """

    packed_names: bytes
    stats: array[int]
    packed_digests: bytes
    identity: str

    @staticmethod
    def of(
        names: list[str], stats: array[int], digests: list[str], identity: str
    ) -> FolderSnapshot:
        """A snapshot to save, with the racily clean files' entries made never to match."""
        fresh = racy_after()
        mtimes = stats[1::_STATS]
        if max(mtimes, default=_UNTRUSTED) >= fresh:
            stats = array("q", stats)
            for i, mtime in enumerate(mtimes):
                if mtime >= fresh:
                    stats[i * _STATS + 1] = _UNTRUSTED
        return FolderSnapshot(_pack(names), stats, "\n".join(digests).encode("ascii"), identity)

    def names(self) -> list[str]:
        """The files' names, in walk order."""
        return _unpack(self.packed_names)

    def digests(self) -> list[str]:
        """The files' digests, in walk order."""
        return self.packed_digests.decode("ascii").split("\n") if self.packed_digests else []

    def changed(self, names: list[str], stats: array[int]) -> list[int] | None:
        """Which files of a new walk differ from the snapshot (their index in the walk).

        None when the names differ, so that files cannot be matched by position.
        """
        if len(stats) != len(self.stats) or _pack(names) != self.packed_names:
            return None
        if stats == self.stats:
            return []
        old = self.stats
        return [
            i
            for i in range(len(names))
            if stats[i * _STATS : (i + 1) * _STATS] != old[i * _STATS : (i + 1) * _STATS]
        ]


def _pack(names: list[str]) -> bytes:
    return "\0".join(names).encode("utf-8", "surrogateescape")


def _unpack(packed: bytes) -> list[str]:
    return packed.decode("utf-8", "surrogateescape").split("\0") if packed else []


@dataclass(frozen=True, slots=True)
class StatKey:
    """What must be unchanged for a cached digest to be trusted."""

    size: int
    mtime_ns: int
    inode: int


class StatCache:
    """Digests of local files, trusted while their stat results are unchanged.

    One connection serves every thread of the process (pipeline tasks add datasets from
    worker threads), one call at a time. A folder snapshot (megabytes for 100,000 files) is
    written on a thread of its own while the add goes on storing; the next call waits for it.

    Args:
        path: the SQLite file holding the cache; created if missing.
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        # The snapshots being written, each on its thread (two adds at once make two).
        self._saving: list[threading.Thread] = []
        self._saving_lock = threading.Lock()
        self._conn = sqlite3.connect(
            path, timeout=30, isolation_level=None, check_same_thread=False
        )
        self._conn.execute("pragma journal_mode = wal")
        self._conn.execute("pragma synchronous = normal")
        self._conn.execute(_SCHEMA)
        self._conn.execute(_FOLDER_SCHEMA)

    def folder(self, root: str) -> FolderSnapshot | None:
        """The snapshot of the folder (or single file) at this absolute path, if any."""
        self._settle()
        with self._lock:
            row = self._conn.execute(
                "select identity, names, stats, digests from folder_cache where root = ?", (root,)
            ).fetchone()
        if row is None:
            return None
        identity, names, stats, digests = row
        packed = array("q")
        packed.frombytes(stats)
        return FolderSnapshot(bytes(names), packed, bytes(digests), str(identity))

    def save_folder(self, root: str, snapshot: FolderSnapshot) -> None:
        """Replace the snapshot of the folder at this absolute path (a busy cache skips it)."""
        row = (
            root,
            snapshot.identity,
            snapshot.packed_names,
            snapshot.stats.tobytes(),
            snapshot.packed_digests,
        )
        self._settle()
        # SQLite lets go of the GIL while it writes: the caller stores bytes meanwhile. Not a
        # daemon: the interpreter waits for it at exit.
        saving = threading.Thread(target=self._save, args=(row,), name="shipyard-statcache")
        with self._saving_lock:  # started before anyone can wait for it
            saving.start()
            self._saving.append(saving)

    def _save(self, row: tuple[str, str, bytes, bytes, bytes]) -> None:
        # a busy cache is only a cache: skip this update
        with self._lock, contextlib.suppress(sqlite3.OperationalError):
            self._conn.execute("insert or replace into folder_cache values (?, ?, ?, ?, ?)", row)

    def _settle(self) -> None:
        """Wait for the snapshots being written, if any."""
        with self._saving_lock:
            saving = [thread for thread in self._saving if thread is not threading.current_thread()]
        for thread in saving:
            thread.join()
        with self._saving_lock:
            self._saving = [thread for thread in self._saving if thread.is_alive()]

    def lookup(self, paths: Sequence[str]) -> dict[str, tuple[int, int, int, str]]:
        """The cached entries of these absolute paths: path -> (size, mtime_ns, inode, digest).

        Plain tuples, not ``StatKey``: a re-add of 100,000 files compares them all.
        """
        self._settle()
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
        fresh = racy_after()
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
        """Close the cache file, once the snapshot being written is."""
        self._settle()
        with self._lock:
            self._conn.close()
