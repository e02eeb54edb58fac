"""Manifests: canonical JSON for a few files, Parquet for many, and every old manifest reads."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from blake3 import blake3

from shipyard.app import Shipyard
from shipyard.errors import InvalidArgumentError, UnsafePathError
from shipyard.services.hashing import DigestedFiles
from shipyard.services.manifests import (
    JSON_UP_TO,
    ManifestFormatError,
    decode_manifest,
    encode_manifest,
)
from shipyard.services.objects import StoredFile


def _digest(data: bytes) -> str:
    return "blake3:" + blake3(data).hexdigest()


_FEW = [
    StoredFile("a/é.txt", 5, _digest(b"1")),
    StoredFile("b.bin", 2**40, _digest(b"2")),
    StoredFile("日本/c", 0, _digest(b"3")),
]


def _parquet_of(files: list[StoredFile]) -> bytes:
    """A manifest as every shipyard before canonical JSON wrote it, whatever its size."""
    table = pa.table(
        {
            "path": [f.name for f in files],
            "size": pa.array([f.size for f in files], pa.int64()),
            "digest": [f.digest for f in files],
        }
    )
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


def _blobs(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_a_few_files_are_canonical_json_whose_digest_depends_on_the_list_alone(
    project: Shipyard,
) -> None:
    digest = project.objects.put_manifest(_FEW)
    expected = (
        '{"files":[["a/é.txt",5,"' + _FEW[0].digest + '"],'
        '["b.bin",1099511627776,"' + _FEW[1].digest + '"],'
        '["日本/c",0,"' + _FEW[2].digest + '"]],"manifest":1}'
    ).encode()
    assert digest == _digest(expected)
    assert project.objects.read_manifest(digest) == _FEW
    columns = DigestedFiles(
        [f.name for f in _FEW], [f.size for f in _FEW], [f.digest for f in _FEW], 0, ""
    )
    assert project.objects.put_manifest(columns) == digest  # columns encode alike


def test_many_files_are_the_parquet_a_pyarrow_table_makes(project: Shipyard) -> None:
    many = [StoredFile(f"d/{k:05}.txt", k, _digest(str(k).encode())) for k in range(JSON_UP_TO + 1)]
    digest = project.objects.put_manifest(many)
    assert digest == _digest(_parquet_of(many))
    assert project.objects.read_manifest(digest) == many
    at_limit = many[:JSON_UP_TO]
    assert encode_manifest(at_limit).startswith(b"{")
    assert decode_manifest(encode_manifest(at_limit)) == at_limit


def test_a_small_manifest_written_as_parquet_before_still_reads(project: Shipyard) -> None:
    old = project.objects._content.put_bytes(_parquet_of(_FEW)).digest
    assert project.objects.read_manifest(old) == _FEW
    assert decode_manifest(_parquet_of([])) == []


def test_an_unsafe_path_is_refused_on_write_and_on_read(project: Shipyard) -> None:
    root = Path(project.settings.artifact_uri)
    before = _blobs(root)
    with pytest.raises(UnsafePathError, match=r"\.\./\.\./etc/passwd"):
        project.objects.put_manifest([StoredFile("../../etc/passwd", 1, _FEW[0].digest)])
    with pytest.raises(UnsafePathError, match="valid Unicode"):
        project.objects.put_manifest([StoredFile("bad-\udcff-name", 1, _FEW[0].digest)])
    assert _blobs(root) == before  # nothing stored
    forged = json.dumps({"files": [["/etc/passwd", 1, _FEW[0].digest]], "manifest": 1})
    with pytest.raises(UnsafePathError, match="/etc/passwd"):
        decode_manifest(forged.encode())
    with pytest.raises(UnsafePathError):
        decode_manifest(_parquet_of([StoredFile("a/../../x", 1, _FEW[0].digest)]))


def test_a_size_that_is_not_an_integer_is_refused(project: Shipyard) -> None:
    with pytest.raises(InvalidArgumentError, match="must be an integer"):
        encode_manifest([StoredFile("a", 5.0, _FEW[0].digest)])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "neither JSON nor Parquet"),
        (b"\x00garbage", "neither JSON nor Parquet"),
        (b"{not json", '"manifest" and "files"'),
        (b'{"files": []}', '"manifest" and "files"'),
        (b'{"files": [], "manifest": 2}', "manifest version 2"),
        (b'{"files": [["a", "5", "blake3:x"]], "manifest": 1}', r"not \[path, size, digest\]"),
        (b'{"files": [["a", 5]], "manifest": 1}', r"not \[path, size, digest\]"),
        (b'{"files": [["a", true, "d"]], "manifest": 1}', r"not \[path, size, digest\]"),
        (b"PAR1 but truncated", "unreadable Parquet"),
    ],
)
def test_bytes_that_are_no_manifest_say_so(data: bytes, message: str) -> None:
    with pytest.raises(ManifestFormatError, match=message):
        decode_manifest(data)


def test_a_parquet_manifest_without_its_columns_is_refused() -> None:
    sink = io.BytesIO()
    pq.write_table(pa.table({"name": ["a"]}), sink)
    with pytest.raises(ManifestFormatError, match="unreadable Parquet"):
        decode_manifest(sink.getvalue())
