"""Content objects: files stored once by digest, packed when small, chunked when large.

A file's identity is the BLAKE3 digest of its content. How its bytes are kept depends on its
size, so that both a folder of 100,000 tiny files and a 1 GiB table store fast and compactly:

- small files (up to ``PACK_MAX``) are concatenated into pack blobs of about ``PACK_TARGET``;
- medium files are one blob each;
- large files (over ``CHUNK_FROM``) are cut by content-defined chunking (FastCDC), each chunk
  a blob, so a table with a few rows changed or appended stores only the chunks around them.

The ``objects`` table maps each file digest to where its bytes are; ``object_chunks`` lists
a chunked file's pieces. Every read is verified against the file's digest.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from blake3 import blake3
from sqlalchemy import Connection, select

from shipyard.domain.digests import format_digest
from shipyard.domain.ids import utcnow
from shipyard.errors import ConflictError, CorruptBlobError, NotFoundError, UnsafePathError
from shipyard.stores.artifacts.content import ContentStore, hash_file
from shipyard.stores.metadata import SqlMetadataStore
from shipyard.stores.metadata.schema import object_chunks, objects
from shipyard.stores.statcache import StatCache, StatKey

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
_QUERY_BATCH = 500

Progress = Callable[[int, int], None]  # (bytes done, bytes in all)


@dataclass(frozen=True, slots=True)
class LocalFile:
    """A local file to store, and the name it has inside what is being stored."""

    path: Path
    name: str


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


class _PackWriter:
    """Concatenates small files into pack blobs."""

    def __init__(self, content: ContentStore, staged: StagedObjects) -> None:
        self._content = content
        self._staged = staged
        self._buffer = bytearray()
        self._members: list[tuple[str, int, int]] = []  # digest, offset, size

    def add(self, digest: str, data: bytes) -> None:
        self._members.append((digest, len(self._buffer), len(data)))
        self._buffer += data
        if len(self._buffer) >= PACK_TARGET:
            self.flush()

    def flush(self) -> None:
        if not self._members:
            return
        pack = self._content.put_bytes(bytes(self._buffer))
        self._staged.new_bytes += pack.size if pack.new else 0
        now = utcnow()
        for digest, offset, size in self._members:
            self._staged.object_rows.append(
                {
                    "digest": digest,
                    "size": size,
                    "storage": "pack",
                    "blob": pack.digest,
                    "offset": offset,
                    "created_at": now,
                }
            )
        self._buffer = bytearray()
        self._members = []


class ObjectService:
    """Stores local files as content objects and reads them back verified."""

    def __init__(
        self, metadata: SqlMetadataStore, content: ContentStore, stat_cache: StatCache | None
    ) -> None:
        self._metadata = metadata
        self._content = content
        self._stat_cache = stat_cache

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
        staged = StagedObjects(list(stored))
        known = self.known({f.digest for f in stored})
        total = sum(f.size for f in stored)
        done = 0
        packs = _PackWriter(self._content, staged)
        for local, entry in zip(files, stored, strict=True):
            done += entry.size
            if entry.digest in known:
                continue
            known.add(entry.digest)
            if entry.size <= PACK_MAX:
                packs.add(entry.digest, _read_checked(local.path, entry.digest))
            elif entry.size <= CHUNK_FROM:
                self._put_whole(local.path, entry.digest, staged)
            else:
                self._put_chunked(local.path, entry.digest, entry.size, staged)
            if progress is not None:
                progress(done, total)
        packs.flush()
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
        cache = self._stat_cache
        cached: dict[str, tuple[StatKey, str]] = {}
        if cache is not None and files:
            common = Path(os.path.commonpath([str(f.path.parent) for f in files]))
            cached = cache.lookup(common)
        result: list[tuple[int, str]] = []
        fresh: list[tuple[Path, StatKey, str]] = []
        for local in files:
            try:
                st = local.path.stat()
            except FileNotFoundError:
                raise NotFoundError(f"file {local.path} does not exist") from None
            key = StatKey(st.st_size, st.st_mtime_ns, st.st_ino)
            hit = cached.get(str(local.path))
            if hit is not None and hit[0] == key:
                result.append((st.st_size, hit[1]))
                continue
            digest, size = hash_file(local.path)
            result.append((size, digest))
            fresh.append((local.path, key, digest))
        if cache is not None:
            cache.update(fresh)
        return result, len(fresh)

    def _put_whole(self, path: Path, digest: str, staged: StagedObjects) -> None:
        info = self._content.put_file(path)
        if info.digest != digest:
            raise ConflictError(f"file {path} changed while it was being stored; add it again")
        staged.new_bytes += info.size if info.new else 0
        staged.object_rows.append(
            {
                "digest": digest,
                "size": info.size,
                "storage": "blob",
                "blob": info.digest,
                "offset": None,
                "created_at": utcnow(),
            }
        )

    def _put_chunked(self, path: Path, digest: str, size: int, staged: StagedObjects) -> None:
        from pyfastcdc import FastCDC

        chunker = FastCDC(CDC_AVG, min_size=CDC_MIN, max_size=CDC_MAX)
        whole = blake3(max_threads=blake3.AUTO)
        for seq, chunk in enumerate(chunker.cut_file(str(path))):
            data = bytes(chunk.data)
            whole.update(data)
            info = self._content.put_bytes(data)
            staged.new_bytes += info.size if info.new else 0
            staged.chunk_rows.append(
                {"object": digest, "seq": seq, "chunk": info.digest, "size": info.size}
            )
        if format_digest(whole.hexdigest()) != digest:
            raise ConflictError(f"file {path} changed while it was being stored; add it again")
        staged.object_rows.append(
            {
                "digest": digest,
                "size": size,
                "storage": "chunks",
                "blob": None,
                "offset": None,
                "created_at": utcnow(),
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

        table = pa.table(
            {
                "path": [check_relative_path(f.name) for f in stored],
                "size": pa.array([f.size for f in stored], pa.int64()),
                "digest": [f.digest for f in stored],
            }
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


def _read_checked(path: Path, digest: str) -> bytes:
    data = path.read_bytes()
    hasher = blake3()
    hasher.update(data)
    if format_digest(hasher.hexdigest()) != digest:
        raise ConflictError(f"file {path} changed while it was being stored; add it again")
    return data


def _stream(content: ContentStore, blob: str) -> Iterator[bytes]:
    with content.open(blob) as reader:
        while piece := reader.read(1024 * 1024):
            yield piece
        reader.read()  # end of stream: the blob's own digest check
