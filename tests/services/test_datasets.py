from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest
from sqlalchemy import func, select

from shipyard.app import Shipyard
from shipyard.errors import (
    DatasetNotFoundError,
    InvalidArgumentError,
    InvalidNameError,
    InvalidReferenceError,
    SourceError,
    UnsafePathError,
)
from shipyard.stores.metadata.schema import dataset_versions


def _table(n: int = 200, shift: float = 0.0) -> pa.Table:
    return pa.table(
        {
            "id": list(range(n)),
            "x": [i * 0.5 + shift for i in range(n)],
            "color": [["red", "green", "blue"][i % 3] for i in range(n)],
        }
    )


def _count_versions(project: Shipyard) -> int:
    with project.metadata.read() as conn:
        return int(conn.execute(select(func.count()).select_from(dataset_versions)).scalar() or 0)


def test_adding_a_csv_makes_version_1_with_schema_and_profile(
    project: Shipyard, tmp_path: Path
) -> None:
    pcsv.write_csv(_table(), tmp_path / "t.csv")
    result = project.datasets.add(
        "customers",
        tmp_path / "t.csv",
        description="# Customers\nOne row per customer.",
        tags={"team": "growth"},
        key="id",
        license="CC-BY-4.0",
    )
    version = result.version
    assert result.created and version.ref == "customers@1"
    assert (version.kind, version.format, version.rows, version.file_count) == (
        "table",
        "csv",
        200,
        1,
    )
    assert [c.name for c in version.schema or ()] == ["id", "x", "color"]
    assert version.key_columns == ("id",)
    assert version.card.tags == {"team": "growth"}
    assert version.card.owner == "alice" and version.created_by == "alice"
    assert version.card.source_uri == str((tmp_path / "t.csv").resolve())
    profile = project.datasets.profile(version)
    assert profile is not None
    assert profile.column("x").mean == pytest.approx(sum(i * 0.5 for i in range(200)) / 200)
    assert project.datasets.resolve("customers") == version
    assert project.datasets.get("customers@1").version == version
    assert [e.action for e in project.audit.list()] == ["dataset.add"]


def test_same_content_returns_the_existing_version(project: Shipyard, tmp_path: Path) -> None:
    pq.write_table(_table(), tmp_path / "t.parquet")
    first = project.datasets.add("d", tmp_path / "t.parquet")
    again = project.datasets.add("d", tmp_path / "t.parquet")
    assert not again.created
    assert again.version == first.version
    assert again.new_bytes == 0
    assert _count_versions(project) == 1


def test_changed_content_makes_the_next_version_with_its_parent(
    project: Shipyard, tmp_path: Path
) -> None:
    path = tmp_path / "t.parquet"
    pq.write_table(_table(), path)
    project.datasets.add("d", path)
    pq.write_table(_table(shift=1.0), path)
    second = project.datasets.add("d", path)
    assert second.created and second.version.version == 2 and second.version.parent == 1
    assert project.datasets.resolve("d@latest").version == 2
    assert [v.version for v in project.datasets.versions("d")] == [1, 2]


def test_a_folder_of_files_is_stored_once_per_distinct_content(
    project: Shipyard, tmp_path: Path
) -> None:
    folder = tmp_path / "images"
    (folder / "sub").mkdir(parents=True)
    for i in range(20):
        (folder / f"{i:02}.bin").write_bytes(bytes([i % 5]) * 1000)  # 5 distinct contents
    (folder / "sub" / "big.bin").write_bytes(os.urandom(3 * 1024 * 1024))
    result = project.datasets.add("images", folder)
    version = result.version
    assert version.kind == "files" and version.format is None and version.file_count == 21
    names = {e.path for e in project.datasets.manifest(version)}
    assert "sub/big.bin" in names and "00.bin" in names
    assert result.new_bytes < 5 * 1000 + 3 * 1024 * 1024 + 10_000
    out = tmp_path / "out"
    project.datasets.export(version, out)
    assert (out / "sub" / "big.bin").read_bytes() == (folder / "sub" / "big.bin").read_bytes()
    assert (out / "07.bin").read_bytes() == bytes([2]) * 1000
    assert project.maintenance.fsck().ok


def test_readding_an_unchanged_folder_hashes_nothing(project: Shipyard, tmp_path: Path) -> None:
    folder = tmp_path / "f"
    folder.mkdir()
    for i in range(50):
        (folder / f"{i}.txt").write_text(f"file {i}")
    old = time.time() - 60  # older than the racy-clean window of the stat cache
    for path in folder.iterdir():
        os.utime(path, (old, old))
    first = project.datasets.add("f", folder)
    assert first.hashed_files == 50
    again = project.datasets.add("f", folder)
    assert not again.created and again.hashed_files == 0
    (folder / "3.txt").write_text("changed")
    changed = project.datasets.add("f", folder)
    assert changed.created and changed.hashed_files == 1


