from __future__ import annotations

import os
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Column, MetaData, String, Table

from shipyard.app import Shipyard
from shipyard.stores.artifacts.local import LocalBlobStore
from shipyard.stores.metadata import schema as schema_module


def _blob_path(project: Shipyard, digest: str) -> Path:
    store = project.content.blobs
    assert isinstance(store, LocalBlobStore)
    return store.root.joinpath(*project.content.key_of(digest).split("/"))


@pytest.fixture
def referencing(project: Shipyard, monkeypatch: pytest.MonkeyPatch) -> Table:
    """A table whose digest column references blobs, as a domain table would."""
    extra = MetaData()
    table = Table("refs", extra, Column("digest", String(71), info={"digest": True}))
    extra.create_all(project.metadata.engine)
    monkeypatch.setattr(schema_module, "metadata", extra)
    return table


def test_fsck_of_a_healthy_store_finds_nothing(project: Shipyard) -> None:
    for i in range(5):
        project.blobs.put(f"blob {i}".encode())
    report = project.maintenance.fsck()
    assert report.ok
    assert report.blobs_checked == 5


def test_fsck_finds_a_blob_with_one_flipped_bit(project: Shipyard) -> None:
    good = project.blobs.put(b"a" * 10_000)
    bad = project.blobs.put(b"b" * 10_000)
    path = _blob_path(project, bad.digest)
    data = bytearray(path.read_bytes())
    data[5000] ^= 0x01
    path.write_bytes(bytes(data))
    seen: list[tuple[int, int | None]] = []
    report = project.maintenance.fsck(progress=lambda d, t: seen.append((d, t)))
    assert not report.ok
    assert [c["digest"] for c in report.corrupt] == [bad.digest]
    assert report.corrupt[0]["actual"] != bad.digest
    assert good.digest not in {c["digest"] for c in report.corrupt}
    assert seen[-1] == (2, 2)


def test_fsck_reports_a_referenced_blob_that_is_missing(
    project: Shipyard, referencing: Table
) -> None:
    info = project.blobs.put(b"referenced")
    with project.metadata.write() as conn:
        conn.execute(referencing.insert().values(digest=info.digest))
    assert project.maintenance.fsck().ok
    _blob_path(project, info.digest).unlink()
    report = project.maintenance.fsck()
    assert report.missing == [info.digest]


def test_gc_dry_run_lists_unreferenced_blobs_and_deletes_nothing(
    project: Shipyard, referencing: Table
) -> None:
    kept = project.blobs.put(b"kept")
    loose = project.blobs.put(b"loose")
    with project.metadata.write() as conn:
        conn.execute(referencing.insert().values(digest=kept.digest))
    report = project.maintenance.gc(dry_run=True, grace=timedelta(0))
    assert report.unreferenced == [loose.digest]
    assert report.bytes == 5
    assert report.deleted == []
    assert project.content.exists(loose.digest) and project.content.exists(kept.digest)


def test_gc_never_deletes_a_referenced_or_young_blob(project: Shipyard, referencing: Table) -> None:
    kept = project.blobs.put(b"kept")
    old = project.blobs.put(b"old and loose")
    young = project.blobs.put(b"young and loose")
    with project.metadata.write() as conn:
        conn.execute(referencing.insert().values(digest=kept.digest))
    an_hour_ago = time.time() - 7200
    os.utime(_blob_path(project, old.digest), (an_hour_ago, an_hour_ago))
    report = project.maintenance.gc(dry_run=False, grace=timedelta(hours=1))
    assert report.deleted == [old.digest]
    assert project.content.exists(kept.digest)
    assert project.content.exists(young.digest)
    assert not project.content.exists(old.digest)
    assert project.maintenance.fsck().ok


def test_info_reports_both_stores_reachable(project: Shipyard) -> None:
    info = project.maintenance.info()
    assert info.metadata_reachable and info.artifact_reachable
    assert info.schema_revision == info.schema_head
    assert info.user == "alice"
    assert "password" not in info.to_dict()["metadata_uri"]
