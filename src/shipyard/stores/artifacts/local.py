"""Blobs as files in a local folder, written atomically (temporary file, fsync, link).

A blob put whole from memory (``put``) is written into an unnamed file (Linux ``O_TMPFILE``)
that is linked under its key once complete: a writer killed midway leaves nothing at all,
and there is no temporary name to pick and remove. Elsewhere, and for streamed writes, the
temporary file is a named one in ``.tmp``. Folders of keys are checked once for symlinks and
remembered, so the many puts and existence checks of an add cost a system call or two each.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

from typing_extensions import override

from shipyard.errors import NotFoundError, StoreUnavailableError
from shipyard.stores.artifacts.base import BlobStore, StagedBlob
from shipyard.stores.artifacts.paths import resolve_inside, safe_key

__all__ = ["TMP_DIR", "LocalBlobStore"]

TMP_DIR = ".tmp"  # staged writes; a SIGKILLed writer leaves its file here, never in a key
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_TMPFILE = getattr(os, "O_TMPFILE", 0)  # Linux only
_WRITE_PIECE = 64 * 1024 * 1024  # bytes per write call: a partial write is rare, not an error
_IOV_MAX = 1024  # pieces per writev (Linux's IOV_MAX)


class _LocalStaged(StagedBlob):
    def __init__(self, store: LocalBlobStore) -> None:
        self._store = store
        fd, name = tempfile.mkstemp(dir=store.root / TMP_DIR, prefix="put-")
        self._file: BinaryIO | None = os.fdopen(fd, "wb")
        self._name = name

    @override
    def write(self, data: bytes | memoryview) -> None:
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
        # Folders of keys found to be real folders inside the root (no symlink on the way),
        # by their key: a blob store's folders are never replaced by symlinks once made.
        self._folders: dict[str, str] = {}
        self._tmpfile = bool(_TMPFILE)
        try:
            (self.root / TMP_DIR).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreUnavailableError(self.uri, exc.strerror or str(exc)) from None

    @override
    def stage(self) -> StagedBlob:
        return _LocalStaged(self)

    @override
    def put(self, key: str, data: bytes | memoryview) -> bool:
        return self.put_pieces(key, [data])

    @override
    def put_pieces(self, key: str, pieces: Sequence[bytes | memoryview]) -> bool:
        if not self._tmpfile:
            return super().put_pieces(key, pieces)
        target = self._path(key, create=True)
        try:
            fd = os.open(self.root / TMP_DIR, os.O_WRONLY | _TMPFILE | os.O_CLOEXEC, 0o600)
        except OSError:  # the file system has no unnamed files: named ones, as streams do
            self._tmpfile = False
            return super().put_pieces(key, pieces)
        try:
            _write_all(fd, pieces)
            if self.fsync:
                os.fsync(fd)
            try:
                # link() refuses an existing target: the first of concurrent writers wins.
                # A dir fd makes Python call linkat(AT_SYMLINK_FOLLOW), which an unnamed file
                # needs; the absolute path means the fd itself is not used.
                os.link(f"/proc/self/fd/{fd}", target, src_dir_fd=fd, follow_symlinks=True)
            except FileExistsError:
                if os.path.islink(target):
                    resolve_inside(self.root, key)
                return False
            except FileNotFoundError:  # its folder went, or there is no /proc
                self._folders.clear()
                self._tmpfile = os.path.isdir("/proc/self/fd")
                return super().put_pieces(key, pieces)
        finally:
            os.close(fd)
        if self.fsync:
            _fsync_dir(Path(target).parent)
        return True

    def _path(self, key: str, *, create: bool = False) -> str:
        """The path of a key, its folder checked once for symlinks; ``create`` makes it.

        Raises:
            UnsafePathError: if the key is unsafe or its folder is reached through a symlink.
        """
        folder_key, _, name = safe_key(key).rpartition("/")
        folder = self._folders.get(folder_key)
        if folder is None:
            if not folder_key:
                folder = str(resolve_inside(self.root, key).parent)
            else:
                resolved = resolve_inside(self.root, folder_key)
                if create:
                    resolved.mkdir(parents=True, exist_ok=True)
                    resolved = resolve_inside(self.root, folder_key)  # made, not a symlink
                if not resolved.is_dir():
                    return str(resolved / name)  # not made yet: nothing to remember
                folder = str(resolved)
            self._folders[folder_key] = folder
        return f"{folder}/{name}"

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
        try:
            mode = os.lstat(self._path(key)).st_mode
        except (FileNotFoundError, NotADirectoryError):
            return False
        if stat.S_ISLNK(mode):  # refused as before, by the careful check
            return resolve_inside(self.root, key).is_file()
        return stat.S_ISREG(mode)

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
        self._folders.clear()  # a folder may go with its last blob (``gc``)
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


def _write_all(fd: int, pieces: Sequence[bytes | memoryview]) -> None:
    """Write every piece, in order: many small ones a ``writev`` at a time."""
    for start in range(0, len(pieces), _IOV_MAX):
        batch = [memoryview(piece).cast("B") for piece in pieces[start : start + _IOV_MAX]]
        left = sum(map(len, batch))
        done = os.writev(fd, batch) if len(batch) > 1 else os.write(fd, batch[0][:_WRITE_PIECE])
        while done < left:  # a short write (large pieces, a signal): the rest one by one
            left -= done
            for k, piece in enumerate(batch):
                if done < len(piece):
                    batch = [piece[done:], *batch[k + 1 :]]
                    break
                done -= len(piece)
            done = os.write(fd, batch[0][:_WRITE_PIECE])


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
