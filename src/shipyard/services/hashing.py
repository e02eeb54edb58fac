"""Local files to store, in and their digests out: the reading and hashing side of adding.

A ``LocalFile`` is one file; a ``FileSet`` is a folder walk in columns (names and stat
results, no object per file). ``hash_many`` reads and hashes files on two threads: the reads
and BLAKE3 release the GIL. A small file is read once and its bytes are kept for its pack; a
large one is cut while it is read (``chunking.plan_chunks``), and its chunks are stored then
too when a chunk sink is given. ``DigestedFiles`` is the result in
columns, with the content identity of the whole set.
"""

from __future__ import annotations

import os
import threading
from array import array
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import overload

from blake3 import blake3

from shipyard.domain.digests import format_digest
from shipyard.errors import ConflictError, NotFoundError, UnsafePathError
from shipyard.services.chunking import CHUNK_FROM, ChunkPlan, ChunkSink, plan_chunks
from shipyard.services.page_cache import advise, held
from shipyard.stores.artifacts.content import hash_file

__all__ = [
    "PACK_MAX",
    "DigestedFiles",
    "FileSet",
    "Hashed",
    "LocalFile",
    "StoredFile",
    "check_relative_path",
    "check_relative_paths",
    "content_identity",
    "hash_many",
    "names_of",
    "read_checked",
    "total_size",
]

PACK_MAX = 256 * 1024  # files up to this size are packed, and read whole when hashed
# Files to hash are handed to the hashing threads in batches of at most this many files or
# bytes; below ``_THREADED_FROM`` files the caller's thread does it all. Every open, read and
# hash releases the GIL, and with more threads than cores handing it on costs more than the
# reads they would overlap (measured: 8 threads took twice as long as 2 on 2 cores). Small
# files get one hashing thread (beside the caller's, which stores what it hands back): for
# them the GIL changes hands three or four times a file, and a second thread made 100,000
# files of 4 KiB take 3.0-3.4 s instead of 2.1 s from the page cache (4.4 s against 4.3 s
# from the disk, where the reads are asked for ahead). Big files are hashed on
# two: there the hash itself, without the GIL, is the work.
_BATCH_FILES, _BATCH_BYTES, _THREADED_FROM = 512, 16 * 1024 * 1024, 64
_HASH_THREADS = 2  # for files of PACK_MAX bytes or more on average; 1 for smaller ones
# From a cold page cache, small files are read one request at a time per thread. So the
# hashing opens the next ones ahead and asks the disk for them (``posix_fadvise``), this many
# files ahead, within a quarter of the process's limit on open files: many requests are in
# flight, and each file is opened once (``_Prefetch``). For 100,000 files of 4 KiB after the
# page cache was dropped, the hashing took 2.2 s with a helper thread asking ahead and the
# hashing opening each file again, 1.9 s with the helper handing its open files over, and
# 1.6 s on the hashing's own thread.
_PREFETCH_AHEAD = 512
_PROBES = 8  # files looked at, without waiting for the disk, to tell a cold cache
_READ_FLAGS = os.O_RDONLY | os.O_CLOEXEC
_NOATIME = getattr(os, "O_NOATIME", 0)  # Linux only
# What a name in a version may not hold, looked for in all names joined by NUL at once.
_UNSAFE_IN_JOINED = (
    *("\\", "\0\0", "\0/", "/\0", "//", "/./", "/../"),
    *("\0./", "\0../", "/.\0", "/..\0", "\0.\0", "\0..\0"),
)


@dataclass(frozen=True, slots=True, weakref_slot=True)
class LocalFile:
    """A local file to store, and the name it has inside what is being stored.

    Args:
        location: where the file is, as a path or a string (a folder walk makes strings:
            100,000 ``Path`` objects cost more than the rest of a no-op re-add).
        name: its ``/``-separated name inside what is being stored.
        stat: the file's (size, mtime_ns, inode), symlinks followed, when the caller has
            them already, as a folder walk does; hashing then does not stat the file again.
            A plain tuple: 100,000 ``stat_result`` objects slow the garbage collector.
    """

    location: str | os.PathLike[str]
    name: str
    stat: tuple[int, int, int] | None = field(default=None, compare=False, repr=False)

    @property
    def path(self) -> Path:
        """Where the file is, as a ``Path``."""
        return Path(self.location)


