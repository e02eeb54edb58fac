"""The fast paths of storing files: the folder walk, read-once small files, the background
blob writer, the stat-cache lookups and the manifest built without pandas."""

from __future__ import annotations

import gc
import os
import threading
import time
from pathlib import Path

import pytest
from blake3 import blake3

import shipyard.services.objects as objects_module
import shipyard.stores.statcache as statcache_module
from shipyard.app import Shipyard
from shipyard.errors import ConflictError, SourceError, UnsafePathError
from shipyard.services.objects import CHUNK_FROM, LocalFile, StoredFile
from shipyard.services.sources import resolve_source
from shipyard.stores.artifacts.content import ContentStore, hash_file
from shipyard.stores.statcache import StatCache


def _digest(data: bytes) -> str:
    return "blake3:" + blake3(data).hexdigest()


def _walked(folder: Path, scratch: Path) -> list[LocalFile]:
    with resolve_source(folder, scratch=scratch) as resolved:
        return resolved.files


def _os_walk_names(folder: Path) -> list[str]:
    """The names the folder walk gave before it was rewritten on os.scandir."""
    root = folder.resolve()
    names = []
    for parent, dirs, files in os.walk(root):
        dirs.sort()
        names += [Path(parent, name).relative_to(root).as_posix() for name in sorted(files)]
    return names


def test_the_walk_lists_files_in_os_walk_order_with_their_stat(tmp_path: Path) -> None:
    folder = tmp_path / "f"
    for name in ["b.txt", "a/z", "a/b/c", "a.txt", "B", "a-b/x", "ab/y", "é/1", "a/a"]:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(name)
    files = _walked(folder, tmp_path / "scratch")
    assert [f.name for f in files] == _os_walk_names(folder)
    for local in files:
        info = local.path.stat()
        assert local.stat == (info.st_size, info.st_mtime_ns, info.st_ino)
        assert local.path == folder.resolve() / local.name


def test_symlinks_in_a_folder_follow_the_os_walk_rules(tmp_path: Path) -> None:
    folder = tmp_path / "f"
    (folder / "sub").mkdir(parents=True)
    (folder / "real.txt").write_text("real")
    (folder / "link.txt").symlink_to(folder / "real.txt")
    (folder / "to-sub").symlink_to(folder / "sub", target_is_directory=True)
    (folder / "to-outside").symlink_to(tmp_path, target_is_directory=True)
    files = _walked(folder, tmp_path / "scratch")
    assert [f.name for f in files] == ["link.txt", "real.txt"]  # linked folders are skipped
    assert files[0].stat == files[1].stat  # a symlink stands for the file it leads to

    (tmp_path / "secret.txt").write_text("secret")
    (folder / "leak.txt").symlink_to(tmp_path / "secret.txt")
    with pytest.raises(UnsafePathError, match="outside"):
        _walked(folder, tmp_path / "scratch")
    (folder / "leak.txt").unlink()

    (folder / "dangling.txt").symlink_to(folder / "missing.txt")
    with pytest.raises(SourceError, match="not a regular file"):
        _walked(folder, tmp_path / "scratch")
    (folder / "dangling.txt").unlink()

    os.mkfifo(folder / "pipe")
    with pytest.raises(SourceError, match="not a regular file"):
        _walked(folder, tmp_path / "scratch")


