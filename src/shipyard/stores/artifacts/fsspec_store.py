"""Blobs in any fsspec file system: object stores (S3, GCS, Azure), memory, and others."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, BinaryIO, cast

from typing_extensions import override

from shipyard.domain.ids import new_id
from shipyard.errors import (
    MissingDependencyError,
    NotFoundError,
    NotSupportedError,
    StoreUnavailableError,
)
from shipyard.stores.artifacts.base import BlobStore, StagedBlob
from shipyard.stores.artifacts.paths import safe_key

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

__all__ = ["FsspecBlobStore"]

# Object stores publish an object only when its upload completes: a plain write is atomic.
_ATOMIC_PROTOCOLS = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "memory"})
# Which pip extra brings the implementation of a protocol.
_EXTRAS = {"s3": ("s3fs", "s3"), "s3a": ("s3fs", "s3"), "gs": ("gcsfs", "gcs")}
_EXTRAS |= {"gcs": ("gcsfs", "gcs"), "az": ("adlfs", "azure"), "abfs": ("adlfs", "azure")}
_SPOOL_LIMIT = 32 * 1024 * 1024


class _FsspecStaged(StagedBlob):
    def __init__(self, store: FsspecBlobStore) -> None:
        self._store = store
        self._spool: Any = tempfile.SpooledTemporaryFile(max_size=_SPOOL_LIMIT)  # noqa: SIM115

    @override
    def write(self, data: bytes | memoryview) -> None:
        if self._spool is None:
            raise ValueError("this staged blob was committed or aborted already")
        self._spool.write(data)

    @override
    def commit(self, key: str) -> bool:
        if self._spool is None:
            raise ValueError("this staged blob was committed or aborted already")
        store, spool = self._store, self._spool
        self._spool = None
        try:
            path = store._fresh_path(key)
            if store.fs.exists(path):
                return False
            spool.seek(0)
            target = path if store.atomic else f"{path}.tmp-{new_id()}"
            with store.fs.open(target, "wb") as out:
                shutil.copyfileobj(spool, out, 1024 * 1024)
            if not store.atomic:
                store.fs.mv(target, path)
            return True
        finally:
            spool.close()

    @override
    def abort(self) -> None:
        if self._spool is not None:
            self._spool.close()
            self._spool = None


class FsspecBlobStore(BlobStore):
    """Blobs under a prefix of any fsspec URL (``s3://bucket/prefix``, ``memory://name``).

    Credentials and endpoints come from the usual places of each file system (for S3:
    the AWS environment variables, ``AWS_ENDPOINT_URL`` included).
    """

    def __init__(self, url: str, **storage_options: Any) -> None:
        import fsspec

        protocol = url.split("://", 1)[0]
        try:
            fs, root = fsspec.core.url_to_fs(url, **storage_options)
        except ImportError:
            package, extra = _EXTRAS.get(protocol, (protocol, "all"))
            raise MissingDependencyError(package, extra) from None
        except (ValueError, OSError) as exc:
            raise StoreUnavailableError(url, str(exc)) from None
        self.fs: AbstractFileSystem = fs
        self.root = str(root).rstrip("/")
        self.uri = url
        self.atomic = protocol in _ATOMIC_PROTOCOLS

    def path_of(self, key: str) -> str:
        """The file system path of a key."""
        return f"{self.root}/{safe_key(key)}"

    def _fresh_path(self, key: str) -> str:
        # Listing caches (s3fs keeps one per file system) go stale when another client
        # writes or deletes: a blob would look missing, or a deleted one present.
        path = self.path_of(key)
        self.fs.invalidate_cache(path)
        return path

    @override
    def stage(self) -> StagedBlob:
        return _FsspecStaged(self)

    @override
    def put(self, key: str, data: bytes | memoryview) -> bool:
        path = self._fresh_path(key)
        if self.fs.exists(path):
            return False
        if self.atomic:
            self.fs.pipe_file(path, bytes(data))
            return True
        return super().put(key, data)

    @override
    def open(self, key: str) -> BinaryIO:
        path = self._fresh_path(key)
        # A folder-like prefix of other keys is no blob, though object stores open it.
        with contextlib.suppress(FileNotFoundError):
            if self.fs.isfile(path):
                return cast(BinaryIO, self.fs.open(path, "rb"))
        raise NotFoundError(f"no blob under key {key!r} in {self.uri}")

    @override
    def exists(self, key: str) -> bool:
        return bool(self.fs.isfile(self._fresh_path(key)))

    @override
    def size(self, key: str) -> int:
        try:
            info = self.fs.info(self._fresh_path(key))
        except FileNotFoundError:
            raise NotFoundError(f"no blob under key {key!r} in {self.uri}") from None
        if info.get("type") != "file":
            raise NotFoundError(f"no blob under key {key!r} in {self.uri}")
        return int(info["size"])

    @override
    def modified(self, key: str) -> float:
        try:
            return float(self.fs.modified(self._fresh_path(key)).timestamp())
        except FileNotFoundError:
            raise NotFoundError(f"no blob under key {key!r} in {self.uri}") from None
        except NotImplementedError:
            raise NotSupportedError(
                f"{self.fs.protocol} file system", "modification times"
            ) from None

    @override
    def list(self, prefix: str = "") -> Iterator[str]:
        base = self.path_of(prefix) if prefix else self.root
        try:
            found = self.fs.find(base)
        except FileNotFoundError:
            return
        strip = len(self.root.lstrip("/")) + 1
        for path in found:
            key = str(path).lstrip("/")[strip:]
            if ".tmp-" not in key:
                yield key

    @override
    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(self.path_of(key))
