"""The contract every blob store back end passes, and content addressing on top of each."""

from __future__ import annotations

import io
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from blake3 import blake3

from shipyard.errors import (
    BlobNotFoundError,
    CorruptBlobError,
    InvalidDigestError,
    NotFoundError,
)
from shipyard.stores.artifacts import open_blob_store
from shipyard.stores.artifacts.base import BlobStore
from shipyard.stores.artifacts.content import BLOB_PREFIX, ContentStore

MIB = 1024 * 1024


def _digest(data: bytes) -> str:
    return f"blake3:{blake3(data).hexdigest()}"


def _read(store: BlobStore, key: str) -> bytes:
    with store.open(key) as file:
        return file.read()


def _stage_put(store: BlobStore, key: str, data: bytes) -> bool:
    with store.stage() as staged:
        staged.write(data)
        return staged.commit(key)


def _put(store: BlobStore, key: str, data: bytes) -> bool:
    return store.put(key, data)


WRITERS = pytest.mark.parametrize("write", [_put, _stage_put], ids=["put", "stage"])


# --- blob stores -----------------------------------------------------------------------


@WRITERS
def test_put_open_exists_size_list_delete_round_trip(
    blob_store: BlobStore, write: Callable[[BlobStore, str, bytes], bool]
) -> None:
    assert not blob_store.exists("models/churn.onnx")

    assert write(blob_store, "models/churn.onnx", b"weights") is True

    assert blob_store.exists("models/churn.onnx")
    assert _read(blob_store, "models/churn.onnx") == b"weights"
    assert blob_store.size("models/churn.onnx") == len(b"weights")
    assert list(blob_store.list()) == ["models/churn.onnx"]

    blob_store.delete("models/churn.onnx")

    assert not blob_store.exists("models/churn.onnx")
    assert list(blob_store.list()) == []
    with pytest.raises(NotFoundError):
        blob_store.open("models/churn.onnx")


@WRITERS
def test_put_of_an_existing_key_returns_false_and_keeps_the_first_bytes(
    blob_store: BlobStore, write: Callable[[BlobStore, str, bytes], bool]
) -> None:
    assert blob_store.put("a/blob", b"first") is True

    assert write(blob_store, "a/blob", b"second, longer") is False

    assert _read(blob_store, "a/blob") == b"first"
    assert blob_store.size("a/blob") == len(b"first")
    assert list(blob_store.list()) == ["a/blob"]


def test_staged_write_is_invisible_until_commit(blob_store: BlobStore) -> None:
    with blob_store.stage() as staged:
        staged.write(b"half ")
        staged.write(b"written")
        assert not blob_store.exists("a/blob")
        assert list(blob_store.list()) == []

        assert staged.commit("a/blob") is True

    assert _read(blob_store, "a/blob") == b"half written"


def test_aborted_staged_write_leaves_nothing(blob_store: BlobStore) -> None:
    staged = blob_store.stage()
    staged.write(b"never published")

    staged.abort()
    staged.abort()  # safe to call twice

    assert list(blob_store.list()) == []
    with pytest.raises(ValueError, match="committed or aborted"):
        staged.commit("a/blob")
    assert not blob_store.exists("a/blob")


def test_exception_inside_stage_discards_the_staged_bytes(blob_store: BlobStore) -> None:
    with pytest.raises(RuntimeError, match="writer crashed"), blob_store.stage() as staged:
        staged.write(b"partial")
        raise RuntimeError("writer crashed")

    assert list(blob_store.list()) == []
    assert not blob_store.exists("a/blob")


def test_committed_staged_blob_cannot_be_written_again(blob_store: BlobStore) -> None:
    with blob_store.stage() as staged:
        staged.write(b"done")
        staged.commit("a/blob")

        with pytest.raises(ValueError, match="committed or aborted"):
            staged.write(b"more")

    assert _read(blob_store, "a/blob") == b"done"


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        ("", {"a/1", "a/2", "ab/3", "b/c/4", "top"}),
        ("a", {"a/1", "a/2"}),
        ("b", {"b/c/4"}),
        ("b/c", {"b/c/4"}),
        ("missing", set()),
    ],
    ids=["everything", "folder", "nested", "deep", "missing"],
)
def test_list_returns_the_keys_under_a_folder_prefix(
    blob_store: BlobStore, prefix: str, expected: set[str]
) -> None:
    for key in ("a/1", "a/2", "ab/3", "b/c/4", "top"):
        blob_store.put(key, key.encode())

    keys = list(blob_store.list(prefix))

    assert sorted(keys) == sorted(expected)


