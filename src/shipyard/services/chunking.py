"""Content-defined chunking of large files: one read, the whole-file digest beside the cuts.

A file over ``CHUNK_FROM`` is stored as chunks cut by FastCDC, each a blob. ``plan_chunks``
reads the file once, in segments, into private buffers: the main thread cuts each segment
(the cut loop releases the GIL) while one helper thread hashes the segment into the
whole-file digest and another hashes the chunks. The cuts are exactly those of FastCDC over
the whole file: a segment's last bytes, where a cut could depend on what follows, are carried
over to the next segment. Digest, cuts and chunk digests come from the same bytes, so a plan
always describes one consistent content, even if the file changes while it is read.

Given a ``sink``, the chunk thread also stores each chunk right after hashing it, from the
same private buffer: a new large file is then read once in all, and the bytes stored are
the bytes hashed. A file that was read from the disk is then let go from the page cache
behind the reading (``_cold``): its copy in the store is what later reads use.
"""

from __future__ import annotations

import io
import os
from collections import deque
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

from blake3 import blake3

from shipyard.domain.digests import format_digest
from shipyard.errors import NotFoundError
from shipyard.services.page_cache import advise, held

__all__ = [
    "CDC_AVG",
    "CDC_MAX",
    "CDC_MIN",
    "CHUNK_FROM",
    "ChunkPlan",
    "ChunkSink",
    "plan_chunks",
    "read_chunk",
]

CHUNK_FROM = 16 * 1024 * 1024
CDC_AVG, CDC_MIN, CDC_MAX = 1024 * 1024, 256 * 1024, 4 * 1024 * 1024
SEGMENT = 32 * 1024 * 1024  # bytes read at a time
_IN_FLIGHT = 2  # segments being hashed while the next one is read and cut
_READ_AHEAD = 4 * SEGMENT  # bytes asked of the disk ahead of the one being read


class ChunkSink(Protocol):
    """Stores one chunk whose digest was just computed from exactly these bytes."""

    def __call__(self, digest: str, data: memoryview) -> int:
        """Store ``data`` under ``digest`` unless stored; returns the bytes newly stored."""
        ...


@dataclass(frozen=True, slots=True)
class ChunkPlan:
    """How a large file is cut, and the digests of it and of its chunks.

    Attributes:
        digest: the BLAKE3 digest of the whole content read.
        size: its size in bytes.
        chunks: (offset, size, digest) of every chunk, in order.
        stored: whether every chunk went to a sink while the file was read.
        new_bytes: the bytes the sink stored that were not stored before.
        source: the file's (size, mtime_ns, ctime_ns, inode) when it was opened: a file
            whose stat differs later changed since (see ``changed_since``).
    """

    digest: str
    size: int
    chunks: tuple[tuple[int, int, str], ...]
    stored: bool = False
    new_bytes: int = 0
    source: tuple[int, int, int, int] | None = None

    def changed_since(self, path: str) -> bool:
        """Whether the file at ``path`` is no longer the one this plan read, by its stat.

        Raises:
            NotFoundError: if the file is gone.
        """
        try:
            return _stat_key(os.stat(path)) != self.source  # noqa: PTH116 - a str path
        except FileNotFoundError:
            raise NotFoundError(f"file {path} does not exist") from None


def plan_chunks(path: str, sink: ChunkSink | None = None) -> ChunkPlan:
    """Read a file once and return its digest and content-defined chunks.

    Args:
        path: the file.
        sink: if given, every chunk is handed to it, on the chunk thread, right after it is
            hashed and before its buffer is reused.

    Raises:
        NotFoundError: if the file does not exist.
    """
    from pyfastcdc import FastCDC

    chunker = FastCDC(CDC_AVG, min_size=CDC_MIN, max_size=CDC_MAX)
    whole = blake3()
    chunks: list[tuple[int, int, str]] = []
    try:
        file = open(path, "rb", buffering=0)  # noqa: PTH123, SIM115 - closed below
    except FileNotFoundError:
        raise NotFoundError(f"file {path} does not exist") from None
    source = _stat_key(os.fstat(file.fileno()))
    advise(file.fileno(), 0, 0, "POSIX_FADV_SEQUENTIAL")
    # A file read from the disk to be stored is not kept in the page cache beside its copy:
    # each part is let go once read (see ``_cold``). Only with a sink: else the stage reads
    # the chunks the store lacks again.
    behind = sink is not None and _cold(file.fileno(), source[0])
    pending: deque[tuple[Future[object], Future[tuple[list[str], int]], int]] = deque()
    new_bytes = 0
    failed: list[BaseException] = []  # a sink's failure: no chunk is stored after it
    with (
        file,
        ThreadPoolExecutor(1, thread_name_prefix="shipyard-digest") as digests,
        ThreadPoolExecutor(1, thread_name_prefix="shipyard-chunks") as hashers,
    ):
        # Buffers are reused (a fresh one costs more in page faults than the read itself):
        # the one a segment is read into was last used by a segment hashed already.
        buffers = [bytearray(SEGMENT + CDC_MAX) for _ in range(_IN_FLIGHT + 1)]
        base, tail, last = 0, b"", False  # file offset of the buffer; bytes left uncut
        segment = 0
        while not last and not failed:
            reuse = buffers[segment % len(buffers)]
            segment += 1
            # The next segments are asked of the disk before this one is read: from a cold
            # cache, several requests in flight read much faster than one at a time.
            ahead = base + len(tail)
            advise(file.fileno(), ahead, _READ_AHEAD, "POSIX_FADV_WILLNEED")
            buffer, fresh, last = _read_segment(file, tail, reuse)
            if behind:  # the bytes are in ``buffer`` now
                advise(file.fileno(), 0, ahead + len(fresh), "POSIX_FADV_DONTNEED")
            spans = _cuts(chunker, buffer, last)
            pending.append(
                (
                    digests.submit(whole.update, fresh),
                    hashers.submit(_chunk_digests, buffer, spans, sink, failed),
                    len(chunks),
                )
            )
            chunks += [(base + start, end - start, "") for start, end in spans]
            cut = spans[-1][1] if spans else 0
            base += cut
            tail = bytes(buffer[cut:])
            while len(pending) > _IN_FLIGHT:
                new_bytes += _collect(pending.popleft(), chunks)
        while pending:
            new_bytes += _collect(pending.popleft(), chunks)
    digest = format_digest(whole.hexdigest())
    return ChunkPlan(digest, base, tuple(chunks), sink is not None, new_bytes, source)


