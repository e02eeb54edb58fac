"""The ingest fast paths: folder snapshots in the stat cache, columnar digests, one-pass chunking,
thinned Parquet samples."""

from __future__ import annotations

import os
import time
from array import array
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from blake3 import blake3
from pyfastcdc import FastCDC

from shipyard.app import Shipyard
from shipyard.domain.datasets import ManifestEntry, content_digest
from shipyard.errors import ConflictError, UnsafePathError
from shipyard.services import chunking
from shipyard.services.chunking import CDC_AVG, CDC_MAX, CDC_MIN, CHUNK_FROM, plan_chunks
from shipyard.services.objects import (
    FileSet,
    LocalFile,
    check_relative_path,
    check_relative_paths,
    content_identity,
)
from shipyard.services.parquet_footers import read_footers, sample_row_groups
from shipyard.services.sources import resolve_source
from shipyard.stores.statcache import FolderSnapshot, StatCache

OLD = time.time() - 60  # older than the racily-clean window of the stat cache


def _digest(data: bytes) -> str:
    return "blake3:" + blake3(data).hexdigest()


def _folder(root: Path, count: int) -> Path:
    root.mkdir()
    for i in range(count):
        path = root / f"{i:03d}.txt"
        path.write_text(f"file {i}")
        os.utime(path, (OLD, OLD))
    return root


def test_a_readd_after_touching_one_file_rehashes_only_that_file(
    project: Shipyard, tmp_path: Path
) -> None:
    folder = _folder(tmp_path / "f", 30)
    first = project.datasets.add("f", folder)
    assert first.hashed_files == 30
    os.utime(folder / "007.txt", (OLD + 5, OLD + 5))  # touched: same content, new mtime
    again = project.datasets.add("f", folder)
    assert not again.created and again.hashed_files == 1
    unchanged = project.datasets.add("f", folder)
    assert not unchanged.created and unchanged.hashed_files == 0


def test_a_change_that_keeps_size_and_mtime_is_found_by_its_ctime(
    project: Shipyard, tmp_path: Path
) -> None:
    folder = _folder(tmp_path / "f", 5)
    project.datasets.add("f", folder)
    path = folder / "002.txt"
    before = path.stat()
    time.sleep(0.02)  # past the file system's clock tick, so the ctime moves on
    path.write_text("file X")  # same size as "file 2"
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # mtime put back
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (
        before.st_size,
        before.st_mtime_ns,
        before.st_ino,
    )
    changed = project.datasets.add("f", folder)
    assert changed.created and changed.hashed_files == 1
    out = tmp_path / "out"
    project.datasets.export(changed.version, out)
    assert (out / "002.txt").read_text() == "file X"


def test_files_added_and_removed_are_matched_by_name(project: Shipyard, tmp_path: Path) -> None:
    folder = _folder(tmp_path / "f", 10)
    project.datasets.add("f", folder)
    (folder / "003.txt").unlink()
    (folder / "new.txt").write_text("new")
    result = project.datasets.add("f", folder)
    assert result.created and result.hashed_files == 1  # only the new file is read
    names = [f.path for f in project.datasets.manifest(result.version)]
    assert "new.txt" in names and "003.txt" not in names


def test_a_racily_clean_file_is_hashed_again(project: Shipyard, tmp_path: Path) -> None:
    folder = _folder(tmp_path / "f", 3)
    (folder / "fresh.txt").write_text("just written")  # mtime now: inside the racy window
    assert project.datasets.add("f", folder).hashed_files == 4
    again = project.datasets.add("f", folder)
    assert not again.created and again.hashed_files == 1


def test_a_folder_walk_is_a_fileset_of_local_files(tmp_path: Path) -> None:
    folder = _folder(tmp_path / "f", 3)
    (folder / "sub").mkdir()
    (folder / "sub" / "x.bin").write_bytes(b"x")
    with resolve_source(folder, scratch=tmp_path / "scratch") as resolved:
        files = resolved.files
    assert isinstance(files, FileSet) and files.key == str(folder.resolve())
    assert files.names == ["000.txt", "001.txt", "002.txt", "sub/x.bin"]
    last = files[-1]
    info = (folder / "sub" / "x.bin").stat()
    assert last == LocalFile(str(folder.resolve() / "sub" / "x.bin"), "sub/x.bin")
    assert last.stat == (info.st_size, info.st_mtime_ns, info.st_ino)
    assert files.stats[-1] == info.st_ctime_ns
    assert [f.name for f in files[1:3]] == ["001.txt", "002.txt"]


def test_a_single_file_reached_by_a_symlink_keeps_its_name(tmp_path: Path) -> None:
    (tmp_path / "real.csv").write_text("a\n1\n")
    (tmp_path / "link.csv").symlink_to(tmp_path / "real.csv")
    with resolve_source(tmp_path / "link.csv", scratch=tmp_path / "scratch") as resolved:
        (local,) = list(resolved.files)
    assert local.name == "link.csv" and Path(local.location) == (tmp_path / "real.csv")


def test_the_columnar_identity_is_the_domain_content_digest() -> None:
    names = ["b/é.txt", "a.txt", "a/b", "日本", "a-b"]
    digests = [_digest(name.encode()) for name in names]
    entries = [ManifestEntry(n, 1, d) for n, d in zip(names, digests, strict=True)]
    assert content_identity(names, digests) == content_digest(entries)


@pytest.mark.parametrize(
    "name", ["", "/abs", "a//b", "a/", "./a", "a/./b", "a/..", "..", ".", "a\\b", "a\0b"]
)
def test_checking_many_names_refuses_what_checking_one_refuses(name: str) -> None:
    with pytest.raises(UnsafePathError):
        check_relative_path(name)
    with pytest.raises(UnsafePathError):
        check_relative_paths(["ok.txt", name, "fine/too.txt"])