def test_list_after_delete_forgets_the_key(blob_store: BlobStore) -> None:
    blob_store.put("a/1", b"1")
    blob_store.put("a/2", b"2")
    assert sorted(blob_store.list("a")) == ["a/1", "a/2"]

    blob_store.delete("a/1")

    assert list(blob_store.list("a")) == ["a/2"]
    assert list(blob_store.list()) == ["a/2"]


def test_put_after_delete_stores_the_new_bytes(blob_store: BlobStore) -> None:
    blob_store.put("a/blob", b"old")
    blob_store.delete("a/blob")

    assert blob_store.put("a/blob", b"new") is True

    assert _read(blob_store, "a/blob") == b"new"


def test_delete_of_a_missing_key_is_not_an_error(blob_store: BlobStore) -> None:
    blob_store.delete("never/stored")

    assert list(blob_store.list()) == []


@pytest.mark.parametrize(
    "read",
    [
        lambda store, key: store.open(key),
        lambda store, key: store.size(key),
    ],
    ids=["open", "size"],
)
@pytest.mark.parametrize("key", ["never/stored", "a"], ids=["missing", "folder"])
def test_reading_a_key_without_a_blob_raises_not_found(
    blob_store: BlobStore, read: Callable[[BlobStore, str], Any], key: str
) -> None:
    blob_store.put("a/blob", b"x")  # makes "a" a folder, not a blob

    with pytest.raises(NotFoundError, match=re.escape(repr(key))):
        read(blob_store, key)
    assert not blob_store.exists(key)


@pytest.mark.parametrize("size", [0, 5 * MIB], ids=["empty", "5MiB"])
@WRITERS
def test_blob_of_any_size_round_trips(
    blob_store: BlobStore, write: Callable[[BlobStore, str, bytes], bool], size: int
) -> None:
    data = os.urandom(size)

    assert write(blob_store, "blob", data) is True

    assert blob_store.size("blob") == size
    assert _read(blob_store, "blob") == data


@pytest.mark.parametrize(
    "sizes",
    [[], [0, 0], [3, 0, 5], [4096] * 2500, [7 * MIB, 1, 9 * MIB]],
    ids=["none", "empty-pieces", "small", "more-than-iov-max", "large-pieces"],
)
def test_pieces_are_stored_as_their_concatenation(blob_store: BlobStore, sizes: list[int]) -> None:
    pieces = [os.urandom(size) for size in sizes]

    assert blob_store.put_pieces("blob", pieces) is True
    assert blob_store.put_pieces("blob", [b"other"]) is False

    assert _read(blob_store, "blob") == b"".join(pieces)
    assert list(blob_store.list()) == ["blob"]


# --- content addressing ----------------------------------------------------------------


def test_put_pieces_and_put_hashed_agree_with_put_bytes(content_store: ContentStore) -> None:
    pieces = [os.urandom(4096) for _ in range(1500)] + [b"", b"tail"]
    joined = b"".join(pieces)

    packed = content_store.put_pieces(pieces)
    again = content_store.put_bytes(joined)
    view = memoryview(bytearray(b"--" + joined + b"--"))[2:-2]
    hashed = content_store.put_hashed(_digest(joined), view)

    assert packed.digest == again.digest == hashed.digest == _digest(joined)
    assert [packed.new, again.new, hashed.new] == [True, False, False]
    assert packed.size == hashed.size == len(joined)
    assert content_store.read_bytes(packed.digest) == joined
    fresh = memoryview(bytearray(b"a chunk of a file"))
    assert content_store.put_hashed(_digest(bytes(fresh)), fresh).new is True
    assert content_store.read_bytes(_digest(bytes(fresh))) == b"a chunk of a file"


def test_identical_content_is_stored_once(content_store: ContentStore) -> None:
    first = content_store.put_bytes(b"same bytes")
    second = content_store.put_bytes(b"same bytes")

    assert first.new is True
    assert second.new is False
    assert first.digest == second.digest
    assert list(content_store.blobs.list()) == [ContentStore.key_of(first.digest)]