def test_a_small_file_is_stored_as_it_was_hashed(project: Shipyard, tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_bytes(b"first")
    files = [LocalFile(path, "a.txt")]
    stored, hashed = project.objects.hash(files)
    assert hashed == 1 and stored[0].digest == _digest(b"first")
    path.write_bytes(b"second")  # the bytes read while hashing are the ones stored
    staged = project.objects.stage(files, stored)
    with project.metadata.write() as conn:
        project.objects.commit(conn, staged)
    assert project.objects.read_bytes(stored[0].digest) == b"first"


def test_a_small_file_changed_past_the_read_ahead_is_refused(
    project: Shipyard, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(objects_module, "_READ_AHEAD", 0)
    path = tmp_path / "a.txt"
    path.write_bytes(b"first")
    files = [LocalFile(path, "a.txt")]
    stored, _ = project.objects.hash(files)
    path.write_bytes(b"other")
    with pytest.raises(ConflictError, match="changed"):
        project.objects.stage(files, stored)


def test_a_file_that_grew_since_its_stat_is_read_to_its_end(
    project: Shipyard, tmp_path: Path
) -> None:
    path = tmp_path / "a.txt"
    path.write_bytes(b"0123456789")
    info = path.stat()
    path.write_bytes(b"0123456789 and more")
    stale = LocalFile(str(path), "a.txt", (10, info.st_mtime_ns, info.st_ino))
    stored, _ = project.objects.hash([stale])
    assert stored[0] == StoredFile("a.txt", 19, _digest(b"0123456789 and more"))


def _store_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("shipyard-store")]


def test_a_failing_chunk_write_while_hashing_stops_the_hash(
    project: Shipyard, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "big.bin"
    path.write_bytes(os.urandom(CHUNK_FROM + 24 * 1024 * 1024))
    real, calls = ContentStore.put_hashed, []

    def failing(self: ContentStore, digest: str, data: memoryview) -> object:
        calls.append(len(data))
        if len(calls) == 3:
            raise OSError("disk full")
        return real(self, digest, data)

    monkeypatch.setattr(ContentStore, "put_hashed", failing)
    with pytest.raises(OSError, match="disk full"):
        project.objects.hash([LocalFile(path, "big.bin")])
    assert not [t for t in threading.enumerate() if t.name.startswith("shipyard-chunks")]
    assert len(calls) == 3, "nothing is written once a chunk write has failed"


@pytest.mark.parametrize("chunks_stored", ["while hashed", "by the stage"])
def test_a_chunked_file_changed_before_it_is_stored_is_refused(
    project: Shipyard, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunks_stored: str
) -> None:
    if chunks_stored == "by the stage":  # as into a remote store: the chunks are read again
        monkeypatch.setattr(project.objects, "_sink", None)
    path = tmp_path / "big.bin"
    path.write_bytes(os.urandom(CHUNK_FROM + 3 * 1024 * 1024))
    files = [LocalFile(path, "big.bin")]
    stored, _ = project.objects.hash(files)
    with path.open("r+b") as file:
        file.seek(CHUNK_FROM)
        file.write(b"changed")
    with pytest.raises(ConflictError, match="changed"):
        project.objects.stage(files, stored)
    assert not _store_threads()


def test_a_failing_blob_write_stops_the_stage(
    project: Shipyard, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(project.objects, "_sink", None)  # the chunks are written by the stage
    path = tmp_path / "big.bin"
    path.write_bytes(os.urandom(CHUNK_FROM + 24 * 1024 * 1024))
    files = [LocalFile(path, "big.bin")]
    stored, _ = project.objects.hash(files)
    real, calls = ContentStore.put_bytes, []

    def failing(self: ContentStore, data: bytes) -> object:
        calls.append(len(data))
        if len(calls) == 3:
            raise OSError("disk full")
        return real(self, data)

    monkeypatch.setattr(ContentStore, "put_bytes", failing)
    with pytest.raises(OSError, match="disk full"):
        project.objects.stage(files, stored)
    assert not _store_threads()
    time.sleep(0.2)
    assert len(calls) == 3, "nothing is written once a blob write has failed"


def test_a_chunked_file_round_trips_through_the_background_writer(
    project: Shipyard, tmp_path: Path
) -> None:
    data = os.urandom(CHUNK_FROM + 5 * 1024 * 1024)
    (tmp_path / "big.bin").write_bytes(data)
    (tmp_path / "medium.bin").write_bytes(data[: 2 * 1024 * 1024])
    (tmp_path / "small.bin").write_bytes(data[:100])
    files = [LocalFile(tmp_path / n, n) for n in ["big.bin", "medium.bin", "small.bin"]]
    stored, _ = project.objects.hash(files)
    staged = project.objects.stage(files, stored)
    assert staged.new_bytes >= len(data) + 2 * 1024 * 1024 + 100
    assert [r["seq"] for r in staged.chunk_rows] == list(range(len(staged.chunk_rows)))
    with project.metadata.write() as conn:
        project.objects.commit(conn, staged)
    assert project.objects.read_bytes(stored[0].digest) == data
    assert project.objects.read_bytes(stored[1].digest) == data[: 2 * 1024 * 1024]
    assert project.objects.read_bytes(stored[2].digest) == data[:100]


@pytest.mark.parametrize("size", [0, 1, 1024 * 1024 - 1, 1024 * 1024, 3 * 1024 * 1024 + 7])
def test_hash_file_reads_small_files_and_maps_large_ones(tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    (tmp_path / "f").write_bytes(data)
    assert hash_file(tmp_path / "f") == (_digest(data), size)


@pytest.mark.parametrize("point_lookups", [5_000, 1])
def test_stat_cache_lookups_find_exactly_the_cached_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, point_lookups: int
) -> None:
    monkeypatch.setattr(statcache_module, "_POINT_LOOKUPS", point_lookups)
    cache = StatCache(tmp_path / "stat.db")
    try:
        assert cache.lookup(["/data/a/1"]) == {}  # an empty cache answers at once
        old = time.time_ns() - 60 * 10**9
        cache.update(
            [
                ("/data/a/1", 1, old, 11, "d1"),
                ("/data/a/2", 2, old, 12, "d2"),
                ("/data/a!/3", 3, old, 13, "d3"),
                ("/data/b/4", 4, old, 14, "d4"),
                ("/data/a/fresh", 5, time.time_ns(), 15, "d5"),  # racily clean: not cached
            ]
        )
        found = cache.lookup(["/data/a/1", "/data/a/2", "/data/a/fresh", "/data/a/none"])
        assert found.get("/data/a/1") == (1, old, 11, "d1")
        assert found.get("/data/a/2") == (2, old, 12, "d2")
        assert "/data/a/fresh" not in found and "/data/a/none" not in found
        every = cache.lookup(["/data/a/1", "/data/b/4", "/data/a!/3"])
        assert {p: every[p][3] for p in ["/data/a/1", "/data/b/4", "/data/a!/3"]} == {
            "/data/a/1": "d1",
            "/data/b/4": "d4",
            "/data/a!/3": "d3",
        }
    finally:
        cache.close()


def test_bytes_read_ahead_are_dropped_with_the_files(project: Shipyard, tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_bytes(b"kept for the stage")
    files = [LocalFile(tmp_path / "a.txt", "a.txt")]
    project.objects.hash(files)
    assert project.objects._read_ahead  # waiting for a stage
    del files  # an add that stages nothing (its content is stored) ends here
    gc.collect()
    assert not project.objects._read_ahead


def test_small_files_read_from_a_cold_cache_are_asked_for_ahead_and_hash_alike(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shipyard.services.hashing as hashing

    paths, contents = [], []
    for i in range(300):
        data = os.urandom(i * 37)
        (tmp_path / f"{i}.bin").write_bytes(data)
        paths.append(str(tmp_path / f"{i}.bin"))
        contents.append(data)
    sizes = [len(data) for data in contents]
    assert not hashing._cold(paths, sizes), "files just written are in the page cache"
    monkeypatch.setattr(hashing, "_cold", lambda paths, sizes: True)
    monkeypatch.setattr(hashing, "_PREFETCH_AHEAD", 16)  # the helper waits for the hashing
    hashed = list(hashing.hash_many(paths, sizes))
    assert [(size, digest) for size, digest, _ in hashed] == [
        (len(data), _digest(data)) for data in contents
    ]
    assert not [t for t in threading.enumerate() if t.name == "shipyard-prefetch"]


def test_a_folder_snapshot_written_in_the_background_is_seen_by_the_next_call(
    tmp_path: Path,
) -> None:
    from array import array

    from shipyard.stores.statcache import FolderSnapshot

    cache = StatCache(tmp_path / "stat.db")
    names = [f"{i}.bin" for i in range(50_000)]
    stats = array("q", range(4 * len(names)))
    digests = [_digest(name.encode()) for name in names]
    cache.save_folder("/data", FolderSnapshot.of(names, stats, digests, "blake3:identity"))
    seen = cache.folder("/data")  # waits for the write
    assert seen is not None and seen.digests() == digests and seen.names() == names
    cache.save_folder("/data", FolderSnapshot.of(names[:1], stats[:4], digests[:1], "blake3:one"))
    cache.close()  # waits for the write too
    reopened = StatCache(tmp_path / "stat.db")
    again = reopened.folder("/data")
    assert again is not None and again.identity == "blake3:one" and again.names() == names[:1]
    reopened.close()
    assert not [t for t in threading.enumerate() if t.name == "shipyard-statcache"]


@pytest.mark.parametrize(("size", "threads"), [(4096, 1), (300 * 1024, 2)])
def test_small_files_are_hashed_on_one_thread_big_ones_on_two_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, size: int, threads: int
) -> None:
    import concurrent.futures

    import shipyard.services.hashing as hashing

    made: list[int] = []
    real = concurrent.futures.ThreadPoolExecutor

    def counting(workers: int, **options: object) -> concurrent.futures.ThreadPoolExecutor:
        made.append(workers)
        return real(workers, **options)  # type: ignore[arg-type]

    monkeypatch.setattr(hashing, "ThreadPoolExecutor", counting)
    contents = [os.urandom(size + i) for i in range(70)]
    paths = []
    for i, data in enumerate(contents):
        (tmp_path / f"{i}.bin").write_bytes(data)
        paths.append(str(tmp_path / f"{i}.bin"))
    hashed = list(hashing.hash_many(paths, [len(d) for d in contents]))
    assert made == [threads]
    assert [(n, digest) for n, digest, _ in hashed] == [(len(d), _digest(d)) for d in contents]


def test_snapshots_saved_from_several_threads_at_once_are_each_waited_for(
    tmp_path: Path,
) -> None:
    from array import array
    from concurrent.futures import ThreadPoolExecutor

    from shipyard.stores.statcache import FolderSnapshot

    cache = StatCache(tmp_path / "stat.db")
    names = [f"{i}.bin" for i in range(2_000)]
    stats = array("q", range(4 * len(names)))
    digests = [_digest(name.encode()) for name in names]

    def save_and_read(k: int) -> list[str]:
        seen = []
        for round_ in range(15):
            root = f"/data/{k}"
            identity = f"blake3:{k}-{round_}"
            cache.save_folder(root, FolderSnapshot.of(names, stats, digests, identity))
            snapshot = cache.folder(root)  # waits for every write started before
            assert snapshot is not None
            seen.append(snapshot.identity)
        return seen

    try:
        with ThreadPoolExecutor(6) as pool:
            results = list(pool.map(save_and_read, range(6)))
    finally:
        cache.close()
    assert results == [[f"blake3:{k}-{r}" for r in range(15)] for k in range(6)]
    assert not [t for t in threading.enumerate() if t.name == "shipyard-statcache"]
