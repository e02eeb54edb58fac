"""Content objects: files stored once by digest, packed when small, chunked when large.

A file's identity is the BLAKE3 digest of its content. How its bytes are kept depends on its
size, so that both a folder of 100,000 tiny files and a 1 GiB table store fast and compactly:

- small files (up to ``PACK_MAX``) are concatenated into pack blobs of about ``PACK_TARGET``;
- medium files are one blob each;
- large files (over ``CHUNK_FROM``) are cut by content-defined chunking (FastCDC), each chunk
  a blob, so a table with a few rows changed or appended stores only the chunks around them.

The ``objects`` table maps each file digest to where its bytes are; ``object_chunks`` lists
a chunked file's pieces. Every read is verified against the file's digest.

Adding is built for speed: a small file is read once (the bytes hashed are kept for its
pack, up to ``_READ_AHEAD``), a large one is cut, hashed and stored in one pass after the
whole-file hash, and blobs are written on a background thread while the next bytes are read.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
import weakref
from array import array
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from itertools import accumulate
from pathlib import Path
from typing import Any

from blake3 import blake3
from sqlalchemy import Connection, select

from shipyard.domain.digests import format_digest
from shipyard.domain.ids import utcnow
from shipyard.errors import ConflictError, CorruptBlobError, NotFoundError, UnsafePathError
from shipyard.stores.artifacts.content import BlobInfo, ContentStore, hash_file
from shipyard.stores.metadata import SqlMetadataStore
from shipyard.stores.metadata.schema import object_chunks, objects
from shipyard.stores.statcache import StatCache

__all__ = [
    "CHUNK_FROM",
    "PACK_MAX",
    "LocalFile",
    "ObjectService",
    "StagedObjects",
    "StoredFile",
    "check_relative_path",
]

PACK_MAX = 256 * 1024
PACK_TARGET = 32 * 1024 * 1024
CHUNK_FROM = 16 * 1024 * 1024
CDC_AVG, CDC_MIN, CDC_MAX = 1024 * 1024, 256 * 1024, 4 * 1024 * 1024
# Digests per "already stored?" query: within SQLite's 32,766 and PostgreSQL's 65,535 bound
# parameters, and few statements for a folder of 100,000 files.
_QUERY_BATCH = 2_000
# The bytes of small files read while hashing are kept, up to this much, for the stage that
# follows, so that a new small file is read once.
_READ_AHEAD = 256 * 1024 * 1024
# Bytes handed to the background blob writer and not stored yet, at most.
_WRITE_AHEAD = PACK_TARGET

Progress = Callable[[int, int], None]  # (bytes done, bytes in all)


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


@dataclass(frozen=True, slots=True)
class StoredFile:
    """A file as stored: its name, size and content digest."""

    name: str
    size: int
    digest: str


@dataclass
class StagedObjects:
    """Files whose bytes are in the blob store, and the metadata rows still to commit."""

    files: list[StoredFile]
    object_rows: list[dict[str, Any]] = field(default_factory=list)
    chunk_rows: list[dict[str, Any]] = field(default_factory=list)
    new_bytes: int = 0


class _BlobWriter:
    """Stores blobs on one background thread, in order, while the caller reads and hashes on.

    Every blob of a stage goes through it, so one thread at a time uses the blob store. At
    most ``_WRITE_AHEAD`` bytes wait to be stored; each put's result goes to its ``then`` on
    the caller's thread, in the order of the puts. Once a put fails the ones after it are
    skipped, and leaving the block waits for the put in progress and drops the rest: nothing
    is written after a stage has failed.
    """

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="shipyard-store")
        self._pending: deque[tuple[Future[BlobInfo], Callable[[BlobInfo], None], int]] = deque()
        self._waiting = 0
        self._failed = False

    def put(
        self, size: int, store: Callable[[], BlobInfo], then: Callable[[BlobInfo], None]
    ) -> None:
        self._pending.append((self._pool.submit(self._run, store), then, size))
        self._waiting += size
        while self._waiting > _WRITE_AHEAD:
            self._next()

    def finish(self) -> None:
        while self._pending:
            self._next()

    def _run(self, store: Callable[[], BlobInfo]) -> BlobInfo:
        if self._failed:  # the caller raises the first failure; this is never seen
            raise CancelledError
        try:
            return store()
        except BaseException:
            self._failed = True
            raise

    def _next(self) -> None:
        future, then, size = self._pending.popleft()
        self._waiting -= size
        then(future.result())

    def __enter__(self) -> _BlobWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class _PackWriter:
    """Concatenates small files into pack blobs."""

    def __init__(
        self, content: ContentStore, writer: _BlobWriter, staged: StagedObjects, now: datetime
    ) -> None:
        self._content = content
        self._writer = writer
        self._staged = staged
        self._now = now
        self._pieces: list[bytes] = []
        self._size = 0
        self._members: list[tuple[str, int, int]] = []  # digest, offset, size

    def add(self, digest: str, data: bytes) -> None:
        self._members.append((digest, self._size, len(data)))
        self._pieces.append(data)
        self._size += len(data)
        if self._size >= PACK_TARGET:
            self.flush()

    def flush(self) -> None:
        if not self._members:
            return
        members, now, staged = self._members, self._now, self._staged

        def record(pack: BlobInfo) -> None:
            staged.new_bytes += pack.size if pack.new else 0
            staged.object_rows.extend(
                {
                    "digest": digest,
                    "size": size,
                    "storage": "pack",
                    "blob": pack.digest,
                    "offset": offset,
                    "created_at": now,
                }
                for digest, offset, size in members
            )

        data = b"".join(self._pieces)
        self._writer.put(len(data), partial(self._content.put_bytes, data), record)
        self._pieces = []
        self._size = 0
        self._members = []


class ObjectService:
    """Stores local files as content objects and reads them back verified."""

    def __init__(
        self, metadata: SqlMetadataStore, content: ContentStore, stat_cache: StatCache | None
    ) -> None:
        self._metadata = metadata
        self._content = content
        self._stat_cache = stat_cache
        # The bytes of small files the last ``hash`` read, by digest, for the ``stage`` that
        # usually follows. Any stage may use them (they hash to their key). The next hash or
        # stage drops them, and so does the end of the hashed files' list: an add that stages
        # nothing (its content is stored already) holds no memory after it returns.
        self._read_ahead: dict[str, bytes] = {}

    # -- writing ------------------------------------------------------------------------

    def hash(self, files: Sequence[LocalFile]) -> tuple[list[StoredFile], int]:
        """Digest every file, from the stat cache where the file is unchanged.

        Returns:
            The files with their digests, and how many had to be hashed.

        Raises:
            NotFoundError: if a file vanished.
        """
        digests, hashed = self._digests(files)
        stored = [StoredFile(f.name, size, d) for f, (size, d) in zip(files, digests, strict=True)]
        return stored, hashed

    def stage(
        self,
        files: Sequence[LocalFile],
        stored: Sequence[StoredFile],
        *,
        progress: Progress | None = None,
    ) -> StagedObjects:
        """Store the bytes of the files that are not stored objects yet.

        Nothing is visible in the metadata until ``commit`` runs in the caller's transaction;
        blobs written for a stage that is never committed are garbage that ``gc`` collects.

        Args:
            files: the local files.
            stored: their digests, from ``hash``.
            progress: called with (bytes done, bytes in all).
        """
        read_ahead, self._read_ahead = self._read_ahead, {}
        staged = StagedObjects(list(stored))
        known = self.known({f.digest for f in stored})
        total = sum(f.size for f in stored)
        done = 0
        now = utcnow()
        with _BlobWriter() as writer:
            packs = _PackWriter(self._content, writer, staged, now)
            for local, entry in zip(files, stored, strict=True):
                done += entry.size
                if entry.digest in known:
                    continue
                known.add(entry.digest)
                if entry.size <= PACK_MAX:
                    data = read_ahead.pop(entry.digest, None)
                    if data is None:
                        data = _read_checked(os.fspath(local.location), entry.size, entry.digest)
                    packs.add(entry.digest, data)
                elif entry.size <= CHUNK_FROM:
                    self._put_whole(writer, local.path, entry, staged, now)
                else:
                    self._put_chunked(writer, local.path, entry.digest, entry.size, staged, now)
                if progress is not None:
                    progress(done, total)
            packs.flush()
            writer.finish()
        if progress is not None:
            progress(total, total)
        return staged

    def commit(self, conn: Connection, staged: StagedObjects) -> None:
        """Record staged objects inside the caller's write transaction."""
        self._metadata.insert_ignore(conn, objects, staged.object_rows)
        self._metadata.insert_ignore(conn, object_chunks, staged.chunk_rows)

    def known(self, digests: set[str]) -> set[str]:
        """Which of these digests are stored objects already."""
        found: set[str] = set()
        ordered = sorted(digests)
        with self._metadata.read() as conn:
            for start in range(0, len(ordered), _QUERY_BATCH):
                batch = ordered[start : start + _QUERY_BATCH]
                query = select(objects.c.digest).where(objects.c.digest.in_(batch))
                found.update(conn.execute(query).scalars())
        return found

    def _digests(self, files: Sequence[LocalFile]) -> tuple[list[tuple[int, str]], int]:
        # The hot loop of adding 100,000 files: plain tuples, no objects per file.
        paths = [os.fspath(f.location) for f in files]
        cache = self._stat_cache
        cached = cache.lookup(paths) if cache is not None else {}
        result: list[tuple[int, str]] = []
        fresh: list[tuple[str, int, int, int, str]] = []  # path, size, mtime_ns, inode, digest
        read_ahead: dict[str, bytes] = {}
        budget = _READ_AHEAD
        for local, path in zip(files, paths, strict=True):
            if local.stat is not None:
                size, mtime_ns, inode = local.stat
            else:
                try:
                    info = os.stat(path)  # noqa: PTH116 - a Path per file costs more than its stat
                except FileNotFoundError:
                    raise NotFoundError(f"file {path} does not exist") from None
                size, mtime_ns, inode = info.st_size, info.st_mtime_ns, info.st_ino
            hit = cached.get(path)
            if hit is not None and hit[0] == size and hit[1] == mtime_ns and hit[2] == inode:
                result.append((size, hit[3]))
                continue
            if size <= PACK_MAX:
                data = _read_small(path, size)
                digest = format_digest(blake3(data).hexdigest())
                if len(data) <= min(budget, PACK_MAX):
                    read_ahead[digest] = data
                    budget -= len(data)
                result.append((len(data), digest))
            else:
                digest, hashed_size = _hash_large(path)
                result.append((hashed_size, digest))
            fresh.append((path, size, mtime_ns, inode, digest))
        if cache is not None:
            cache.update(fresh)
        self._read_ahead = read_ahead
        if read_ahead:
            weakref.finalize(files[0], self._forget, read_ahead)
        return result, len(fresh)

    def _forget(self, read_ahead: dict[str, bytes]) -> None:
        read_ahead.clear()
        if self._read_ahead is read_ahead:
            self._read_ahead = {}

    def _put_whole(
        self,
        writer: _BlobWriter,
        path: Path,
        entry: StoredFile,
        staged: StagedObjects,
        now: datetime,
    ) -> None:
        def record(info: BlobInfo) -> None:
            if info.digest != entry.digest:
                raise ConflictError(f"file {path} changed while it was being stored; add it again")
            staged.new_bytes += info.size if info.new else 0
            staged.object_rows.append(
                {
                    "digest": entry.digest,
                    "size": info.size,
                    "storage": "blob",
                    "blob": info.digest,
                    "offset": None,
                    "created_at": now,
                }
            )

        writer.put(entry.size, partial(self._content.put_file, path), record)

    def _put_chunked(
        self,
        writer: _BlobWriter,
        path: Path,
        digest: str,
        size: int,
        staged: StagedObjects,
        now: datetime,
    ) -> None:
        from pyfastcdc import FastCDC

        def record(seq: int) -> Callable[[BlobInfo], None]:
            def then(info: BlobInfo) -> None:
                staged.new_bytes += info.size if info.new else 0
                staged.chunk_rows.append(
                    {"object": digest, "seq": seq, "chunk": info.digest, "size": info.size}
                )

            return then

        chunker = FastCDC(CDC_AVG, min_size=CDC_MIN, max_size=CDC_MAX)
        whole = blake3()
        for seq, chunk in enumerate(chunker.cut_file(str(path))):
            # A copy, as a snapshot: chunk.data maps the file, which a writer may change
            # between the chunk's hash and its write; the bytes hashed are the bytes stored.
            data = bytes(chunk.data)
            whole.update(data)
            writer.put(len(data), partial(self._content.put_bytes, data), record(seq))
        if format_digest(whole.hexdigest()) != digest:
            raise ConflictError(f"file {path} changed while it was being stored; add it again")
        staged.object_rows.append(
            {
                "digest": digest,
                "size": size,
                "storage": "chunks",
                "blob": None,
                "offset": None,
                "created_at": now,
            }
        )

    # -- reading ------------------------------------------------------------------------

    def iter_bytes(self, digest: str) -> Iterator[bytes]:
        """The content of an object in pieces; raises ``CorruptBlobError`` on a mismatch.

        Raises:
            NotFoundError: if no object has this digest.
            CorruptBlobError: if the stored bytes do not hash to the digest.
        """
        with self._metadata.read() as conn:
            row = conn.execute(select(objects).where(objects.c.digest == digest)).first()
            if row is None:
                raise NotFoundError(f"no stored file has digest {digest}")
            chunks = []
            if row.storage == "chunks":
                query = (
                    select(object_chunks.c.chunk)
                    .where(object_chunks.c.object == digest)
                    .order_by(object_chunks.c.seq)
                )
                chunks = list(conn.execute(query).scalars())
        hasher = blake3()
        if row.storage == "pack":
            pieces: Iterator[bytes] = iter(
                [self._content.read_range(row.blob, row.offset, row.size)]
            )
        elif row.storage == "blob":
            pieces = _stream(self._content, row.blob)
        else:
            pieces = (self._content.read_bytes(chunk) for chunk in chunks)
        for piece in pieces:
            hasher.update(piece)
            yield piece
        actual = format_digest(hasher.hexdigest())
        if actual != digest:
            raise CorruptBlobError(digest, actual)

    def read_bytes(self, digest: str) -> bytes:
        """The whole verified content of an object."""
        return b"".join(self.iter_bytes(digest))

    # -- manifests: the list of files of a version ----------------------------------------

    def put_manifest(self, stored: Sequence[StoredFile]) -> str:
        """Store the file list of a version (a small Parquet blob); returns its digest."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        sizes = array("q", [f.size for f in stored])
        table = pa.Table.from_arrays(
            [
                _string_array([check_relative_path(f.name) for f in stored]),
                pa.Array.from_buffers(pa.int64(), len(sizes), [None, pa.py_buffer(sizes)]),
                _string_array([f.digest for f in stored]),
            ],
            names=["path", "size", "digest"],
        )
        sink = io.BytesIO()
        pq.write_table(table, sink, compression="zstd")
        return self._content.put_bytes(sink.getvalue()).digest

    def read_manifest(self, digest: str) -> list[StoredFile]:
        """The file list a manifest blob holds, each path checked again."""
        import pyarrow.parquet as pq

        table = pq.read_table(io.BytesIO(self._content.read_bytes(digest)))
        return [
            StoredFile(check_relative_path(r["path"]), r["size"], r["digest"])
            for r in table.to_pylist()
        ]

    def export_all(self, files: Sequence[StoredFile], dest: Path) -> list[Path]:
        """Write files under ``dest``, each verified against its digest."""
        written = []
        for entry in files:
            target = Path(dest).joinpath(*check_relative_path(entry.name).split("/"))
            self.export(entry.digest, target)
            written.append(target)
        return written

    def materialise(self, manifest: str, target: Path, scratch: Path) -> Path:
        """A local folder with a manifest's files, verified; built once, then reused.

        Concurrent callers may both build it; the first rename wins and both use it.
        """
        if (target / ".complete").exists():
            return target / "files"
        scratch.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix="materialise-", dir=scratch))
        try:
            self.export_all(self.read_manifest(manifest), staging / "files")
            (staging / ".complete").touch()
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                staging.rename(target)
            except OSError:  # another process finished first: its copy is as good
                if not (target / ".complete").exists():
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return target / "files"

    def export(self, digest: str, dest: Path) -> None:
        """Write an object to a local file; it appears only once verified."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.part")
        try:
            with tmp.open("wb") as out:
                for piece in self.iter_bytes(digest):
                    out.write(piece)
            tmp.replace(dest)
        finally:
            tmp.unlink(missing_ok=True)


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


