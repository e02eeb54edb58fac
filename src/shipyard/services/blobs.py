"""Blobs by digest: store a file, read it back verified, list what is stored."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from shipyard.domain.digests import parse_digest
from shipyard.errors import InvalidArgumentError, NotFoundError
from shipyard.stores.artifacts.content import BlobInfo, ContentStore

__all__ = ["BlobService"]


class BlobService:
    """The content-addressed blob store as a use case: put, get, stat, list."""

    def __init__(self, content: ContentStore) -> None:
        self._content = content

    def put(self, source: Path | str | bytes) -> BlobInfo:
        """Store a local file (a path) or bytes; identical content is stored once.

        Raises:
            NotFoundError: if the file does not exist.
            InvalidArgumentError: if the path is a folder.
        """
        if isinstance(source, bytes):
            return self._content.put_bytes(source)
        path = Path(source)
        if path.is_dir():
            raise InvalidArgumentError(f"{path} is a folder; store files one at a time")
        if not path.exists():
            raise NotFoundError(f"file {path} does not exist")
        return self._content.put_file(path)

    def get(self, digest: str, dest: Path | str) -> Path:
        """Write a blob to ``dest``, verified; a corrupt blob leaves no file behind."""
        parse_digest(digest)
        path = Path(dest)
        self._content.export(digest, path)
        return path

    def read(self, digest: str) -> bytes:
        """The verified content of a blob."""
        return self._content.read_bytes(digest)

    def size(self, digest: str) -> int:
        """The size of a stored blob in bytes."""
        return self._content.size(digest)

    def list(self) -> Iterator[str]:
        """Every stored digest."""
        return self._content.digests()
