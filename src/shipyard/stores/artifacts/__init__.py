"""Artifact stores: a small blob interface, its back ends, and content addressing above it.

A back end is chosen by URI scheme from ``BACKENDS``, imported lazily.
"""

from __future__ import annotations

import importlib
from typing import Any

from shipyard.stores.artifacts.base import BlobStore

__all__ = ["BACKENDS", "open_blob_store"]

BACKENDS: dict[str, str] = {
    "": "shipyard.stores.artifacts.local:LocalBlobStore",
    "file": "shipyard.stores.artifacts.local:LocalBlobStore",
    "*": "shipyard.stores.artifacts.fsspec_store:FsspecBlobStore",
}


def open_blob_store(uri: str, *, fsync: bool = True, **options: Any) -> BlobStore:
    """Open the blob store at ``uri``: a local folder or any fsspec URL.

    Args:
        uri: a folder path, ``file://`` URL, or fsspec URL such as ``s3://bucket/prefix``.
        fsync: for local folders, fsync every blob before a put returns.
        **options: storage options passed to fsspec.

    Raises:
        MissingDependencyError: if the scheme needs an extra that is not installed.
        StoreUnavailableError: if the store cannot be opened.
    """
    scheme, sep, rest = uri.partition("://")
    if not sep:
        scheme, rest = "", uri
    target = BACKENDS.get(scheme, BACKENDS["*"])
    module, _, name = target.partition(":")
    factory = getattr(importlib.import_module(module), name)
    if scheme in ("", "file"):
        store: BlobStore = factory(rest if scheme == "file" else uri, fsync=fsync)
    else:
        store = factory(uri, **options)
    return store
