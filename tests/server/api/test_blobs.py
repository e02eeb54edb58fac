"""Content by digest through a real server: verified uploads, limits, verified downloads."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from blake3 import blake3
from sqlalchemy import func, select

from shipyard.app import Shipyard
from shipyard.client.blobs import RemoteBlobs
from shipyard.client.datasets import RemoteObjects
from shipyard.client.http import ApiClient
from shipyard.domain.digests import format_digest
from shipyard.errors import (
    BodyTooLargeError,
    CorruptBlobError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    StoreUnavailableError,
)
from shipyard.services.objects import LocalFile
from shipyard.stores.metadata.schema import objects

from .conftest import ApiServer, Team


def _digest(data: bytes) -> str:
    return format_digest(blake3(data).hexdigest())


def _object_count(project: Shipyard) -> int:
    with project.metadata.read() as conn:
        return int(conn.execute(select(func.count()).select_from(objects)).scalar_one())


def _uploads_left(project: Shipyard) -> list[str]:
    scratch = project.settings.state_dir / "tmp" / "uploads"
    return [p.name for p in scratch.iterdir()] if scratch.exists() else []


@pytest.fixture
def blobs_as(team: Team) -> Iterator[dict[str, RemoteBlobs]]:
    clients = {role: ApiClient(team.url, team.tokens[role]) for role in ("viewer", "editor")}
    yield {role: RemoteBlobs(client) for role, client in clients.items()}
    for client in clients.values():
        client.close()


def test_files_go_up_once_and_come_back_byte_identical(
    team: Team, blobs_as: dict[str, RemoteBlobs], tmp_path: Path
) -> None:
    sizes = {"empty.bin": 0, "small.txt": 1_000, "medium.bin": 3 * 1024**2, "big.bin": 20 * 1024**2}
    files = []
    for name, size in sizes.items():
        (tmp_path / name).write_bytes(os.urandom(size))
        files.append(LocalFile(tmp_path / name, name))
    editor, viewer = blobs_as["editor"], blobs_as["viewer"]
    stored = editor.upload_files(files)
    assert [f.size for f in stored] == list(sizes.values())
    assert editor.missing([f.digest for f in stored]) == []
    for entry in stored:
        original = (tmp_path / entry.name).read_bytes()
        assert entry.digest == _digest(original)
        assert viewer.read_bytes(entry.digest) == original
        RemoteObjects(viewer).export(entry.digest, tmp_path / "out" / entry.name)
        assert (tmp_path / "out" / entry.name).read_bytes() == original
    # the same content again is not sent, and a direct PUT of it answers 200 (not new)
    count = _object_count(team.project)
    assert editor.upload_files(files) == stored
    with team.client("editor") as http:
        body = (tmp_path / "small.txt").read_bytes()
        again = http.put(f"/api/v1/blobs/{_digest(body)}", content=body)
        assert again.status_code == 200 and again.json()["new"] is False
        head = http.head(f"/api/v1/blobs/{_digest(body)}")
        assert head.status_code == 200 and head.headers["content-length"] == "1000"
    assert _object_count(team.project) == count


def test_bytes_that_do_not_hash_to_the_claimed_digest_are_refused_and_not_stored(
    team: Team, blobs_as: dict[str, RemoteBlobs]
) -> None:
    claimed = _digest(b"what I said I would send")
    before = _object_count(team.project)
    with team.client("editor") as http:
        answer = http.put(f"/api/v1/blobs/{claimed}", content=b"something else")
    assert answer.status_code == 422
    assert claimed in answer.json()["error"]["message"]
    assert "nothing was stored" in answer.json()["error"]["message"]
    assert _object_count(team.project) == before
    assert blobs_as["editor"].missing([claimed]) == [claimed]
    assert _uploads_left(team.project) == []
    with pytest.raises(NotFoundError, match=claimed):
        blobs_as["viewer"].read_bytes(claimed)


def test_uploads_over_the_limit_are_refused_declared_or_streamed(project: Shipyard) -> None:
    project.users.create("alice", ["admin"])
    _, token = project.tokens.create("alice", "t")
    server = ApiServer(project, auth=True, upload_limit=64 * 1024)
    try:
        big = os.urandom(64 * 1024 + 1)
        digest = _digest(big)
        headers = {"authorization": f"Bearer {token}"}
        with httpx.Client(base_url=server.url, headers=headers) as http:
            declared = http.put(f"/api/v1/blobs/{digest}", content=big)
            assert declared.status_code == 413
            assert "65536" in declared.json()["error"]["message"]

            def chunked() -> Iterator[bytes]:  # no content-length: counted as it streams
                for start in range(0, len(big), 8192):
                    yield big[start : start + 8192]

            streamed = http.put(f"/api/v1/blobs/{digest}", content=chunked())
            assert streamed.status_code == 413
            fits = big[:-1]
            assert http.put(f"/api/v1/blobs/{_digest(fits)}", content=fits).status_code == 201
        client = ApiClient(server.url, token)
        with pytest.raises(BodyTooLargeError, match="upload_limit"):
            RemoteBlobs(client).upload_bytes(big)
        assert RemoteBlobs(client).missing([digest]) == [digest]
        client.close()
        assert _uploads_left(project) == []
    finally:
        server.stop()


def test_readers_cannot_upload_and_malformed_digests_are_refused(
    team: Team, blobs_as: dict[str, RemoteBlobs]
) -> None:
    with pytest.raises(PermissionDeniedError, match="vic"):
        blobs_as["viewer"].upload_bytes(b"from a viewer")
    with team.client("admin") as http:
        for bad in ("blake3:" + "0" * 63, "sha256:" + "0" * 64, "BLAKE3:" + "A" * 64, "x"):
            assert http.get(f"/api/v1/blobs/{bad}").status_code == 422
            assert http.put(f"/api/v1/blobs/{bad}", content=b"x").status_code == 422
        answer = http.post("/api/v1/blobs/missing", json={"digests": ["../../etc/passwd"]})
        assert answer.status_code == 422
    with pytest.raises(InvalidArgumentError):
        blobs_as["editor"].missing(["not-a-digest"])


def test_a_corrupted_stored_blob_never_reaches_a_file(
    team: Team, blobs_as: dict[str, RemoteBlobs], tmp_path: Path
) -> None:
    data = os.urandom(30 * 1024**2)  # chunked on the server: several stored blobs
    digest = blobs_as["editor"].upload_bytes(data)
    root = Path(team.project.content.uri.removeprefix("file://"))
    stored = sorted((root / "blobs").rglob("*"), key=lambda p: p.stat().st_size)
    victim = stored[-1]
    raw = bytearray(victim.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    victim.chmod(0o644)
    victim.write_bytes(bytes(raw))
    dest = tmp_path / "copy.bin"
    with pytest.raises((CorruptBlobError, StoreUnavailableError)):
        RemoteObjects(blobs_as["viewer"]).export(digest, dest)
    assert not dest.exists()
    assert not list(tmp_path.glob(".copy.bin.part"))


def _batch(files: list[tuple[str, bytes]]) -> bytes:
    header = {"files": [[digest, len(data)] for digest, data in files]}
    return json.dumps(header).encode() + b"\n" + b"".join(data for _, data in files)


def test_a_batch_of_small_files_goes_up_in_one_request_all_or_nothing(
    team: Team, blobs_as: dict[str, RemoteBlobs]
) -> None:
    parts = [os.urandom(n) for n in (0, 10, 5000, 70_000)]
    good = [(_digest(p), p) for p in parts]
    before = _object_count(team.project)
    with team.client("editor") as http:
        answer = http.post("/api/v1/blobs/batch", content=_batch(good))
        assert answer.status_code == 200, answer.text
        assert [s["new"] for s in answer.json()["stored"]] == [True] * 4
        again = http.post("/api/v1/blobs/batch", content=_batch(good[:2]))
        assert [s["new"] for s in again.json()["stored"]] == [False, False]
    assert _object_count(team.project) == before + 4
    for digest, data in good:
        assert blobs_as["viewer"].read_bytes(digest) == data
    fresh = [(_digest(p), p) for p in (os.urandom(100), os.urandom(200))]
    wrong = [fresh[0], (fresh[1][0], b"x" * 200)]
    bad_bodies = {
        "hashes to": _batch(wrong),
        "ends inside file 1": _batch(fresh)[:-1],
        "runs on": _batch(fresh) + b"!",
        "JSON line": b"not json\n" + fresh[0][1],
        "1 to": b'{"files": []}\n',
        "whole number": json.dumps({"files": [[fresh[0][0], -1]]}).encode() + b"\n",
    }
    with team.client("editor") as http:
        for problem, body in bad_bodies.items():
            answer = http.post("/api/v1/blobs/batch", content=body)
            assert answer.status_code == 422, (problem, answer.text)
            assert problem in answer.json()["error"]["message"]
    assert _object_count(team.project) == before + 4
    assert blobs_as["editor"].missing([d for d, _ in fresh]) == [d for d, _ in fresh]
    assert _uploads_left(team.project) == []
    with team.client("viewer") as http:
        assert http.post("/api/v1/blobs/batch", content=_batch(fresh)).status_code == 403


def test_the_client_sends_small_files_in_batches_and_big_ones_alone(
    team: Team, blobs_as: dict[str, RemoteBlobs], tmp_path: Path
) -> None:
    sizes = [16] * 2500 + [5 * 1024 * 1024]  # two batches of small files, one file alone
    files = []
    for index, size in enumerate(sizes):
        (tmp_path / f"f{index}").write_bytes(os.urandom(size))
        files.append(LocalFile(tmp_path / f"f{index}", f"f{index}"))
    requests: list[str] = []
    team.server.app.middleware_stack = None  # rebuilt with the counter below
    original = team.server.app.build_middleware_stack

    def counting() -> Any:
        inner = original()

        async def app(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] == "http" and scope["method"] in ("POST", "PUT"):
                requests.append(f"{scope['method']} {scope['path'].rsplit('/', 1)[-1]}")
            await inner(scope, receive, send)

        return app

    team.server.app.build_middleware_stack = counting  # type: ignore[method-assign]
    stored = blobs_as["editor"].upload_files(files)
    assert sorted(set(requests)) == ["POST batch", "POST missing", f"PUT {stored[-1].digest}"]
    assert requests.count("POST batch") == 2
    assert blobs_as["editor"].missing([f.digest for f in stored]) == []
