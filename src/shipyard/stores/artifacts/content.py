"""Content addressing above any blob store: blobs named by their BLAKE3 digest.

Identical content is stored once; every read is checked against the digest, so a flipped
bit is reported as ``CorruptBlobError`` instead of being returned.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from blake3 import blake3

from shipyard.domain.digests import format_digest, parse_digest
from shipyard.errors import BlobNotFoundError, CorruptBlobError, InvalidDigestError, NotFoundError
from shipyard.stores.artifacts.base import BlobStore

__all__ = ["BLOB_PREFIX", "BlobInfo", "ContentStore", "VerifiedReader", "hash_file"]

BLOB_PREFIX = "blobs"
CHUNK = 1024 * 1024
_SMALL = 8 * 1024 * 1024  # files up to this size are read into memory in one go
_PARALLEL_FROM = 4 * 1024 * 1024  # multithreaded BLAKE3 pays off above this size
_MMAP_FROM = 1024 * 1024  # hash_file maps files from this size; it reads smaller ones


@dataclass(frozen=True, slots=True)
class BlobInfo:
    """What a put stored: the digest, the size, and whether the bytes were new."""

    digest: str
    size: int
    new: bool


def _hasher(size: int) -> blake3:
    return blake3(max_threads=blake3.AUTO) if size >= _PARALLEL_FROM else blake3()


def hash_file(path: Path) -> tuple[str, int]:
    """BLAKE3 digest and size of a local file; a large one memory-mapped and multithreaded."""
    with path.open("rb", buffering=0) as file:
        size = os.fstat(file.fileno()).st_size
        if size < _MMAP_FROM:  # a map costs more than a copy of a small file
            data = file.readall()
            return format_digest(blake3(data).hexdigest()), len(data)
        hasher = _hasher(size)
        with mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as view:
            hasher.update(view)
    return format_digest(hasher.hexdigest()), size


class VerifiedReader:
    """A read-only stream that raises ``CorruptBlobError`` if the bytes do not match."""

    def __init__(self, raw: BinaryIO, digest: str) -> None:
        self._raw = raw
        self._digest = digest
        self._hasher = blake3()
        self._checked = False

    def read(self, size: int = -1) -> bytes:
        """Read up to ``size`` bytes (all when negative); verify at the end of the stream."""
        data = self._raw.read(size)
        if data:
            self._hasher.update(data)
        if not data or size < 0:
            self._check()
        return data

    def _check(self) -> None:
        if not self._checked:
            self._checked = True
            actual = format_digest(self._hasher.hexdigest())
            if actual != self._digest:
                raise CorruptBlobError(self._digest, actual)

    def readable(self) -> bool:
        """Always True: this is a read stream."""
        return True

    def close(self) -> None:
        """Close the underlying stream."""
        self._raw.close()

    def __enter__(self) -> VerifiedReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ContentStore:
    """Content-addressed blobs on top of a ``BlobStore``."""

    def __init__(self, blobs: BlobStore) -> None:
        self.blobs = blobs

    @property
    def uri(self) -> str:
        """Where the blobs live."""
        return self.blobs.uri

    @staticmethod
    def key_of(digest: str) -> str:
        """The blob-store key of a digest (``blobs/ab/cdef…``)."""
        hexdigest = parse_digest(digest)
        return f"{BLOB_PREFIX}/{hexdigest[:2]}/{hexdigest[2:]}"

    @staticmethod
    def digest_of_key(key: str) -> str | None:
        """The digest a key names, or None for a key that is not a blob's."""
        parts = key.split("/")
        if len(parts) != 3 or parts[0] != BLOB_PREFIX or len(parts[1]) != 2:
            return None
        digest = format_digest(parts[1] + parts[2])
        try:
            parse_digest(digest)
        except InvalidDigestError:
            return None
        return digest

    def put_bytes(self, data: bytes) -> BlobInfo:
        """Store bytes; identical content is stored once."""
        hasher = _hasher(len(data))
        hasher.update(data)
        digest = format_digest(hasher.hexdigest())
        key = self.key_of(digest)
        if self.blobs.exists(key):
            return BlobInfo(digest, len(data), False)
        return BlobInfo(digest, len(data), self.blobs.put(key, data))

    def put_pieces(self, pieces: Sequence[bytes], buffer: bytearray | None = None) -> BlobInfo:
        """Store the concatenation of ``pieces`` (a pack of small files).

        Given a ``buffer`` large enough for them all, the pieces are copied into it, then
        hashed and written each in one call. Without, they are hashed and written piece by
        piece, never joined: a new buffer of 32 MiB costs as much in page faults as hashing
        and writing the pieces. But each hash call of a piece hands the GIL to another
        thread and waits to get it back, which a pipeline of threads pays for 100,000 small
        files: a buffer reused for every pack pays neither.
        """
        if buffer is not None and sum(map(len, pieces)) <= len(buffer):
            view, size = memoryview(buffer), 0
            for piece in pieces:
                end = size + len(piece)
                view[size:end] = piece
                size = end
            data = view[:size]
            hasher = _hasher(size)
            hasher.update(data)
            return self.put_hashed(format_digest(hasher.hexdigest()), data)
        hasher = blake3()
        update = hasher.update
        size = 0
        for piece in pieces:
            update(piece)
            size += len(piece)
        digest = format_digest(hasher.hexdigest())
        key = self.key_of(digest)
        if self.blobs.exists(key):
            return BlobInfo(digest, size, False)
        return BlobInfo(digest, size, self.blobs.put_pieces(key, pieces))

    def put_hashed(self, digest: str, data: bytes | memoryview) -> BlobInfo:
        """Store bytes the caller has just hashed to ``digest``, without hashing them again.

        For a caller that hashed ``data`` itself, from memory no one else writes to (the
        chunks of a file being read): the digest is not computed twice. Anything else uses
        ``put_bytes``.
        """
        key = self.key_of(digest)
        if self.blobs.exists(key):
            return BlobInfo(digest, len(data), False)
        return BlobInfo(digest, len(data), self.blobs.put(key, data))

    def put_stream(self, stream: BinaryIO) -> BlobInfo:
        """Store everything read from a stream, hashing it as it is staged."""
        hasher = blake3(max_threads=blake3.AUTO)
        size = 0
        with self.blobs.stage() as staged:
            while chunk := stream.read(CHUNK):
                hasher.update(chunk)
                staged.write(chunk)
                size += len(chunk)
            digest = format_digest(hasher.hexdigest())
            key = self.key_of(digest)
            if self.blobs.exists(key):
                return BlobInfo(digest, size, False)
            return BlobInfo(digest, size, staged.commit(key))

    def put_file(self, path: Path | str) -> BlobInfo:
        """Store a local file; a file whose content is stored already is not copied.

        Raises:
            NotFoundError: if the file does not exist.
        """
        path = Path(path)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise NotFoundError(f"file {path} does not exist") from None
        if size <= _SMALL:
            return self.put_bytes(path.read_bytes())
        digest, _ = hash_file(path)
        if self.exists(digest):
            return BlobInfo(digest, size, False)
        with path.open("rb") as file:
            info = self.put_stream(file)
        return info

    def open(self, digest: str) -> VerifiedReader:
        """Open a blob for reading; the digest is checked when the stream is read to its end.

        Raises:
            BlobNotFoundError: if no blob has this digest.
        """
        key = self.key_of(digest)
        try:
            return VerifiedReader(self.blobs.open(key), digest)
        except NotFoundError:
            raise BlobNotFoundError(digest) from None

    def read_bytes(self, digest: str) -> bytes:
        """The whole content of a blob, verified.

        Raises:
            BlobNotFoundError: if no blob has this digest.
            CorruptBlobError: if the content does not hash to the digest.
        """
        with self.open(digest) as reader:
            return reader.read()

    def export(self, digest: str, dest: Path) -> None:
        """Write a blob to a local file atomically, verified before it appears."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.part")
        try:
            with self.open(digest) as reader, tmp.open("wb") as out:
                while chunk := reader.read(CHUNK):
                    out.write(chunk)
                reader.read()  # end of stream: triggers the digest check
            tmp.replace(dest)
        finally:
            tmp.unlink(missing_ok=True)

    def read_range(self, digest: str, offset: int, size: int) -> bytes:
        """Bytes ``offset`` to ``offset + size`` of a blob, unverified: the caller checks them.

        Raises:
            BlobNotFoundError: if no blob has this digest.
        """
        try:
            with self.blobs.open(self.key_of(digest)) as raw:
                raw.seek(offset)
                return raw.read(size)
        except NotFoundError:
            raise BlobNotFoundError(digest) from None

    def verify(self, digest: str) -> str | None:
        """Re-hash a stored blob; None if it is intact, else the digest it hashes to.

        Raises:
            BlobNotFoundError: if no blob has this digest.
        """
        try:
            with self.blobs.open(self.key_of(digest)) as raw:
                hasher = blake3(max_threads=blake3.AUTO)
                while chunk := raw.read(CHUNK * 8):
                    hasher.update(chunk)
        except NotFoundError:
            raise BlobNotFoundError(digest) from None
        actual = format_digest(hasher.hexdigest())
        return None if actual == digest else actual

    def exists(self, digest: str) -> bool:
        """Whether a blob with this digest is stored."""
        return self.blobs.exists(self.key_of(digest))

    def size(self, digest: str) -> int:
        """Size of a stored blob in bytes."""
        try:
            return self.blobs.size(self.key_of(digest))
        except NotFoundError:
            raise BlobNotFoundError(digest) from None

    def digests(self) -> Iterator[str]:
        """Every stored digest; keys that are not blobs are skipped."""
        for key in self.blobs.list(BLOB_PREFIX):
            digest = self.digest_of_key(key)
            if digest is not None:
                yield digest

    def delete(self, digest: str) -> None:
        """Remove a blob. Callers must be sure nothing references it."""
        self.blobs.delete(self.key_of(digest))