def test_checking_many_names_passes_plain_ones() -> None:
    check_relative_paths(["a.txt", "sub/b", "..a", "a..", ".hidden", "x/.y/z"])
    check_relative_paths([])


def test_a_snapshot_round_trips_and_reports_what_changed(tmp_path: Path) -> None:
    cache = StatCache(tmp_path / "stat.db")
    try:
        old = time.time_ns() - 10**10
        stats = array("q", [1, old, 10, old, 2, old, 11, old])
        cache.save_folder("/data/f", FolderSnapshot.of(["a", "b"], stats, ["d1", "d2"], "id"))
        snapshot = cache.folder("/data/f")
        assert snapshot is not None and cache.folder("/data/other") is None
        assert snapshot.names() == ["a", "b"] and snapshot.digests() == ["d1", "d2"]
        assert snapshot.identity == "id"
        assert snapshot.changed(["a", "b"], stats) == []
        moved = array("q", stats)
        moved[5] += 1  # b's mtime
        assert snapshot.changed(["a", "b"], moved) == [1]
        assert snapshot.changed(["a", "c"], stats) is None
        fresh = array("q", [1, time.time_ns(), 10, old])
        racy = FolderSnapshot.of(["a"], fresh, ["d1"], "id")
        assert racy.changed(["a"], fresh) == [0]  # a racily clean file never matches
    finally:
        cache.close()


def _write(path: Path, size: int) -> bytes:
    data = os.urandom(size)
    path.write_bytes(data)
    return data


@pytest.mark.parametrize("extra", [0, 12_345, 3 * 1024 * 1024 + 1])
def test_a_chunk_plan_cuts_as_fastcdc_over_the_whole_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extra: int
) -> None:
    monkeypatch.setattr(chunking, "SEGMENT", 8 * 1024 * 1024)  # many segments, many carries
    data = _write(tmp_path / "big.bin", 3 * 8 * 1024 * 1024 + extra)
    whole = FastCDC(CDC_AVG, min_size=CDC_MIN, max_size=CDC_MAX)
    expected = [(c.offset, c.length, _digest(bytes(c.data))) for c in whole.cut_buf(data)]
    plan = plan_chunks(str(tmp_path / "big.bin"))
    assert list(plan.chunks) == expected
    assert (plan.digest, plan.size) == (_digest(data), len(data))
    assert all(size <= CDC_MAX for _, size, _ in plan.chunks)


def test_a_large_file_is_read_once_when_hashed_and_stored_as_planned(
    project: Shipyard, tmp_path: Path
) -> None:
    data = _write(tmp_path / "big.bin", CHUNK_FROM + 2 * 1024 * 1024)
    files = [LocalFile(tmp_path / "big.bin", "big.bin")]
    stored, _ = project.objects.hash(files)
    assert project.objects._plans[stored[0].digest].size == len(data)
    staged = project.objects.stage(files, stored)
    assert staged.new_bytes == len(data)
    with project.metadata.write() as conn:
        project.objects.commit(conn, staged)
    assert project.objects.read_bytes(stored[0].digest) == data
    # the same content again: every chunk is stored already, nothing is written
    (tmp_path / "copy.bin").write_bytes(data[:-1] + b"!")
    again = [LocalFile(tmp_path / "copy.bin", "copy.bin")]
    stored_again, _ = project.objects.hash(again)
    staged_again = project.objects.stage(again, stored_again)
    assert 0 < staged_again.new_bytes <= CDC_MAX


def test_a_large_file_changed_after_its_plan_is_refused_in_a_known_chunk_too(
    project: Shipyard, tmp_path: Path
) -> None:
    path = tmp_path / "big.bin"
    _write(path, CHUNK_FROM + 1024 * 1024)
    files = [LocalFile(path, "big.bin")]
    stored, _ = project.objects.hash(files)
    with path.open("r+b") as file:
        file.write(b"changed")  # the first chunk, which no earlier add stored
    with pytest.raises(ConflictError, match="changed"):
        project.objects.stage(files, stored)


def test_many_new_objects_commit_in_one_insert_and_again_when_some_exist(
    project: Shipyard, tmp_path: Path
) -> None:
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(600):
        (folder / f"{i}.bin").write_bytes(f"content {i}".encode())
    with resolve_source(folder, scratch=tmp_path / "scratch") as resolved:
        files = resolved.files
        digested = project.objects.digest(files)
        staged = project.objects.stage(files, digested)
        # a concurrent add recorded one of them meanwhile: the bulk insert falls back
        with project.metadata.write() as conn:
            single = type(staged)(staged.files, staged.object_rows[:1])
            project.objects.commit(conn, single)
        with project.metadata.write() as conn:
            project.objects.commit(conn, staged)
    assert project.objects.known(set(digested.digests)) == set(digested.digests)
    seventeen = digested.digests[digested.names.index("17.bin")]
    assert project.objects.read_bytes(seventeen) == b"content 17"


def test_big_row_groups_are_thinned_to_the_sample(tmp_path: Path) -> None:
    rows = 40_000
    table = pa.table({"id": pa.array(range(rows), pa.int64())})
    pq.write_table(table, tmp_path / "t.parquet", row_group_size=rows // 2)
    files = [tmp_path / "t.parquet"]
    footers = read_footers(files, ["id"])
    sample = sample_row_groups(files, footers.groups, 5_000)
    assert sample is not None and sample.num_rows == 5_000
    ids = sample.column("id").to_pylist()
    assert ids == sorted(ids) and ids[1] - ids[0] >= 2  # spread, not the first rows
