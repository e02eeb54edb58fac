"""The blob interface every artifact back end implements.

A blob store maps safe keys (see ``paths.safe_key``) to immutable byte strings. Writes are
staged and become visible all at once on ``commit``; a reader never sees half a blob.
Content addressing is not done here but once above, in ``content.ContentStore``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from types import TracebackType
from typing import BinaryIO

__all__ = ["BlobStore", "StagedBlob"]


class StagedBlob(ABC):
    """A blob being written: invisible until ``commit``; discarded by ``abort``."""

    @abstractmethod
    def write(self, data: bytes | memoryview) -> None:
        """Append bytes to the staged blob."""

    @abstractmethod
    def commit(self, key: str) -> bool:
        """Publish the staged bytes under ``key`` atomically.

        Returns:
            True if the blob was stored, False if ``key`` existed already (the staged
            bytes are then discarded: blobs are immutable).
        """

    @abstractmethod
    def abort(self) -> None:
        """Discard the staged bytes; safe to call more than once."""

    def __enter__(self) -> StagedBlob:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.abort()


class BlobStore(ABC):
    """A flat namespace of immutable blobs addressed by safe keys."""

    uri: str

    @abstractmethod
    def stage(self) -> StagedBlob:
        """Start writing a blob; use as a context manager so a failure discards it."""

    def put(self, key: str, data: bytes | memoryview) -> bool:
        """Store ``data`` under ``key`` atomically; False if the key existed already."""
        with self.stage() as staged:
            staged.write(data)
            return staged.commit(key)

    def put_pieces(self, key: str, pieces: Sequence[bytes | memoryview]) -> bool:
        """Store the concatenation of ``pieces`` under ``key``, without joining them first."""
        with self.stage() as staged:
            for piece in pieces:
                staged.write(piece)
            return staged.commit(key)

    @abstractmethod
    def open(self, key: str) -> BinaryIO:
        """Open a blob for reading.

        Raises:
            NotFoundError: if there is no blob under ``key``.
        """

    @abstractmethod
    def exists(self, key: str) -> bool:
        """Whether a blob is stored under ``key``."""

    @abstractmethod
    def size(self, key: str) -> int:
        """The size of a blob in bytes.

        Raises:
            NotFoundError: if there is no blob under ``key``.
        """

    @abstractmethod
    def modified(self, key: str) -> float:
        """When a blob was written, in seconds since the epoch.

        Raises:
            NotFoundError: if there is no blob under ``key``.
            NotSupportedError: if the back end does not know.
        """

    def clean_staged(self, *, older_than: float, dry_run: bool) -> int:
        """Remove staged writes abandoned before ``older_than`` (epoch seconds).

        Back ends whose staged writes never outlive the writer have nothing to clean.

        Returns:
            How many abandoned staged writes there were.
        """
        return 0

    @abstractmethod
    def list(self, prefix: str = "") -> Iterator[str]:
        """Every key under ``prefix`` (a folder-like key prefix), in no set order."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove a blob; removing a missing blob is not an error."""

    def close(self) -> None:  # noqa: B027 - optional hook, most back ends hold nothing
        """Release connections held by the back end."""