def test_a_large_table_with_appended_rows_stores_only_a_few_new_bytes(
    project: Shipyard, tmp_path: Path
) -> None:
    path = tmp_path / "big.csv"
    rows = [f"{i},{i * 7 % 1000},name-{i % 97}\n" for i in range(1_200_000)]
    path.write_text("id,value,name\n" + "".join(rows))
    first = project.datasets.add("big", path)
    size = path.stat().st_size
    assert size > 20 * 1024 * 1024
    with path.open("a") as out:
        out.writelines(f"{i},{i % 13},late-{i}\n" for i in range(1_200_000, 1_212_000))
    second = project.datasets.add("big", path)
    assert second.created and second.version.rows == 1_212_000
    assert second.new_bytes < 0.1 * size, (second.new_bytes, size)
    out = tmp_path / "out"
    project.datasets.export(second.version, out)
    assert (out / "big.csv").read_bytes() == path.read_bytes()
    assert first.version.rows == 1_200_000


def test_labels_resolve_and_move(project: Shipyard, tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    pq.write_table(_table(), path)
    project.datasets.add("d", path)
    pq.write_table(_table(shift=2), path)
    project.datasets.add("d", path)
    project.datasets.label("d@1", "golden")
    assert project.datasets.resolve("d@golden").version == 1
    project.datasets.label("d@2", "golden")
    assert project.datasets.resolve("d@golden").version == 2
    with pytest.raises(InvalidArgumentError):
        project.datasets.label("d@1", "latest")


def test_python_tables_are_accepted(project: Shipyard) -> None:
    import pandas as pd
    import polars as pl

    arrow = project.datasets.add("a", _table())
    frame = project.datasets.add("b", pd.DataFrame({"id": [1, 2], "v": ["x", "y"]}))
    polar = project.datasets.add("c", pl.DataFrame({"id": [1, 2, 3]}))
    assert arrow.version.rows == 200 and arrow.version.format == "parquet"
    assert frame.version.rows == 2 and polar.version.rows == 3
    assert project.datasets.add("a", _table()).created is False


def test_a_sql_query_is_a_source(project: Shipyard, tmp_path: Path) -> None:
    import sqlite3

    db = tmp_path / "src.db"
    with sqlite3.connect(db) as conn:
        conn.execute("create table t (id integer, name text)")
        conn.executemany("insert into t values (?, ?)", [(i, f"n{i}") for i in range(10)])
    result = project.datasets.add("q", sql="select * from t where id < 5", db=f"sqlite:///{db}")
    assert result.version.rows == 5
    assert result.version.card.source_uri == f"sqlite:///{db}"
    with pytest.raises(SourceError, match="no such table"):
        project.datasets.add("q", sql="select * from nowhere", db=f"sqlite:///{db}")
    assert _count_versions(project) == 1


@pytest.mark.parametrize(
    ("name", "error"),
    [("a/b", InvalidNameError), ("..", InvalidNameError), ("../../etc", InvalidNameError)],
)
def test_bad_names_are_refused_and_nothing_is_stored(
    project: Shipyard, tmp_path: Path, name: str, error: type[Exception]
) -> None:
    pq.write_table(_table(), tmp_path / "t.parquet")
    with pytest.raises(error):
        project.datasets.add(name, tmp_path / "t.parquet")
    assert _count_versions(project) == 0


def test_bad_sources_get_clear_errors_and_leave_no_version(
    project: Shipyard, tmp_path: Path
) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    bad = tmp_path / "bad.csv"
    bad.write_text('a,b\n1,2\n3,"4\n5,6\n7,8,9\n')
    mixed = tmp_path / "mixed.csv"
    mixed.write_text("a,b\n1,2\n3,4,5\n")
    (tmp_path / "nofiles").mkdir()
    cases = [
        (tmp_path / "missing.csv", SourceError, "no such file"),
        (tmp_path / "nofiles", SourceError, "no files"),
        (empty, InvalidArgumentError, "empty"),
        (mixed, InvalidArgumentError, "line"),
        ("http://127.0.0.1:9/nothing.csv", SourceError, "unreachable"),
    ]
    for source, error, message in cases:
        with pytest.raises(error, match=message):
            project.datasets.add("d", source)
    assert _count_versions(project) == 0


def test_unknown_versions_and_malformed_references(project: Shipyard, tmp_path: Path) -> None:
    pq.write_table(_table(), tmp_path / "t.parquet")
    project.datasets.add("d", tmp_path / "t.parquet")
    with pytest.raises(DatasetNotFoundError, match="versions 1 to 1"):
        project.datasets.get("d@7")
    with pytest.raises(DatasetNotFoundError, match="no dataset"):
        project.datasets.get("nope@1")
    with pytest.raises(DatasetNotFoundError):
        project.datasets.get("d@nolabel")
    with pytest.raises(InvalidReferenceError):
        project.datasets.get("d@1@2")


def test_a_symlink_leading_out_of_the_folder_is_refused(project: Shipyard, tmp_path: Path) -> None:
    folder = tmp_path / "f"
    folder.mkdir()
    (folder / "ok.txt").write_text("ok")
    secret = tmp_path / "secret.txt"
    secret.write_text("secret")
    (folder / "link.txt").symlink_to(secret)
    with pytest.raises(UnsafePathError, match="outside"):
        project.datasets.add("f", folder)
    assert _count_versions(project) == 0


def test_a_corrupt_blob_is_refused_on_read(project: Shipyard, tmp_path: Path) -> None:
    path = tmp_path / "data.bin"
    path.write_bytes(os.urandom(1_000_000))
    version = project.datasets.add("blob", path).version
    entry = project.datasets.manifest(version)[0]
    stored = project.content.blobs.root  # type: ignore[attr-defined]
    hexdigest = entry.digest.split(":")[1]
    blob = Path(stored, "blobs", hexdigest[:2], hexdigest[2:])
    data = bytearray(blob.read_bytes())
    data[10] ^= 0xFF
    blob.write_bytes(bytes(data))
    from shipyard.errors import CorruptBlobError

    with pytest.raises(CorruptBlobError):
        project.datasets.export(version, tmp_path / "out")
    assert not (tmp_path / "out" / "data.bin").exists()
    assert not project.maintenance.fsck().ok


def test_a_killed_add_leaves_no_version(
    project: Shipyard, tmp_path: Path, add_killed_while_storing: Callable[[str, Path, int], None]
) -> None:
    path = tmp_path / "big.bin"
    path.write_bytes(os.urandom(64 * 1024 * 1024))
    # the chunks of a large file are stored as it is read, each by put_hashed
    add_killed_while_storing("big", path, 6)
    assert _count_versions(project) == 0
    assert project.maintenance.fsck().ok
    from datetime import timedelta

    orphans = project.maintenance.gc(dry_run=True, grace=timedelta(0)).unreferenced
    assert len(orphans) == 5, "the chunks stored before the kill are garbage, not a version"
    with pytest.raises(DatasetNotFoundError):
        project.datasets.get("big")
    assert json.dumps(project.datasets.list()) == "[]"


def test_an_http_url_is_a_source(project: Shipyard, tmp_path: Path) -> None:
    import functools
    import http.server
    import threading

    served = tmp_path / "www"
    served.mkdir()
    pcsv.write_csv(_table(50), served / "remote.csv")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *a: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/remote.csv"
        result = project.datasets.add("web", url)
        assert result.version.rows == 50
        assert result.version.card.source_uri == url
        assert [e.path for e in project.datasets.manifest(result.version)] == ["remote.csv"]
        with pytest.raises(SourceError, match="404"):
            project.datasets.add("web", url.replace("remote", "missing"))
    finally:
        server.shutdown()
        server.server_close()
    assert _count_versions(project) == 1


def test_an_fsspec_url_is_a_source(project: Shipyard) -> None:
    import fsspec

    fs = fsspec.filesystem("memory")
    name = f"/src-{id(project)}"
    with fs.open(f"{name}/part-0.parquet", "wb") as out:
        pq.write_table(_table(10), out)
    with fs.open(f"{name}/part-1.parquet", "wb") as out:
        pq.write_table(_table(5), out)
    try:
        result = project.datasets.add("mem", f"memory://{name}")
        assert result.version.rows == 15
        assert result.version.file_count == 2
        with pytest.raises(SourceError, match="no such file"):
            project.datasets.add("mem", "memory:///nowhere/at/all.csv")
    finally:
        fs.rm(name, recursive=True)


def test_datasets_work_on_an_object_store(tmp_path: Path, metadata_uri: str) -> None:
    from shipyard.app import build
    from shipyard.settings import Settings

    root = tmp_path / "p"
    root.mkdir()
    settings = Settings.load(
        root, env={}, metadata_uri=metadata_uri, artifact_uri=f"memory://art-{id(root)}"
    )
    path = tmp_path / "t.csv"
    pcsv.write_csv(_table(300), path)
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(20 * 1024 * 1024))
    with build(settings) as project:
        table = project.datasets.add("t", path).version
        blob = project.datasets.add("b", big).version
        assert project.datasets.get(table.ref).to_arrow().num_rows == 300
        out = tmp_path / "out"
        project.datasets.export(blob, out)
        assert (out / "big.bin").read_bytes() == big.read_bytes()
        assert project.maintenance.fsck().ok


def test_a_dataframe_column_of_mixed_types_is_refused(project: Shipyard) -> None:
    import pandas as pd

    with pytest.raises(SourceError, match="mixes types"):
        project.datasets.add("mixed", pd.DataFrame({"a": [1, "x", 2.5]}))
    assert _count_versions(project) == 0


def test_a_big_table_is_profiled_while_its_bytes_are_stored(
    project: Shipyard, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shipyard.services import datasets as datasets_service

    monkeypatch.setattr(datasets_service, "_OVERLAP_FROM", 1)  # every table counts as big
    good = tmp_path / "good.csv"
    good.write_text("a,b\n1,x\n2,y\n3,z\n")
    mixed = tmp_path / "mixed.csv"
    mixed.write_text("a,b\n1,2\n3,4,5\n")

    added = project.datasets.add("d", good)
    with pytest.raises(InvalidArgumentError, match="line"):
        project.datasets.add("e", mixed)

    assert added.version.rows == 3
    profile = project.datasets.get("d@1").profile()
    assert profile is not None and profile.column("a").max == 3
    assert _count_versions(project) == 1  # the malformed table made no version