def _cold(fd: int, size: int) -> bool:
    """Whether a file is read from the disk: its start, middle or end is not in the page cache.

    Such a file's pages are dropped behind the reading (``POSIX_FADV_DONTNEED``): the copy
    in the store is what later reads use, and the pages freed are reused at once for that
    copy. In a virtual machine whose host takes freed memory back, fresh pages cost a fault
    each: adding 1 GiB took 0.68-1.19 s (0.7 s of system time) keeping the file's pages,
    0.67-0.72 s (0.4 s) dropping them (measured, 6 runs each). A file the page cache held
    already (written just before, read often) is left as it is.
    """
    return not all(held(fd, offset) for offset in (0, size // 2, max(0, size - 1)))


def _stat_key(info: os.stat_result) -> tuple[int, int, int, int]:
    return info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino


def _read_segment(
    file: io.FileIO, tail: bytes, buffer: bytearray
) -> tuple[memoryview, memoryview, bool]:
    """``tail`` and the next bytes in ``buffer``: (the data, the part just read, file ended)."""
    view = memoryview(buffer)
    view[: len(tail)] = tail
    filled = len(tail)
    while filled < len(buffer):
        read = file.readinto(view[filled:])
        if not read:
            break
        filled += read
    data = view[:filled]
    return data, data[len(tail) :], filled < len(buffer)


def _cuts(chunker: Any, buffer: memoryview, last: bool) -> list[tuple[int, int]]:
    """(start, end) of the chunks of a buffer, up to where a cut could depend on what follows.

    Where more than ``CDC_MAX`` bytes remain, FastCDC looks at most ``CDC_MAX`` ahead, as it
    would over the whole file; nearer the end of a buffer that is not the file's last, the
    rest waits for the next buffer.
    """
    spans = []
    for chunk in chunker.cut_buf(buffer):
        if not last and len(buffer) - chunk.offset <= CDC_MAX:
            break
        spans.append((chunk.offset, chunk.offset + chunk.length))
    return spans


def _chunk_digests(
    buffer: memoryview,
    spans: list[tuple[int, int]],
    sink: ChunkSink | None,
    failed: list[BaseException],
) -> tuple[list[str], int]:
    """The digests of a segment's chunks, and the bytes ``sink`` newly stored of them.

    Once the sink has failed (``failed``), later segments store nothing: they raise.
    """
    if sink is None:
        return [format_digest(blake3(buffer[start:end]).hexdigest()) for start, end in spans], 0
    digests, new_bytes = [], 0
    for start, end in spans:
        if failed:
            raise CancelledError  # the caller raises the first failure; this is never seen
        piece = buffer[start:end]
        digest = format_digest(blake3(piece).hexdigest())
        try:
            new_bytes += sink(digest, piece)
        except BaseException as exc:
            failed.append(exc)
            raise
        digests.append(digest)
    return digests, new_bytes


def _collect(
    done: tuple[Future[object], Future[tuple[list[str], int]], int],
    chunks: list[tuple[int, int, str]],
) -> int:
    """Wait for a segment's hashes; fill in the digests of its chunks; the new bytes stored."""
    whole, hashed, first = done
    whole.result()
    digests, new_bytes = hashed.result()
    for k, digest in enumerate(digests):
        offset, size, _ = chunks[first + k]
        chunks[first + k] = (offset, size, digest)
    return new_bytes


def read_chunk(fd: int, offset: int, size: int) -> bytes:
    """The bytes of one chunk, read again from an open file."""
    data = os.pread(fd, size, offset)
    while len(data) < size:
        more = os.pread(fd, size - len(data), offset + len(data))
        if not more:
            break
        data += more
    return data