def test_digest_is_blake3_of_the_content_in_lowercase_hex(content_store: ContentStore) -> None:
    info = content_store.put_bytes(b"hello")

    assert re.fullmatch(r"blake3:[0-9a-f]{64}", info.digest)
    assert info.digest == _digest(b"hello")
    assert info.size == 5
    hexdigest = info.digest.removeprefix("blake3:")
    assert list(content_store.blobs.list()) == [f"{BLOB_PREFIX}/{hexdigest[:2]}/{hexdigest[2:]}"]


@pytest.mark.parametrize("size", [0, 1000, 9 * MIB], ids=["empty", "small", "over-8MiB"])
def test_put_file_put_stream_and_put_bytes_agree_on_the_digest(
    content_store: ContentStore, tmp_path: Path, size: int
) -> None:
    data = os.urandom(size)
    path = tmp_path / "input.bin"
    path.write_bytes(data)

    from_file = content_store.put_file(path)
    from_stream = content_store.put_stream(io.BytesIO(data))
    from_bytes = content_store.put_bytes(data)

    assert from_file.digest == from_stream.digest == from_bytes.digest == _digest(data)
    assert [from_file.new, from_stream.new, from_bytes.new] == [True, False, False]
    assert from_file.size == from_stream.size == from_bytes.size == size
    assert list(content_store.digests()) == [_digest(data)]
    assert content_store.read_bytes(from_file.digest) == data


def test_put_file_of_a_missing_file_raises_not_found(
    content_store: ContentStore, tmp_path: Path
) -> None:
    with pytest.raises(NotFoundError, match="does not exist"):
        content_store.put_file(tmp_path / "missing.bin")


def test_read_back_returns_the_verified_bytes(content_store: ContentStore) -> None:
    data = os.urandom(3 * MIB + 17)
    digest = content_store.put_bytes(data).digest

    assert content_store.read_bytes(digest) == data
    with content_store.open(digest) as reader:
        chunks = iter(lambda: reader.read(MIB), b"")
        assert b"".join(chunks) == data
    assert content_store.size(digest) == len(data)
    assert content_store.exists(digest)
    assert content_store.verify(digest) is None