class FileSet(Sequence[LocalFile]):
    """Local files in columns: names and stat results, no object per file.

    A folder walk makes one: 100,000 ``LocalFile`` objects cost more than a no-op re-add may
    take in all. Indexing it gives ``LocalFile`` objects, one at a time.

    Args:
        root: the absolute folder the files are in; file ``i`` is ``root/names[i]``.
        names: the files' ``/``-separated names inside the folder, in walk order.
        stats: size, mtime_ns, inode and ctime_ns of every file (symlinks followed),
            flattened: four values per file.
        key: the path the stat cache keeps this set's snapshot under (the folder or file);
            None for files that are a fresh copy each time (a download), never cached.
        locations: where each file is, when that is not ``root/name`` (a single file
            reached through a symlink).
    """

    __slots__ = ("__weakref__", "key", "locations", "names", "root", "stats")

    def __init__(
        self,
        root: str,
        names: list[str],
        stats: array[int],
        key: str | None,
        locations: list[str] | None = None,
    ) -> None:
        if len(stats) != 4 * len(names):
            raise ValueError("a FileSet needs four stat values for every name")
        self.root = root.rstrip("/") or "/"
        self.names = names
        self.stats = stats
        self.key = key
        self.locations = locations

    def location(self, index: int) -> str:
        """Where file ``index`` is."""
        if self.locations is not None:
            return self.locations[index]
        root = self.root
        return f"{root}{self.names[index]}" if root == "/" else f"{root}/{self.names[index]}"

    def locations_of(self, indices: Iterable[int]) -> list[str]:
        """Where each of these files is."""
        if self.locations is not None:
            return [self.locations[i] for i in indices]
        names, head = self.names, "" if self.root == "/" else self.root
        return [f"{head}/{names[i]}" for i in indices]

    def sizes(self) -> list[int]:
        """Every file's size, as its stat said."""
        return self.stats[0::4].tolist()

    def __len__(self) -> int:
        return len(self.names)

    @overload
    def __getitem__(self, index: int) -> LocalFile: ...

    @overload
    def __getitem__(self, index: slice) -> list[LocalFile]: ...

    def __getitem__(self, index: int | slice) -> LocalFile | list[LocalFile]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self.names)
        name = self.names[index]  # raises IndexError past the end, which ends iteration
        size, mtime_ns, inode = self.stats[4 * index : 4 * index + 3]
        return LocalFile(self.location(index), name, (size, mtime_ns, inode))


@dataclass(frozen=True, slots=True)
class StoredFile:
    """A file as stored: its name, size and content digest."""

    name: str
    size: int
    digest: str


@dataclass(frozen=True, slots=True)
class DigestedFiles:
    """Files with their digests, in columns, and the content identity of them all.

    Attributes:
        names: the files' names, in the order they were given.
        sizes: their sizes as hashed.
        digests: their content digests.
        hashed: how many had to be read (the others came from the stat cache).
        identity: ``content_identity`` of the files: equal for equal content.
    """

    names: list[str]
    sizes: list[int]
    digests: list[str]
    hashed: int
    identity: str

    def stored(self) -> list[StoredFile]:
        """The files as ``StoredFile`` objects."""
        return list(map(StoredFile, self.names, self.sizes, self.digests))

    def __len__(self) -> int:
        return len(self.names)


def names_of(files: Sequence[LocalFile]) -> list[str]:
    """The files' names; a ``FileSet`` has them in a column already."""
    return files.names if isinstance(files, FileSet) else [f.name for f in files]


def total_size(files: Sequence[LocalFile]) -> int:
    """The files' size in bytes, from their stat results (taken now where missing)."""
    if isinstance(files, FileSet):
        return sum(files.sizes())
    return sum(f.stat[0] if f.stat is not None else f.path.stat().st_size for f in files)


def check_relative_path(name: str) -> str:
    """A file's path inside a version: relative, no '..', no NUL, no backslash.

    Raises:
        UnsafePathError: for anything else.
    """
    if not name or name.startswith("/") or "\\" in name or "\0" in name:
        raise UnsafePathError(name, "a file inside a version has a plain relative path")
    if any(part in ("", ".", "..") for part in name.split("/")):
        raise UnsafePathError(name, "'.', '..' and empty segments are not allowed")
    return name


def check_relative_paths(names: list[str]) -> None:
    """``check_relative_path`` for many names, looked at all at once in C where they are fine.

    Raises:
        UnsafePathError: naming the first bad one.
    """
    joined = "\0" + "\0".join(names) + "\0"
    # one NUL between names and none inside them, and no bad piece anywhere
    if joined.count("\0") == len(names) + 1 and not any(bad in joined for bad in _UNSAFE_IN_JOINED):
        return
    for name in names:
        check_relative_path(name)


