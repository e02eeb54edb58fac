"""The one safe path builder: keys become paths only through here.

A key is a relative, ``/``-separated path whose segments are made of letters, digits,
``.``, ``_`` and ``-``; no segment is ``.`` or ``..`` or starts with ``.``. Anything else
(absolute paths, backslashes, percent-encodings, NUL, drive letters, ``//host``, Unicode
look-alikes) is refused before it reaches a file system, and a resolved local path must
still lie inside the store root after symlinks are followed.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from shipyard.errors import UnsafePathError

__all__ = ["MAX_KEY_LENGTH", "resolve_inside", "safe_key"]

MAX_KEY_LENGTH = 1024
_SEGMENT = re.compile(r"[A-Za-z0-9_\-][A-Za-z0-9_.\-]*")


def safe_key(key: object) -> str:
    """Validate a blob key and return it.

    Raises:
        UnsafePathError: if the key is not a plain relative path of safe segments.
    """
    if not isinstance(key, str):
        raise UnsafePathError(repr(key), "a key must be a string")
    if not key:
        raise UnsafePathError(key, "a key cannot be empty")
    if len(key) > MAX_KEY_LENGTH:
        raise UnsafePathError(key[:64] + "...", f"a key has at most {MAX_KEY_LENGTH} characters")
    if key.startswith("/"):
        raise UnsafePathError(key, "absolute paths are not keys")
    for segment in key.split("/"):
        if segment in ("", ".", ".."):
            raise UnsafePathError(key, "empty, '.' and '..' segments are not allowed")
        if not _SEGMENT.fullmatch(segment) or ".." in segment:
            raise UnsafePathError(
                key, "a key segment is letters, digits, '.', '_' and '-' and no '..'"
            )
    return key


def resolve_inside(root: Path, key: str) -> Path:
    """Turn a key into a path under ``root``, refusing anything that would leave it.

    Args:
        root: the store root; it must exist.
        key: the key, checked by ``safe_key``.

    Returns:
        The absolute path of the key.

    Raises:
        UnsafePathError: if the key is unsafe or a symlink leads outside the root.
    """
    key = safe_key(key)
    real_root = Path(os.path.realpath(root))
    path = real_root.joinpath(*key.split("/"))
    real = Path(os.path.realpath(path))
    if real != path and not _inside(real, real_root):
        raise UnsafePathError(key, "a symlink in the store leads outside its root")
    if real != path:
        raise UnsafePathError(key, "symlinks inside the store are not followed")
    return path


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents
