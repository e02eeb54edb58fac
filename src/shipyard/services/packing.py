"""Writing an add's blobs: a background writer thread, and small files packed together.

``BlobWriter`` stores blobs on one thread, in order, while the caller reads and hashes on.
``PackWriter`` concatenates small files into pack blobs through it. ``EarlyPacks`` packs
the new small files of a folder while the rest of it is still being hashed, so that storing
them overlaps reading them; a later stage takes the rows of what it packed.
``StagedObjects`` is what a stage stored and the metadata rows it still has to commit.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any

from shipyard.domain.ids import utcnow
from shipyard.services.hashing import PACK_MAX, DigestedFiles, StoredFile
from shipyard.stores.artifacts.content import BlobInfo, ContentStore

__all__ = [
    "PACK_TARGET",
    "BlobWriter",
    "EarlyPacks",
    "ObjectRow",
    "PackWriter",
    "StagedObjects",
]

PACK_TARGET = 32 * 1024 * 1024
# Bytes handed to the background blob writer and not stored yet, at most.
_WRITE_AHEAD = PACK_TARGET
# Small files hashed before ``EarlyPacks`` asks which of them are stored already: one query
# each time (``ObjectService.known`` batches its own), few for a folder of 100,000 files;
# sooner once their bytes reach ``_CHECK_BYTES`` (2,000 files of 256 KiB would hold 500 MiB).
_CHECK_EVERY, _CHECK_BYTES = 2_000, 64 * 1024 * 1024

ObjectRow = tuple[str, int, str, str | None, int | None]  # digest, size, storage, blob, offset


@dataclass
class StagedObjects:
    """Files whose bytes are in the blob store, and the metadata rows still to commit.

    ``object_rows`` are plain tuples (``ObjectRow``: the ``objects`` columns without
    ``created_at``, which is ``created_at`` for all): a folder of 100,000 new files makes as
    many.
    """

    files: Sequence[StoredFile] | DigestedFiles
    object_rows: list[ObjectRow] = field(default_factory=list)
    chunk_rows: list[dict[str, Any]] = field(default_factory=list)
    new_bytes: int = 0
    created_at: datetime = field(default_factory=utcnow)


class BlobWriter:
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
        """Store a blob on the writer thread (``store``); ``then`` gets its ``BlobInfo``."""
        self._pending.append((self._pool.submit(self._run, store), then, size))
        self._waiting += size
        while self._waiting > _WRITE_AHEAD:
            self._next()

    def finish(self) -> None:
        """Wait for every blob put so far; raises the first failure."""
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

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class PackWriter:
    """Concatenates small files into pack blobs; their rows go to ``staged``."""

    def __init__(self, content: ContentStore, writer: BlobWriter, staged: StagedObjects) -> None:
        self._content = content
        self._writer = writer
        self._staged = staged
        self._pieces: list[bytes] = []
        self._size = 0
        self._members: list[tuple[str, int, int]] = []  # digest, offset, size
        # Every pack is joined in here on the writer's thread, one pack after the other.
        self._buffer: bytearray | None = None

    def add(self, digest: str, data: bytes) -> None:
        """Put one small file in the pack being filled; a full pack goes to the writer."""
        self._members.append((digest, self._size, len(data)))
        self._pieces.append(data)
        self._size += len(data)
        if self._size >= PACK_TARGET:
            self.flush()

    def flush(self) -> None:
        """Hand the pack being filled to the writer, if it holds anything."""
        if not self._members:
            return
        members, staged = self._members, self._staged

        def record(pack: BlobInfo) -> None:
            staged.new_bytes += pack.size if pack.new else 0
            blob = pack.digest
            staged.object_rows.extend(
                (digest, size, "pack", blob, offset) for digest, offset, size in members
            )

        if self._buffer is None:  # pages are touched as packs fill it: small adds pay little
            self._buffer = bytearray(PACK_TARGET + PACK_MAX)
        store = partial(self._content.put_pieces, self._pieces, self._buffer)
        self._writer.put(self._size, store, record)
        self._pieces = []
        self._size = 0
        self._members = []


class EarlyPacks:
    """Packs the new small files of an add while the rest of it is still being hashed.

    Hashing hands each small file's digest and bytes to ``add``. Every ``_CHECK_EVERY`` files,
    one query (``known``) tells which are stored objects already; the others, each digest
    once, go into packs on a writer thread. Reading the next files and writing these
    overlap, and no byte is kept for a stage to come.

    Nothing is recorded in the metadata: ``finish`` returns the rows, for the stage of the
    same add to take (``ObjectService.stage``) and commit with the version. Packs of an add
    that fails are unreferenced blobs, which ``gc`` removes.

    Args:
        content: the content store the packs go to.
        known: which of a set of digests are stored objects already.
    """

    def __init__(self, content: ContentStore, known: Callable[[set[str]], set[str]]) -> None:
        self._known = known
        self._writer = BlobWriter()
        self._staged = StagedObjects(())
        self._packs = PackWriter(content, self._writer, self._staged)
        self._waiting: list[tuple[str, bytes]] = []
        self._waiting_bytes = 0
        self._packed: set[str] = set()

    def add(self, digest: str, data: bytes) -> None:
        """A small file just hashed to ``digest`` from exactly ``data``."""
        self._waiting.append((digest, data))
        self._waiting_bytes += len(data)
        if len(self._waiting) >= _CHECK_EVERY or self._waiting_bytes >= _CHECK_BYTES:
            self._check()

    def finish(self) -> StagedObjects:
        """Pack what waits, wait for every write; the rows and new bytes of what was packed.

        Raises:
            The first failure of a write.
        """
        self._check()
        self._packs.flush()
        self._writer.finish()
        return self._staged

    def _check(self) -> None:
        waiting, self._waiting, self._waiting_bytes = self._waiting, [], 0
        if not waiting:
            return
        packed = self._packed
        stored = self._known({digest for digest, _ in waiting if digest not in packed})
        for digest, data in waiting:
            if digest in packed or digest in stored:
                continue
            packed.add(digest)
            self._packs.add(digest, data)

    def __enter__(self) -> EarlyPacks:
        return self

    def __exit__(self, *exc: object) -> None:
        self._writer.__exit__(*exc)