def content_identity(names: Sequence[str], digests: Sequence[str]) -> str:
    """The identity of a set of files: ``domain.datasets.content_digest`` of their entries.

    The same bytes are hashed (sorted paths, each ``path NUL digest LF``), built in one join
    instead of one object per file.
    """
    pairs = sorted(zip(names, digests, strict=True))
    hasher = blake3()
    hasher.update("".join([f"{name}\0{digest}\n" for name, digest in pairs]).encode())
    return format_digest(hasher.hexdigest())


Hashed = tuple[int, str, bytes | ChunkPlan | None]  # size as hashed, digest, what to keep


def _hash_one(path: str, size: int, sink: ChunkSink | None = None, fd: int | None = None) -> Hashed:
    """(size as hashed, digest, a small file's bytes or a large one's chunk plan).

    ``fd``: the small file opened already (``_Prefetch``); it is closed here.
    """
    if size <= PACK_MAX:
        data = _read_small(path, size, fd)
        return len(data), format_digest(blake3(data).hexdigest()), data
    if size > CHUNK_FROM:  # cut (and with a sink, stored) while it is read
        plan = plan_chunks(path, sink)
        return plan.size, plan.digest, plan
    digest, hashed_size = _hash_large(path)
    return hashed_size, digest, None


def _hash_batch(
    paths: list[str],
    sizes: list[int],
    sink: ChunkSink | None,
    prefetch: _Prefetch | None = None,
    start: int = 0,
) -> list[Hashed]:
    """Hash files ``start`` on of a list; ``prefetch`` may have opened them already."""
    if prefetch is None:
        return [_hash_one(path, size, sink) for path, size in zip(paths, sizes, strict=True)]
    take = prefetch.take
    return [
        _hash_one(path, size, sink, take(start + k))
        for k, (path, size) in enumerate(zip(paths, sizes, strict=True))
    ]


def _batches(sizes: list[int]) -> Iterator[tuple[int, int]]:
    """(start, end) of runs of files of at most ``_BATCH_FILES`` files or ``_BATCH_BYTES``."""
    start, total = 0, 0
    for i, size in enumerate(sizes):
        if i > start and (i - start >= _BATCH_FILES or total + size > _BATCH_BYTES):
            yield start, i
            start, total = i, 0
        total += size
    if start < len(sizes):
        yield start, len(sizes)


def hash_many(
    paths: list[str], sizes: list[int], sink: ChunkSink | None = None
) -> Iterable[Hashed]:
    """(size as hashed, digest, what to keep) of every file, in order; on threads if many.

    What is kept is a small file's bytes or a large one's chunk plan. ``sink``, if given,
    stores the chunks of large files as they are read (see ``chunking.plan_chunks``).

    Opening, reading and hashing release the GIL, so the threads keep every core and the
    disk busy. At most two batches per thread are in flight, which bounds the bytes held.
    """
    if len(paths) < _THREADED_FROM:
        for path, size in zip(paths, sizes, strict=True):
            yield _hash_one(path, size, sink)
        return
    prefetch = _Prefetch(paths, sizes) if _cold(paths, sizes) else None
    threads = _HASH_THREADS if sum(sizes) >= PACK_MAX * len(sizes) else 1
    with ThreadPoolExecutor(threads, thread_name_prefix="shipyard-hash") as pool:
        spans = _batches(sizes)
        pending: deque[Future[list[Hashed]]] = deque(
            pool.submit(_hash_batch, paths[a:b], sizes[a:b], sink, prefetch, a)
            for a, b in islice(spans, 2 * threads)
        )
        try:
            while pending:
                done = pending.popleft().result()
                for a, b in islice(spans, 1):
                    pending.append(
                        pool.submit(_hash_batch, paths[a:b], sizes[a:b], sink, prefetch, a)
                    )
                yield from done
        finally:
            for future in pending:
                future.cancel()
            if prefetch is not None:
                prefetch.stop()


