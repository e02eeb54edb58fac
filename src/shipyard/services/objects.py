"""Content objects: files stored once by digest, packed when small, chunked when large.

A file's identity is the BLAKE3 digest of its content. How its bytes are kept depends on its
size, so that both a folder of 100,000 tiny files and a 1 GiB table store fast and compactly:

- small files (up to ``PACK_MAX``) are concatenated into pack blobs of about ``PACK_TARGET``;
- medium files are one blob each;
- large files (over ``CHUNK_FROM``) are cut by content-defined chunking (FastCDC), each chunk
  a blob, so a table with a few rows changed or appended stores only the chunks around them.

The ``objects`` table maps each file digest to where its bytes are; ``object_chunks`` lists
a chunked file's pieces. Every read is verified against the file's digest.

Adding is built for speed: a folder walk is a ``FileSet`` (names and stat results in columns,
no object per file) that the stat cache compares with its snapshot of the folder in C; files
that must be hashed are read and hashed on two threads (the reads and BLAKE3 release the
GIL); a small file is read once (the bytes hashed are kept for its pack, up to
``_READ_AHEAD``, or with ``store_small`` packed right away: ``packing.EarlyPacks``); a large
one is hashed whole, cut, and (into a local store) its new chunks written in one read
(``chunking``); else the stage reads again only the chunks the store lacks. Blobs are
written on a background thread while the next bytes are read (``packing``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

from blake3 import blake3
from sqlalchemy import Connection, select
from sqlalchemy.exc import IntegrityError

from shipyard.domain.digests import format_digest
from shipyard.errors import ConflictError, CorruptBlobError, NotFoundError
from shipyard.services.chunking import CHUNK_FROM, ChunkPlan, plan_chunks, read_chunk
from shipyard.services.hashing import (
    PACK_MAX,
    DigestedFiles,
    FileSet,
    LocalFile,
    StoredFile,
    check_relative_path,
    check_relative_paths,
    content_identity,
    hash_many,
    read_checked,
)
from shipyard.services.manifests import decode_manifest, encode_manifest
from shipyard.services.packing import BlobWriter, EarlyPacks, PackWriter, StagedObjects
from shipyard.stores.artifacts.content import BlobInfo, ContentStore
from shipyard.stores.artifacts.local import LocalBlobStore
from shipyard.stores.metadata import SqlMetadataStore
from shipyard.stores.metadata.schema import object_chunks, objects
from shipyard.stores.statcache import FolderSnapshot, StatCache

__all__ = [
    "CHUNK_FROM",
    "PACK_MAX",
    "DigestedFiles",
    "FileSet",
    "LocalFile",
    "ObjectService",
    "StagedObjects",
    "StoredFile",
    "check_relative_path",
    "check_relative_paths",
    "content_identity",
]

# Digests per "already stored?" query: within SQLite's 32,766 and PostgreSQL's 65,535 bound
# parameters, and few statements for a folder of 100,000 files.
_QUERY_BATCH = 2_000
# From this many new objects, their rows go in with one executemany of plain tuples.
_BULK_FROM = 256
_OBJECT_COLUMNS = ("digest", "size", "storage", "blob", "offset", "created_at")
# The bytes of small files read while hashing are kept, up to this much, for the stage that
# follows, so that a new small file is read once.
_READ_AHEAD = 512 * 1024 * 1024
_PROGRESS_EVERY = 1024  # files hashed between two progress calls
Progress = Callable[[int, int], None]  # (done, in all): bytes when storing, files when hashing


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
        # The chunk plans of the large files the last ``hash`` read, by digest, likewise.
        self._plans: dict[str, ChunkPlan] = {}
        # The small files the last ``hash`` on this thread packed already (``store_small``):
        # per thread, so that two adds at once each stage and count only their own packs.
        self._early = threading.local()
        # Into a local store, a large file's chunks are stored as they are read and hashed:
        # writing is as fast as reading, so the file is read once. A remote store gets them
        # in ``stage``, where uploads overlap the reading of the next chunks.
        self._sink = self._store_chunk if isinstance(content.blobs, LocalBlobStore) else None

    # -- writing ------------------------------------------------------------------------

    def hash(self, files: Sequence[LocalFile]) -> tuple[list[StoredFile], int]:
        """Digest every file, from the stat cache where the file is unchanged.

        Returns:
            The files with their digests, and how many had to be hashed.

        Raises:
            NotFoundError: if a file vanished.
        """
        if isinstance(files, FileSet):
            digested = self.digest(files)
            return digested.stored(), digested.hashed
        digests, hashed = self._digests(files)
        stored = [StoredFile(f.name, size, d) for f, (size, d) in zip(files, digests, strict=True)]
        return stored, hashed

    def digest(
        self,
        files: Sequence[LocalFile],
        *,
        store_small: bool = False,
        progress: Progress | None = None,
    ) -> DigestedFiles:
        """Digest every file, in columns, with the content identity of them all.

        A ``FileSet`` is compared with the stat cache's snapshot of its folder: when no name
        and no stat result changed, digests and identity come from the snapshot as they are.

        Args:
            files: the local files.
            store_small: into a local store, pack the small files the store lacks while the
                others are hashed (``EarlyPacks``), for the ``stage`` that follows: for a
                caller that stores whatever it hashes, as long as nothing between the two
                can refuse the files (a table is profiled first).
            progress: called with (files done, files in all) as the hashing goes on.

        Raises:
            NotFoundError: if a file vanished.
        """
        if isinstance(files, FileSet):
            return self._digest_set(files, store_small=store_small, progress=progress)
        digests, hashed = self._digests(files)
        if progress is not None:
            progress(len(files), len(files))
        names = [f.name for f in files]
        sizes = [size for size, _ in digests]
        hexes = [digest for _, digest in digests]
        return DigestedFiles(names, sizes, hexes, hashed, content_identity(names, hexes))

    def stale(self, files: Sequence[LocalFile]) -> bool:
        """Whether ``digest`` would read any of these files (the stat cache vouches for none).

        True unless the files are a ``FileSet`` whose snapshot matches in every name and stat.
        """
        cache = self._stat_cache
        if not isinstance(files, FileSet) or files.key is None or cache is None:
            return True
        snapshot = cache.folder(files.key)
        return snapshot is None or snapshot.changed(files.names, files.stats) != []

    def stage(
        self,
        files: Sequence[LocalFile],
        stored: Sequence[StoredFile] | DigestedFiles,
        *,
        progress: Progress | None = None,
    ) -> StagedObjects:
        """Store the bytes of the files that are not stored objects yet.

        Nothing is visible in the metadata until ``commit`` runs in the caller's transaction;
        blobs written for a stage that is never committed are garbage that ``gc`` collects.

        Args:
            files: the local files.
            stored: their digests, from ``hash`` or ``digest``.
            progress: called with (bytes done, bytes in all).
        """
        read_ahead, self._read_ahead = self._read_ahead, {}
        plans, self._plans = self._plans, {}
        early, self._early.staged = getattr(self._early, "staged", None), None
        if isinstance(stored, DigestedFiles):
            sizes, digests = stored.sizes, stored.digests
        else:
            stored = list(stored)
            sizes, digests = [f.size for f in stored], [f.digest for f in stored]
        if len(digests) != len(files):
            raise ValueError("stage needs one digest for every file")
        location: Callable[[int], str] = (
            files.location if isinstance(files, FileSet) else lambda i: os.fspath(files[i].location)
        )
        staged = StagedObjects(stored)
        packed = {row[0]: row for row in early.object_rows} if early is not None else {}
        if early is not None:  # this add packed them, on this thread
            staged.new_bytes += early.new_bytes
        known = self.known(set(digests).difference(packed))
        total = sum(sizes)
        done = 0
        with BlobWriter() as writer:
            packs = PackWriter(self._content, writer, staged)
            for i, (size, digest) in enumerate(zip(sizes, digests, strict=True)):
                done += size
                if digest in known:
                    continue
                known.add(digest)
                row = packed.get(digest)
                if row is not None:
                    staged.object_rows.append(row)
                elif size <= PACK_MAX:
                    data = read_ahead.pop(digest, None)
                    if data is None:
                        data = read_checked(location(i), size, digest)
                    packs.add(digest, data)
                elif size <= CHUNK_FROM:
                    self._put_whole(writer, Path(location(i)), digest, size, staged)
                else:
                    plan = plans.pop(digest, None)
                    self._put_chunked(writer, Path(location(i)), digest, staged, plan)
                if progress is not None:
                    progress(done, total)
            packs.flush()
            writer.finish()
        if progress is not None:
            progress(total, total)
        return staged

    def commit(self, conn: Connection, staged: StagedObjects) -> None:
        """Record staged objects inside the caller's write transaction."""
        rows = staged.object_rows
        now = staged.created_at
        if len(rows) >= _BULK_FROM:
            # One executemany of plain tuples, ``created_at`` converted once. A concurrent
            # add may have recorded some of the same objects since ``known``: then the rows
            # go in again, skipping those, after the savepoint is rolled back.
            convert = objects.c.created_at.type.bind_processor(conn.dialect)
            stamp = convert(now) if convert is not None else now
            if conn.dialect.name == "sqlite" and isinstance(stamp, datetime):
                stamp = stamp.isoformat(" ")  # what sqlite3 makes of it, made once, not per row
            try:
                with conn.begin_nested():
                    # in key order: SQLite's primary-key index grows at its end, not all over
                    values = sorted([(*row, stamp) for row in rows])
                    self._metadata.bulk_insert(conn, objects, _OBJECT_COLUMNS, values)
                rows = []
            except IntegrityError:
                pass
        if rows:
            self._metadata.insert_ignore(
                conn,
                objects,
                [dict(zip(_OBJECT_COLUMNS, (*row, now), strict=True)) for row in rows],
            )
        self._metadata.insert_ignore(conn, object_chunks, staged.chunk_rows)

    def known(self, digests: set[str]) -> set[str]:
        """Which of these digests are stored objects already."""
        return {row[0] for row in self._lookup("digest", digests)}

    def sizes(self, digests: set[str]) -> dict[str, int]:
        """The size of each of these digests that is a stored object."""
        return {row[0]: row[1] for row in self._lookup("digest, size", digests)}

    def _lookup(self, columns: str, digests: set[str]) -> list[Any]:
        """Rows of ``columns`` of the objects among ``digests``, in batches.

        Plain driver SQL: compiling an expanding IN of 2,000 digests 50 times costs more than
        the lookups themselves, and even for one digest building the statement costs more.
        """
        found: list[Any] = []
        ordered = sorted(digests)
        with self._metadata.read() as conn:
            dialect = conn.dialect
            mark = "?" if dialect.paramstyle == "qmark" else "%s"
            table = dialect.identifier_preparer.quote(objects.name)
            for start in range(0, len(ordered), _QUERY_BATCH):
                batch = tuple(ordered[start : start + _QUERY_BATCH])
                marks = ", ".join([mark] * len(batch))
                sql = f"SELECT {columns} FROM {table} WHERE digest IN ({marks})"
                found.extend(conn.exec_driver_sql(sql, batch))
        return found

    def _digests(self, files: Sequence[LocalFile]) -> tuple[list[tuple[int, str]], int]:
        # Files given one by one (run artifacts, downloads): the stat cache by path.
        paths = [os.fspath(f.location) for f in files]
        cache = self._stat_cache
        cached = cache.lookup(paths) if cache is not None else {}
        result: list[tuple[int, str]] = []
        todo: list[int] = []
        keys: list[tuple[int, int, int]] = []
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
            todo.append(len(result))
            keys.append((size, mtime_ns, inode))
            result.append((size, ""))
        fresh: list[tuple[str, int, int, int, str]] = []  # path, size, mtime_ns, inode, digest
        owner = files[0] if todo else files  # a list takes no weak reference; its first file does
        hashed = self._hash_files([paths[i] for i in todo], [k[0] for k in keys], owner)
        for i, (size, mtime_ns, inode), (hashed_size, digest) in zip(
            todo, keys, hashed, strict=True
        ):
            result[i] = (hashed_size, digest)
            fresh.append((paths[i], size, mtime_ns, inode, digest))
        if cache is not None:
            cache.update(fresh)
        return result, len(fresh)

    def _digest_set(
        self, files: FileSet, *, store_small: bool = False, progress: Progress | None = None
    ) -> DigestedFiles:
        """Digests of a folder walk: the snapshot's where nothing changed, else hashed."""
        cache = self._stat_cache
        if files.key is None:
            cache = None
        snapshot = cache.folder(files.key) if cache is not None and files.key else None
        names, stats = files.names, files.stats
        changed = snapshot.changed(names, stats) if snapshot is not None else None
        sizes = files.sizes()
        if snapshot is not None and changed == []:
            self._read_ahead, self._early.staged = {}, None
            return DigestedFiles(names, sizes, snapshot.digests(), 0, snapshot.identity)
        if snapshot is not None and changed is not None:
            digests = snapshot.digests()
            todo = changed
        else:  # names came or went: match the files by name
            digests = [""] * len(names)
            todo = []
            old = {name: j for j, name in enumerate(snapshot.names())} if snapshot else {}
            old_stats = snapshot.stats if snapshot is not None else stats
            old_digests = snapshot.digests() if snapshot is not None else []
            for i, name in enumerate(names):
                j = old.get(name)
                if j is not None and stats[4 * i : 4 * i + 4] == old_stats[4 * j : 4 * j + 4]:
                    digests[i] = old_digests[j]
                else:
                    todo.append(i)
        skipped = len(names) - len(todo)
        told = None if progress is None else partial(_told, progress, skipped, len(names))
        hashed = self._hash_files(
            files.locations_of(todo),
            [sizes[i] for i in todo],
            files,
            store_small=store_small,
            progress=told,
        )
        for i, (size, digest) in zip(todo, hashed, strict=True):
            sizes[i] = size
            digests[i] = digest
        identity = content_identity(names, digests)
        if cache is not None and files.key is not None:
            cache.save_folder(files.key, FolderSnapshot.of(names, stats, digests, identity))
        return DigestedFiles(names, sizes, digests, len(todo), identity)

    def _hash_files(
        self,
        paths: list[str],
        sizes: list[int],
        owner: object,
        *,
        store_small: bool = False,
        progress: Callable[[int], None] | None = None,
    ) -> list[tuple[int, str]]:
        """(size as hashed, digest) of each file; small files' bytes kept for the stage.

        The bytes are kept up to ``_READ_AHEAD`` in all, until the next hash or stage, or
        until ``owner`` (the files given) is dropped. With ``store_small``, into a local
        store, small files are packed instead, as they are hashed (``EarlyPacks``).
        ``progress`` is told how many files are hashed, every ``_PROGRESS_EVERY`` and at the
        end.
        """
        result: list[tuple[int, str]] = []
        read_ahead: dict[str, bytes] = {}
        plans: dict[str, ChunkPlan] = {}
        budget = _READ_AHEAD
        self._early.staged = None
        with contextlib.ExitStack() as stack:
            early = None
            if store_small and self._sink is not None:
                early = stack.enter_context(EarlyPacks(self._content, self.known))
            for size, digest, data in hash_many(paths, sizes, self._sink):
                if isinstance(data, ChunkPlan):
                    plans[digest] = data
                elif data is not None and len(data) <= PACK_MAX:
                    if early is not None:
                        early.add(digest, data)
                    elif len(data) <= budget:
                        read_ahead[digest] = data
                        budget -= len(data)
                result.append((size, digest))
                if progress is not None and len(result) % _PROGRESS_EVERY == 0:
                    progress(len(result))
            if early is not None:
                self._early.staged = early.finish()
        if progress is not None:
            progress(len(result))
        self._read_ahead = read_ahead
        self._plans = plans
        if read_ahead:
            weakref.finalize(owner, self._forget, read_ahead)
        return result

    def _store_chunk(self, digest: str, data: memoryview) -> int:
        """Store one chunk just hashed to ``digest``; the bytes newly stored."""
        info = self._content.put_hashed(digest, data)
        return info.size if info.new else 0

    def _forget(self, read_ahead: dict[str, bytes]) -> None:
        read_ahead.clear()
        if self._read_ahead is read_ahead:
            self._read_ahead = {}

    def _put_whole(
        self,
        writer: BlobWriter,
        path: Path,
        digest: str,
        size: int,
        staged: StagedObjects,
    ) -> None:
        def record(info: BlobInfo) -> None:
            if info.digest != digest:
                raise ConflictError(f"file {path} changed while it was being stored; add it again")
            staged.new_bytes += info.size if info.new else 0
            staged.object_rows.append((digest, info.size, "blob", info.digest, None))

        writer.put(size, partial(self._content.put_file, path), record)

    def _put_chunked(
        self,
        writer: BlobWriter,
        path: Path,
        digest: str,
        staged: StagedObjects,
        plan: ChunkPlan | None,
    ) -> None:
        """Store the chunks of a large file the store lacks, as ``hash`` cut it.

        Chunks stored while the file was cut (``plan.stored``) are the bytes hashed; the
        file must still have the stat it had then, or it changed since it was hashed and is
        refused. Else each new chunk is read again and must hash as planned: a changed file
        is refused likewise, and the bytes stored are the bytes hashed.
        """
        if plan is None:  # digest from the stat cache: cut it now
            plan = plan_chunks(str(path), self._sink)
        if plan.digest != digest:
            raise ConflictError(f"file {path} changed while it was being stored; add it again")
        staged.chunk_rows.extend(
            {"object": digest, "seq": seq, "chunk": chunk, "size": size}
            for seq, (_, size, chunk) in enumerate(plan.chunks)
        )
        staged.object_rows.append((digest, plan.size, "chunks", None, None))
        if plan.stored:
            if plan.changed_since(str(path)):
                raise ConflictError(f"file {path} changed while it was being stored; add it again")
            staged.new_bytes += plan.new_bytes
            return
        seen: set[str] = set()
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise NotFoundError(f"file {path} does not exist") from None
        try:
            for offset, size, chunk in plan.chunks:
                if chunk in seen or self._content.exists(chunk):
                    continue
                seen.add(chunk)
                data = read_chunk(fd, offset, size)
                store = partial(self._content.put_bytes, data)
                writer.put(size, store, partial(_record_chunk, path, chunk, staged))
        finally:
            os.close(fd)

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

    def put_manifest(self, stored: Sequence[StoredFile] | DigestedFiles) -> str:
        """Store the file list of a version (``manifests``); returns the blob's digest.

        Raises:
            UnsafePathError: for a path that is absolute, climbs out, or is not valid text.
        """
        return self._content.put_bytes(encode_manifest(stored)).digest

    def read_manifest(self, digest: str) -> list[StoredFile]:
        """The file list a manifest blob holds, each path checked again.

        Raises:
            ManifestFormatError: when the blob is not a manifest.
        """
        return decode_manifest(self._content.read_bytes(digest))

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

        The folder's state when it was built (every file's path, size, modification and
        change times) is kept beside it and checked on every reuse: one stat a file. A file
        changed, removed or added there since is noticed and the folder is built again
        from the store, so a cached copy never hands out other data than the version's.
        Concurrent callers may both build it; the first rename wins and both use it.
        """
        files = target / "files"
        if _intact(target):
            return files
        scratch.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix="materialise-", dir=scratch))
        try:
            self.export_all(self.read_manifest(manifest), staging / "files")
            (staging / _SNAPSHOT).write_text(json.dumps(_snapshot(staging / "files")))
            target.parent.mkdir(parents=True, exist_ok=True)
            if _intact(target):  # another caller finished first, and may be reading it now
                return files
            if target.exists():  # a damaged copy: moved aside, then removed
                stale = Path(tempfile.mkdtemp(prefix="stale-", dir=scratch))
                with contextlib.suppress(FileNotFoundError):  # another caller moved it
                    target.rename(stale / "old")
                shutil.rmtree(stale, ignore_errors=True)
            try:
                staging.rename(target)
            except OSError:  # another process finished first: its copy is as good
                if not _intact(target):
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return files

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


# A materialised folder's state when it was built: JSON [[path, size, mtime, ctime], ...].
_SNAPSHOT = ".complete"


def _snapshot(folder: Path) -> list[list[Any]]:
    """Every file under ``folder``: relative path, size, modification and change times (ns)."""
    found: list[list[Any]] = []
    skip = len(os.fspath(folder)) + 1
    pending = [os.fspath(folder)]
    while pending:
        with os.scandir(pending.pop()) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    pending.append(entry.path)
                    continue
                info = entry.stat(follow_symlinks=False)
                name = entry.path[skip:].replace(os.sep, "/")
                found.append([name, info.st_size, info.st_mtime_ns, info.st_ctime_ns])
    found.sort()
    return found


def _intact(target: Path) -> bool:
    """Whether a materialised folder is as it was built (False when not built yet)."""
    try:
        recorded = json.loads((target / _SNAPSHOT).read_text())
        return isinstance(recorded, list) and recorded == _snapshot(target / "files")
    except (OSError, ValueError):
        return False


def _told(progress: Progress, skipped: int, total: int, done: int) -> None:
    """Files hashed so far, to a progress callback: (the ones skipped + ``done``, ``total``)."""
    progress(skipped + done, total)


def _record_chunk(path: Path, chunk: str, staged: StagedObjects, info: BlobInfo) -> None:
    if info.digest != chunk:
        raise ConflictError(f"file {path} changed while it was being stored; add it again")
    staged.new_bytes += info.size if info.new else 0


def _stream(content: ContentStore, blob: str) -> Iterator[bytes]:
    with content.open(blob) as reader:
        while piece := reader.read(1024 * 1024):
            yield piece
        reader.read()  # end of stream: the blob's own digest check
