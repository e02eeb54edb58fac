"""Manifests: the bytes that record a version's file list (path, size, digest of each file).

A manifest is stored as a content blob; a model or dataset version keeps its digest. Two
encodings, told apart by their first bytes when read:

- up to ``JSON_UP_TO`` files, canonical JSON: ``{"files":[[path,size,digest],...],
  "manifest":1}`` in UTF-8, keys sorted, no spaces. For a model's few files it is written
  in microseconds and read in one ``json.loads``, where Parquet costs a quarter of a
  millisecond to write and three quarters to read. The bytes depend on nothing but the file
  list (not on the pyarrow version).
- more files: Parquet with zstd, columns ``path``, ``size``, ``digest``. For 100,000 files
  it is a third of the size of the JSON and written three times faster.

Every manifest written before this module, whatever its size, is Parquet and reads as such.
"""

from __future__ import annotations

import io
import json
import operator
from array import array
from collections.abc import Sequence
from itertools import accumulate
from typing import Any

from shipyard.errors import BackendError, InvalidArgumentError, UnsafePathError
from shipyard.services.hashing import (
    DigestedFiles,
    StoredFile,
    check_relative_path,
    check_relative_paths,
)

__all__ = ["JSON_UP_TO", "ManifestFormatError", "decode_manifest", "encode_manifest"]

JSON_UP_TO = 1000  # files; past this Parquet is smaller and faster to write
_VERSION = 1
_PARQUET_MAGIC = b"PAR1"


class ManifestFormatError(BackendError):
    """A blob named as a manifest holds no file list this version of shipyard can read."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"not a manifest: {reason}")
        self.reason = reason


def encode_manifest(files: Sequence[StoredFile] | DigestedFiles) -> bytes:
    """The bytes to store for a file list, every path checked first.

    Raises:
        UnsafePathError: for a path that is absolute, climbs out, or is not valid text.
        InvalidArgumentError: for a size that is not an integer.
    """
    if isinstance(files, DigestedFiles):
        names, sizes, digests = files.names, files.sizes, files.digests
    else:
        names = [f.name for f in files]
        sizes = [f.size for f in files]
        digests = [f.digest for f in files]
    check_relative_paths(names)
    try:
        sizes = list(map(operator.index, sizes))
    except TypeError:
        raise InvalidArgumentError("a file's size in a manifest must be an integer") from None
    try:
        if len(names) <= JSON_UP_TO:
            return _json_bytes(names, sizes, digests)
        return _parquet_bytes(names, sizes, digests)
    except UnicodeEncodeError:
        bad = next(name for name in names if not _is_text(name))
        raise UnsafePathError(bad, "a file's path must be valid Unicode text") from None


def decode_manifest(data: bytes) -> list[StoredFile]:
    """The file list of a manifest's bytes, in either encoding, each path checked again.

    Raises:
        ManifestFormatError: for bytes that are neither encoding, or JSON of another shape.
        UnsafePathError: for a stored path that is unsafe.
    """
    if data[:1] == b"{":
        return _from_json(data)
    if data[:4] == _PARQUET_MAGIC:
        return _from_parquet(data)
    raise ManifestFormatError("neither JSON nor Parquet")


def _json_bytes(names: list[str], sizes: Sequence[int], digests: list[str]) -> bytes:
    entries = [
        [name, size, digest] for name, size, digest in zip(names, sizes, digests, strict=True)
    ]
    document = {"files": entries, "manifest": _VERSION}
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()


def _from_json(data: bytes) -> list[StoredFile]:
    try:
        document = json.loads(data)
        version, entries = document["manifest"], document["files"]
    except (ValueError, TypeError, KeyError):
        raise ManifestFormatError('JSON without "manifest" and "files"') from None
    if version != _VERSION:
        raise ManifestFormatError(f"manifest version {version!r}; this shipyard reads {_VERSION}")
    files = []
    for entry in entries:
        if not (
            isinstance(entry, list)
            and len(entry) == 3
            and isinstance(entry[0], str)
            and type(entry[1]) is int
            and isinstance(entry[2], str)
        ):
            raise ManifestFormatError(f"an entry is not [path, size, digest]: {entry!r:.120}")
        files.append(StoredFile(check_relative_path(entry[0]), entry[1], entry[2]))
    return files


def _parquet_bytes(names: list[str], sizes: Sequence[int], digests: list[str]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    packed = array("q", sizes)
    table = pa.Table.from_arrays(
        [
            _string_array(names),
            pa.Array.from_buffers(pa.int64(), len(packed), [None, pa.py_buffer(packed)]),
            _string_array(digests),
        ],
        names=["path", "size", "digest"],
    )
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


def _from_parquet(data: bytes) -> list[StoredFile]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(io.BytesIO(data), columns=["path", "size", "digest"])
    except (pa.ArrowException, KeyError) as exc:
        raise ManifestFormatError(f"unreadable Parquet ({exc})") from None
    return [
        StoredFile(check_relative_path(path), size, digest)
        for path, size, digest in zip(
            table["path"].to_pylist(),
            table["size"].to_pylist(),
            table["digest"].to_pylist(),
            strict=True,
        )
    ]


def _string_array(values: list[str]) -> Any:
    """A pyarrow string array built from its buffers.

    ``pa.array`` on a list asks pyarrow's pandas shim whether the list is array-like, which
    imports pandas: 0.2-0.4 s added to every add of plain files.
    """
    import pyarrow as pa

    encoded = [value.encode() for value in values]
    try:
        offsets = array("i", [0, *accumulate(map(len, encoded))])
    except OverflowError:  # over 2 GiB of text: past 32-bit offsets, pyarrow splits it
        return pa.array(values, pa.string())
    buffers = [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded))]
    return pa.Array.from_buffers(pa.string(), len(values), buffers)


def _is_text(name: str) -> bool:
    try:
        name.encode()
    except UnicodeEncodeError:
        return False
    return True