def _read_small(path: str, size: int) -> bytes:
    """The content of a small file, ``size`` being what ``stat`` said; one read when it holds."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise NotFoundError(f"file {path} does not exist") from None
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


def _hash_large(path: str) -> tuple[str, int]:
    try:
        return hash_file(Path(path))
    except FileNotFoundError:
        raise NotFoundError(f"file {path} does not exist") from None


def _read_checked(path: str, size: int, digest: str) -> bytes:
    data = _read_small(path, size)
    if format_digest(blake3(data).hexdigest()) != digest:
        raise ConflictError(f"file {path} changed while it was being stored; add it again")
    return data


def _string_array(values: list[str]) -> Any:
    """A pyarrow string array built from its buffers.

    ``pa.array`` on a list asks pyarrow's pandas shim whether the list is array-like, which
    imports pandas: 0.2-0.4 s added to every add of plain files.
    """
    import pyarrow as pa

    encoded = [value.encode() for value in values]
    try:
        offsets = array("i", [0, *accumulate(map(len, encoded))])
    except OverflowError:  # over 2 GiB of text: past 32-bit offsets, pyarrow splits it
        return pa.array(values, pa.string())
    buffers = [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded))]
    return pa.Array.from_buffers(pa.string(), len(values), buffers)


def _stream(content: ContentStore, blob: str) -> Iterator[bytes]:
    with content.open(blob) as reader:
        while piece := reader.read(1024 * 1024):
            yield piece
        reader.read()  # end of stream: the blob's own digest check
