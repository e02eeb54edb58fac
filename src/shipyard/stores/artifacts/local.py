"""Blobs as files in a local folder, written atomically (temporary file, fsync, link)."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from typing_extensions import override

from shipyard.errors import NotFoundError, StoreUnavailableError
from shipyard.stores.artifacts.base import BlobStore, StagedBlob
from shipyard.stores.artifacts.paths import resolve_inside, safe_key

__all__ = ["TMP_DIR", "LocalBlobStore"]

TMP_DIR = ".tmp"  # staged writes; a SIGKILLed writer leaves its file here, never in a key
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


class _LocalStaged(StagedBlob):
    def __init__(self, store: LocalBlobStore) -> None:
        self._store = store
        fd, name = tempfile.mkstemp(dir=store.root / TMP_DIR, prefix="put-")
        self._file: BinaryIO | None = os.fdopen(fd, "wb")
        self._name = name

    @override
    def write(self, data: bytes) -> None:
        if self._file is None:
            raise ValueError("this staged blob was committed or aborted already")
        self._file.write(data)

    @override
    def commit(self, key: str) -> bool:
        if self._file is None:
            raise ValueError("this staged blob was committed or aborted already")
        target = resolve_inside(self._store.root, key)
        file, self._file = self._file, None
        try:
            file.flush()
            if self._store.fsync:
                os.fsync(file.fileno())
        finally:
            file.close()
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            # link() refuses an existing target: the first of concurrent writers wins and
            # the others find the identical blob already there.
            os.link(self._name, target)
        except FileExistsError:
            return False
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._name)
        if self._store.fsync:
            _fsync_dir(target.parent)
        return True

    @override
    def abort(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._name)


class LocalBlobStore(BlobStore):
    """Blobs in a folder on a local file system.

    Args:
        root: the folder; created if missing.
        fsync: whether every blob and its folder are fsynced before ``commit`` returns.
    """

    def __init__(self, root: Path | str, *, fsync: bool = True) -> None:
        self.root = Path(root).expanduser().resolve()
        self.uri = str(self.root)
        self.fsync = fsync
        try:
            (self.root / TMP_DIR).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreUnavailableError(self.uri, exc.strerror or str(exc)) from None

    @override
    def stage(self) -> StagedBlob:
        return _LocalStaged(self)

    @override
    def open(self, key: str) -> BinaryIO:
        path = resolve_inside(self.root, key)
        try:
            fd = os.open(path, os.O_RDONLY | _NOFOLLOW)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise NotFoundError(f"no blob under key {key!r} in {self.uri}") from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # a folder opens read-only on POSIX
            os.close(fd)
            raise NotFoundError(f"no blob under key {key!r} in {self.uri}")
        return os.fdopen(fd, "rb")

    @override
    def exists(self, key: str) -> bool:
        return resolve_inside(self.root, key).is_file()

    @override
    def size(self, key: str) -> int:
        try:
            info = resolve_inside(self.root, key).stat()
        except (FileNotFoundError, NotADirectoryError):
            raise NotFoundError(f"no blob under key {key!r} in {self.uri}") from None
        if not stat.S_ISREG(info.st_mode):
            raise NotFoundError(f"no blob under key {key!r} in {self.uri}")
        return info.st_size

    @override
    def list(self, prefix: str = "") -> Iterator[str]:
        base = resolve_inside(self.root, prefix) if prefix else self.root
        head = f"{safe_key(prefix)}/" if prefix else ""
        for folder, dirs, files in os.walk(base):
            rel = os.path.relpath(folder, base)
            if rel == ".":
                rel = ""
                dirs[:] = [d for d in dirs if d != TMP_DIR or prefix]
            for name in files:
                yield head + (f"{rel}/{name}" if rel else name).replace(os.sep, "/")

    @override
    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            resolve_inside(self.root, key).unlink()

    @override
    def modified(self, key: str) -> float:
        try:
            return resolve_inside(self.root, key).stat().st_mtime
        except FileNotFoundError:
            raise NotFoundError(f"no blob under key {key!r} in {self.uri}") from None

    @override
    def clean_staged(self, *, older_than: float, dry_run: bool) -> int:
        stale = [p for p in (self.root / TMP_DIR).iterdir() if p.stat().st_mtime < older_than]
        if not dry_run:
            for path in stale:
                path.unlink(missing_ok=True)
        return len(stale)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
