"""Content to and from a server by digest: upload what it lacks, download and verify.

Uploads send only the files whose digests the server does not hold (one question for up
to ``MAX_DIGESTS`` files), each streamed from disk. Downloads are checked against their
digest as they arrive; a file appears at its destination only once it is verified.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path

from blake3 import blake3

from shipyard.client.http import ApiClient
from shipyard.domain.digests import format_digest, parse_digest
from shipyard.errors import ConflictError, CorruptBlobError
from shipyard.services.objects import LocalFile, StoredFile
from shipyard.services.transfers import MAX_DIGESTS
from shipyard.stores.artifacts.content import CHUNK, BlobInfo, hash_file

__all__ = ["BATCH_BYTES", "BATCH_FILES", "BATCH_FILE_MAX", "RemoteBlobs", "hash_files"]

BATCH_FILE_MAX = 4 * 1024 * 1024  # files up to this size go many to a request
BATCH_FILES = 2_000
BATCH_BYTES = 64 * 1024 * 1024


class RemoteBlobs:
    """The server's content store, as a client sees it."""

    def __init__(self, client: ApiClient) -> None:
        self._client = client

    def missing(self, digests: Sequence[str]) -> list[str]:
        """Which of these digests the server does not hold."""
        unique = list(dict.fromkeys(digests))
        lacking: list[str] = []
        for start in range(0, len(unique), MAX_DIGESTS):
            batch = unique[start : start + MAX_DIGESTS]
            answer = self._client.call("POST", "/blobs/missing", body={"digests": batch})
            lacking.extend(answer["missing"])
        return lacking

    def upload_files(self, files: Sequence[LocalFile]) -> list[StoredFile]:
        """Hash local files and upload those the server lacks; returns them as stored."""
        stored = hash_files(files)
        self.upload_missing(files, stored)
        return stored

    def upload_missing(self, files: Sequence[LocalFile], stored: Sequence[StoredFile]) -> int:
        """Upload the files (hashed as ``stored``) whose content the server lacks.

        Small files go many to a request (``BATCH_FILES`` files or ``BATCH_BYTES`` at most),
        larger ones one request each, streamed from disk.

        Returns:
            The bytes sent.
        """
        lacking = set(self.missing([f.digest for f in stored]))
        batch: list[tuple[Path, StoredFile]] = []
        sent = 0
        for local, entry in zip(files, stored, strict=True):
            if entry.digest not in lacking:
                continue
            lacking.discard(entry.digest)
            sent += entry.size
            if entry.size > BATCH_FILE_MAX:
                self.upload(local.path, entry.digest, entry.size)
                continue
            batch.append((local.path, entry))
            if len(batch) >= BATCH_FILES or sum(e.size for _, e in batch) >= BATCH_BYTES:
                self._upload_batch(batch)
                batch = []
        if batch:
            self._upload_batch(batch)
        return sent

    def _upload_batch(self, batch: Sequence[tuple[Path, StoredFile]]) -> None:
        header = {"files": [[entry.digest, entry.size] for _, entry in batch]}

        def body() -> Iterator[bytes]:
            yield json.dumps(header).encode() + b"\n"
            for path, entry in batch:
                with path.open("rb") as file:
                    data = file.read(entry.size + 1)
                if len(data) != entry.size:
                    raise ConflictError(f"{path} changed while it was being uploaded")
                yield data

        headers = {"content-type": "application/octet-stream"}
        self._client.send("POST", "/blobs/batch", content=body(), headers=headers)

    def upload_bytes(self, data: bytes) -> str:
        """Upload bytes (when the server lacks them); returns their digest."""
        return self.put_bytes(data).digest

    def put_bytes(self, data: bytes) -> BlobInfo:
        """Upload bytes when the server lacks them, as ``ContentStore.put_bytes`` stores."""
        digest = format_digest(blake3(data).hexdigest())
        new = bool(self.missing([digest]))
        if new:
            self._client.send(
                "PUT",
                f"/blobs/{digest}",
                content=data,
                headers={"content-type": "application/octet-stream"},
            )
        return BlobInfo(digest, len(data), new)

    def upload(self, path: Path, digest: str, size: int) -> None:
        """Stream one file to the server, which refuses it unless it hashes to ``digest``."""
        parse_digest(digest)

        def pieces() -> Iterator[bytes]:
            with path.open("rb") as file:
                while piece := file.read(CHUNK):
                    yield piece

        headers = {"content-type": "application/octet-stream", "content-length": str(size)}
        self._client.send("PUT", f"/blobs/{digest}", content=pieces(), headers=headers)

    def iter_bytes(self, digest: str) -> Iterator[bytes]:
        """The content of a digest in pieces; raises ``CorruptBlobError`` on a mismatch."""
        parse_digest(digest)
        hasher = blake3()
        with self._client.stream("GET", f"/blobs/{digest}") as answer:
            for piece in answer.iter_bytes(CHUNK):
                hasher.update(piece)
                yield piece
        actual = format_digest(hasher.hexdigest())
        if actual != digest:
            raise CorruptBlobError(digest, actual)

    def read_bytes(self, digest: str) -> bytes:
        """The whole verified content of a digest."""
        return b"".join(self.iter_bytes(digest))


def hash_files(files: Sequence[LocalFile]) -> list[StoredFile]:
    """Digest and size of each local file, under its name."""
    stored = []
    for local in files:
        digest, size = hash_file(local.path)
        stored.append(StoredFile(local.name, size, digest))
    return stored