def _cold(paths: list[str], sizes: list[int]) -> bool:
    """Whether some small files, probed across the list, are not in the page cache."""
    step = max(1, len(paths) // _PROBES)
    for i in range(0, len(paths), step):
        if 0 < sizes[i] <= PACK_MAX and not _cached(paths[i]):
            return True
    return False


def _cached(path: str) -> bool:
    """Whether a file's first byte is in the page cache (a read that may not wait says so)."""
    try:
        fd = os.open(path, _READ_FLAGS | _NOATIME)
    except OSError:  # not ours or gone: the hashing reports it
        return True
    try:
        return held(fd, 0)
    finally:
        os.close(fd)


class _Prefetch:
    """Opens small files ahead of the hashing and asks the disk for their bytes.

    The hashing ``take``s each file by its index. Before it hands one out, the files up to
    ``_PREFETCH_AHEAD`` further are opened, each asked for (``posix_fadvise``) and kept
    open: by the time the hashing reaches them their bytes are in memory, and each is opened
    once. This runs on the hashing's own thread, a few dozen files at a time: a helper
    thread handing files over cost more in GIL hand-offs than it overlapped (measured). A
    file that cannot be opened ahead is ``None`` to the hashing, which opens it itself and
    reports why it cannot. ``stop`` closes whatever no one took.
    """

    def __init__(self, paths: list[str], sizes: list[int]) -> None:
        self._paths, self._sizes = paths, sizes
        self._slots: list[int | None] = [None] * len(paths)  # open, not taken yet
        self._opened = 0  # files before this one were opened ahead (or skipped)
        self._ahead = max(1, min(_PREFETCH_AHEAD, _open_files_limit() // 4))
        self._step = max(1, self._ahead // 8)
        self._flags = _READ_FLAGS | _NOATIME
        self._stopped = False
        self._lock = threading.Lock()  # two hashing threads for bigger files

    def take(self, index: int) -> int | None:
        """File ``index`` opened, for the caller to read and close; None: open it yourself."""
        if index + self._ahead >= self._opened and not self._stopped:
            with self._lock:
                self._open_to(min(len(self._paths), index + self._ahead + self._step))
        with self._lock:  # after ``stop``: the fresh, empty list, never one being closed
            slots = self._slots
            fd, slots[index] = slots[index], None
        return fd

    def stop(self) -> None:
        """Close the files no one took; ``take`` opens nothing more."""
        with self._lock:
            self._stopped = True
            slots, self._slots = self._slots, [None] * len(self._slots)
        for fd in slots:
            if fd is not None:
                os.close(fd)

    def _open_to(self, end: int) -> None:
        paths, sizes, slots = self._paths, self._sizes, self._slots
        for index in range(self._opened, end):
            if not 0 < sizes[index] <= PACK_MAX or self._stopped:
                continue
            try:
                fd = os.open(paths[index], self._flags)
            except PermissionError:  # O_NOATIME is for the file's owner only
                self._flags = _READ_FLAGS
                continue
            except OSError:  # the hashing opens it itself and reports it
                continue
            try:
                advise(fd, 0, 0, "POSIX_FADV_WILLNEED")  # none on macOS: opened ahead all the same
            except OSError:
                os.close(fd)
                continue
            slots[index] = fd
        self._opened = max(self._opened, end)


def _open_files_limit() -> int:
    """The process's limit on open files (its soft limit), or 1,024 where none is told."""
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (ImportError, OSError, ValueError):
        return 1024
    return soft if soft > 0 else 1024


def _read_small(path: str, size: int, fd: int | None = None) -> bytes:
    """The content of a small file, ``size`` being what ``stat`` said; one read when it holds.

    ``fd``: the file opened already; it is closed here all the same.
    """
    if fd is None:
        fd = _open_small(path)
    try:
        data = os.read(fd, size + 1)
        if len(data) == size:  # all of it, as git reads a file: by its stat size
            return data
        pieces = [data]  # the file changed since its stat: read to the end
        while piece := os.read(fd, 1024 * 1024):
            pieces.append(piece)
        return b"".join(pieces)
    finally:
        os.close(fd)


def _open_small(path: str) -> int:
    try:
        # No access-time update: the first read of a freshly written file would otherwise
        # write its inode back, which for 100,000 new files costs more than reading them.
        return os.open(path, _READ_FLAGS | _NOATIME)
    except PermissionError:  # O_NOATIME is for the file's owner only
        return os.open(path, _READ_FLAGS)
    except FileNotFoundError:
        raise NotFoundError(f"file {path} does not exist") from None


def _hash_large(path: str) -> tuple[str, int]:
    try:
        return hash_file(Path(path))
    except FileNotFoundError:
        raise NotFoundError(f"file {path} does not exist") from None


def read_checked(path: str, size: int, digest: str) -> bytes:
    """A small file's bytes, read again, which must still hash to ``digest``.

    Raises:
        ConflictError: if the file changed since it was hashed.
    """
    data = _read_small(path, size)
    if format_digest(blake3(data).hexdigest()) != digest:
        raise ConflictError(f"file {path} changed while it was being stored; add it again")
    return data