def _corrupt(store: ContentStore, data: bytes) -> tuple[str, bytes]:
    """Store ``data``, then replace the stored bytes with a copy that has one bit flipped."""
    digest = store.put_bytes(data).digest
    flipped = bytearray(data)
    flipped[len(flipped) // 2] ^= 0x10
    key = ContentStore.key_of(digest)
    store.blobs.delete(key)
    assert store.blobs.put(key, bytes(flipped))
    return digest, bytes(flipped)


def test_flipped_bit_is_reported_instead_of_returned(content_store: ContentStore) -> None:
    digest, flipped = _corrupt(content_store, b"model weights " * 1000)

    with pytest.raises(CorruptBlobError) as raised:
        content_store.read_bytes(digest)

    assert raised.value.digest == digest
    assert raised.value.actual == _digest(flipped)
    assert content_store.verify(digest) == _digest(flipped)


def test_flipped_bit_is_reported_when_streaming_in_chunks(content_store: ContentStore) -> None:
    digest, _ = _corrupt(content_store, os.urandom(2 * MIB))

    with content_store.open(digest) as reader, pytest.raises(CorruptBlobError):
        while reader.read(256 * 1024):
            pass


def _use(store: ContentStore, method: str, digest: Any, tmp_path: Path) -> Any:
    if method == "export":
        return store.export(digest, tmp_path / "exported.bin")
    return getattr(store, method)(digest)


@pytest.mark.parametrize("method", ["read_bytes", "open", "size", "verify", "export"])
def test_unknown_digest_raises_blob_not_found(
    content_store: ContentStore, tmp_path: Path, method: str
) -> None:
    unknown = _digest(b"never stored")

    with pytest.raises(BlobNotFoundError) as raised:
        _use(content_store, method, unknown, tmp_path)

    assert raised.value.digest == unknown
    assert not content_store.exists(unknown)
    assert not (tmp_path / "exported.bin").exists()


MALFORMED_DIGESTS = [
    "",
    "blake3:",
    "blake3:" + "a" * 63,
    "blake3:" + "a" * 65,
    "blake3:" + "A" * 64,
    "BLAKE3:" + "a" * 64,
    "sha256:" + "a" * 64,
    "a" * 64,
    "blake3:" + "g" * 64,
    " blake3:" + "a" * 64,
    "blake3:" + "a" * 64 + "\n",
    "blake3:../../../../etc/passwd",
    "blake3:" + "a" * 62 + "/.",
    None,
    b"blake3:" + b"a" * 64,
]


@pytest.mark.parametrize("digest", MALFORMED_DIGESTS)
@pytest.mark.parametrize(
    "method", ["read_bytes", "open", "exists", "size", "verify", "delete", "export"]
)
def test_malformed_digest_raises_invalid_digest(
    content_store: ContentStore, tmp_path: Path, method: str, digest: object
) -> None:
    with pytest.raises(InvalidDigestError):
        _use(content_store, method, digest, tmp_path)

    assert not (tmp_path / "exported.bin").exists()


def test_export_writes_the_verified_file(content_store: ContentStore, tmp_path: Path) -> None:
    data = os.urandom(2 * MIB + 3)
    digest = content_store.put_bytes(data).digest
    dest = tmp_path / "export" / "nested" / "model.bin"

    content_store.export(digest, dest)

    assert dest.read_bytes() == data
    assert sorted(p.name for p in dest.parent.iterdir()) == ["model.bin"]


def test_export_of_a_corrupt_blob_leaves_no_file(
    content_store: ContentStore, tmp_path: Path
) -> None:
    digest, _ = _corrupt(content_store, os.urandom(2 * MIB))
    folder = tmp_path / "export"
    folder.mkdir()

    with pytest.raises(CorruptBlobError):
        content_store.export(digest, folder / "model.bin")

    assert list(folder.iterdir()) == []


def test_digests_lists_exactly_the_stored_blobs(content_store: ContentStore) -> None:
    stored = {content_store.put_bytes(data).digest for data in (b"a", b"b", b"", b"a")}
    content_store.blobs.put("notes/readme.txt", b"not a blob")
    content_store.blobs.put(f"{BLOB_PREFIX}/zz/not-a-digest", b"not a blob either")
    content_store.blobs.put(f"{BLOB_PREFIX}/readme", b"nor this")

    assert len(stored) == 3
    assert sorted(content_store.digests()) == sorted(stored)


def test_deleted_blob_is_gone_from_digests(content_store: ContentStore) -> None:
    kept = content_store.put_bytes(b"kept").digest
    dropped = content_store.put_bytes(b"dropped").digest

    content_store.delete(dropped)

    assert list(content_store.digests()) == [kept]
    assert not content_store.exists(dropped)
    with pytest.raises(BlobNotFoundError):
        content_store.read_bytes(dropped)


# --- a second client of the same store (another process) -------------------------------


@pytest.fixture
def other_client(blob_store: BlobStore) -> Iterator[BlobStore]:
    """An independent client of the same store, as another process would open it."""
    other = open_blob_store(blob_store.uri, skip_instance_cache=True)
    yield other
    other.close()


@WRITERS
def test_blob_written_by_another_client_is_seen(
    blob_store: BlobStore,
    other_client: BlobStore,
    write: Callable[[BlobStore, str, bytes], bool],
) -> None:
    blob_store.put("a/old", b"old")
    assert list(blob_store.list("a")) == ["a/old"]
    assert not blob_store.exists("a/new")

    assert other_client.put("a/new", b"from elsewhere") is True

    assert blob_store.exists("a/new")
    assert blob_store.size("a/new") == len(b"from elsewhere")
    assert _read(blob_store, "a/new") == b"from elsewhere"
    assert sorted(blob_store.list("a")) == ["a/new", "a/old"]
    assert write(blob_store, "a/new", b"second writer") is False
    assert _read(other_client, "a/new") == b"from elsewhere"


def test_blob_deleted_by_another_client_is_gone(
    blob_store: BlobStore, other_client: BlobStore
) -> None:
    blob_store.put("a/1", b"1")
    blob_store.put("a/2", b"2")
    assert sorted(blob_store.list("a")) == ["a/1", "a/2"]
    assert blob_store.exists("a/1")

    other_client.delete("a/1")

    assert not blob_store.exists("a/1")
    with pytest.raises(NotFoundError):
        blob_store.open("a/1")
    with pytest.raises(NotFoundError):
        blob_store.size("a/1")
    assert list(blob_store.list("a")) == ["a/2"]
    assert blob_store.put("a/1", b"again") is True
    assert _read(other_client, "a/1") == b"again"
