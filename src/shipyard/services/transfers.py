"""Content in and out by digest: verified, size-limited uploads and verified downloads.

This is how a remote client moves bytes through the server. A client never names a
server-side path: it names content by its BLAKE3 digest. An upload is streamed to a private
scratch file while it is hashed and counted; over the size limit or hashing to anything but
the digest it claimed, it is refused and nothing is stored. A verified upload becomes a
stored object (packed, whole or chunked as the object store decides) in one transaction.
A download streams an object (a file some version holds) or, failing that, a raw blob (a
manifest, a profile, a log) and is checked against its digest as it is read.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import AsyncIterable, AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from blake3 import blake3
from sqlalchemy import select

from shipyard.domain.digests import format_digest, parse_digest
from shipyard.errors import (
    BlobNotFoundError,
    BodyTooLargeError,
    InvalidArgumentError,
    NotFoundError,
)
from shipyard.services.objects import LocalFile, ObjectService, StoredFile
from shipyard.stores.artifacts.content import CHUNK, ContentStore
from shipyard.stores.metadata import SqlMetadataStore
from shipyard.stores.metadata.schema import objects

__all__ = ["DEFAULT_UPLOAD_LIMIT", "Download", "TransferService", "Upload", "require_stored"]

DEFAULT_UPLOAD_LIMIT = 10 * 1024**3  # 10 GiB a blob
MAX_DIGESTS = 10_000  # digests a "which are missing?" question may name


@dataclass(frozen=True, slots=True)
class Upload:
    """What an upload stored: the digest, its size, and whether the content was new."""

    digest: str
    size: int
    new: bool


@dataclass(frozen=True, slots=True)
class Download:
    """Content to send: its size and its verified pieces."""

    digest: str
    size: int
    pieces: Iterator[bytes]


class TransferService:
    """Receives and serves content by digest for the API."""

    def __init__(
        self,
        metadata: SqlMetadataStore,
        content: ContentStore,
        objects_: ObjectService,
        *,
        scratch: Path,
        limit: int = DEFAULT_UPLOAD_LIMIT,
    ) -> None:
        self._metadata = metadata
        self._content = content
        self._objects = objects_
        self._scratch = scratch
        self.limit = limit

    def missing(self, digests: Sequence[str]) -> list[str]:
        """Which of these digests the store does not hold as objects (in the order given).

        Raises:
            InvalidDigestError: for a malformed digest.
            InvalidArgumentError: for more than ``MAX_DIGESTS`` digests.
        """
        if len(digests) > MAX_DIGESTS:
            raise InvalidArgumentError(f"at most {MAX_DIGESTS} digests a question")
        for digest in digests:
            parse_digest(digest)
        known = self._objects.known(set(digests))
        return [d for d in dict.fromkeys(digests) if d not in known]

    def check_size(self, declared: int | None) -> None:
        """Refuse an upload whose declared length is over the limit, before reading it.

        Raises:
            BodyTooLargeError: over the limit.
        """
        if declared is not None and declared > self.limit:
            raise BodyTooLargeError(self.limit, hint=_HINT)

    async def receive(self, digest: str, chunks: AsyncIterable[bytes]) -> Upload:
        """Store streamed content that must hash to ``digest``.

        Raises:
            InvalidDigestError: for a malformed digest.
            BodyTooLargeError: when more than the limit arrives (nothing is stored).
            InvalidArgumentError: when the bytes hash to another digest (nothing is stored).
        """
        parse_digest(digest)
        self._scratch.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(prefix="upload-", dir=self._scratch)
        try:
            hasher = blake3()
            size = 0
            with os.fdopen(handle, "wb") as out:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > self.limit:
                        raise BodyTooLargeError(self.limit, hint=_HINT)
                    hasher.update(chunk)
                    out.write(chunk)
            actual = format_digest(hasher.hexdigest())
            if actual != digest:
                raise InvalidArgumentError(
                    f"the uploaded bytes hash to {actual}, not to {digest}: nothing was stored"
                )
            return self._store(Path(name), StoredFile(name, size, digest))
        finally:
            Path(name).unlink(missing_ok=True)

    async def receive_batch(self, chunks: AsyncIterable[bytes]) -> list[Upload]:
        """Store many small files sent in one body: a JSON header line, then their bytes.

        The header is ``{"files": [[digest, size], ...]}`` and a newline; the bytes of the
        files follow in that order, nothing after. Every file is hashed as it arrives; new
        ones are stored together (small ones packed) in one transaction. All or nothing: a
        file that hashes to another digest, a body that ends early or runs on, or a header
        that does not parse stores nothing.

        Raises:
            BodyTooLargeError: when the files add up to more than the limit.
            InvalidArgumentError: for a malformed header, a mismatch, or a wrong length.
        """
        self._scratch.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix="batch-", dir=self._scratch))
        try:
            stream = _Stream(chunks)
            entries = _batch_header(await stream.line(_MAX_HEADER))
            if sum(size for _, size in entries) > self.limit:
                raise BodyTooLargeError(self.limit, hint=_HINT)
            received = []
            for index, (digest, size) in enumerate(entries):
                hasher = blake3()
                with (folder / str(index)).open("wb") as out:
                    async for piece in stream.exactly(size, index):
                        hasher.update(piece)
                        out.write(piece)
                actual = format_digest(hasher.hexdigest())
                if actual != digest:
                    raise InvalidArgumentError(
                        f"file {index} of the batch hashes to {actual}, not to {digest}: "
                        "nothing was stored"
                    )
                received.append(StoredFile(str(index), size, digest))
            if await stream.more():
                raise InvalidArgumentError("the batch runs on after its last file")
            return self._store_many(folder, received)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def _store_many(self, folder: Path, received: Sequence[StoredFile]) -> list[Upload]:
        known = self._objects.known({f.digest for f in received})
        fresh = list({f.digest: f for f in received if f.digest not in known}.values())
        if fresh:
            files = [LocalFile(folder / f.name, f.name) for f in fresh]
            staged = self._objects.stage(files, fresh)
            with self._metadata.write() as conn:
                self._objects.commit(conn, staged)
        new = {f.digest for f in fresh}
        return [Upload(f.digest, f.size, f.digest in new) for f in received]

    def _store(self, path: Path, stored: StoredFile) -> Upload:
        if self._objects.known({stored.digest}):
            return Upload(stored.digest, stored.size, False)
        staged = self._objects.stage([LocalFile(path, stored.name)], [stored])
        with self._metadata.write() as conn:
            self._objects.commit(conn, staged)
        return Upload(stored.digest, stored.size, True)

    def open(self, digest: str) -> Download:
        """The content of a digest: a stored object, else a raw blob; verified as read.

        Raises:
            InvalidDigestError: for a malformed digest.
            BlobNotFoundError: when neither an object nor a blob has this digest.
        """
        parse_digest(digest)
        with self._metadata.read() as conn:
            size = conn.execute(
                select(objects.c.size).where(objects.c.digest == digest)
            ).scalar_one_or_none()
        if size is not None:
            return Download(digest, size, self._objects.iter_bytes(digest))
        if not self._content.exists(digest):
            raise BlobNotFoundError(digest)
        return Download(digest, self._content.size(digest), _pieces(self._content, digest))

    def size(self, digest: str) -> int:
        """The size of the content of a digest (see ``open``)."""
        download = self.open(digest)
        close = getattr(download.pieces, "close", None)
        if close is not None:
            close()
        return download.size


def require_stored(objects_: ObjectService, files: Sequence[StoredFile], what: str) -> None:
    """Check that files a client names by digest are stored content of exactly their size.

    Raises:
        NotFoundError: when a digest is not stored content (upload it first).
        InvalidArgumentError: when a size differs from the stored content's.
    """
    sizes = objects_.sizes({f.digest for f in files})
    lacking = sorted({f.digest for f in files} - sizes.keys())
    if lacking:
        raise NotFoundError(
            f"{len(lacking)} {what} digest(s) are not stored content, upload them first: "
            f"{', '.join(lacking[:5])}"
        )
    wrong = [f.name for f in files if f.size != sizes[f.digest]]
    if wrong:
        raise InvalidArgumentError(f"sizes differ from the stored content for {wrong[:5]}")


_MAX_HEADER = 2 * 1024 * 1024  # a batch header: room for 10,000 digests and sizes


def _batch_header(line: bytes) -> list[tuple[str, int]]:
    try:
        header = json.loads(line)
        raw = header["files"]
        entries = [(str(digest), size) for digest, size in raw]
    except (ValueError, TypeError, KeyError):
        raise InvalidArgumentError(
            'a batch starts with a JSON line {"files": [[digest, size], ...]}'
        ) from None
    if not entries or len(entries) > MAX_DIGESTS:
        raise InvalidArgumentError(f"a batch holds 1 to {MAX_DIGESTS} files")
    for digest, size in entries:
        parse_digest(digest)
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise InvalidArgumentError(f"the size of {digest} is not a whole number of bytes")
    return entries


class _Stream:
    """An async byte stream read by lines and by exact lengths."""

    def __init__(self, chunks: AsyncIterable[bytes]) -> None:
        self._chunks = chunks.__aiter__()
        self._buffer = bytearray()
        self._ended = False

    async def _fill(self) -> bool:
        if self._ended:
            return False
        try:
            self._buffer += await self._chunks.__anext__()
        except StopAsyncIteration:
            self._ended = True
            return False
        return True

    async def line(self, limit: int) -> bytes:
        """Bytes up to the first newline (dropped), at most ``limit`` of them."""
        while (end := self._buffer.find(b"\n")) < 0:
            if len(self._buffer) > limit or not await self._fill():
                raise InvalidArgumentError("a batch starts with one JSON line and a newline")
        line = bytes(self._buffer[:end])
        del self._buffer[: end + 1]
        return line

    async def exactly(self, size: int, index: int) -> AsyncIterator[bytes]:
        """The next ``size`` bytes, in pieces."""
        left = size
        while left:
            if not self._buffer and not await self._fill():
                raise InvalidArgumentError(f"the batch ends inside file {index}")
            piece = bytes(self._buffer[:left])
            del self._buffer[: len(piece)]
            left -= len(piece)
            yield piece

    async def more(self) -> bool:
        """Whether any byte is left."""
        while not self._buffer:
            if not await self._fill():
                return False
        return True


_HINT = "upload less at once, or raise the server's server.upload_limit (SHIPYARD_UPLOAD_LIMIT)"


def _pieces(content: ContentStore, digest: str) -> Iterator[bytes]:
    with content.open(digest) as stream:
        while piece := stream.read(CHUNK):
            yield piece
