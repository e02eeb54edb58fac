"""Adding a folder whose files are not in memory: the stat shared by two threads, small files
opened ahead and handed to the hashing, and new small files packed while the rest is hashed."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest
from blake3 import blake3

import shipyard.services.hashing as hashing
import shipyard.services.sources as sources
from shipyard.app import Shipyard
from shipyard.errors import InvalidArgumentError, NotFoundError, SourceError
from shipyard.services import chunking
from shipyard.services.objects import FileSet
from shipyard.services.packing import EarlyPacks
from shipyard.services.sources import resolve_source
from shipyard.stores.artifacts.content import ContentStore


def _digest(data: bytes) -> str:
    return "blake3:" + blake3(data).hexdigest()


def _open_fds() -> set[str]:
    return {path.name for path in Path("/proc/self/fd").iterdir()}


def _folder(root: Path, count: int, size: int = 100) -> dict[str, bytes]:
    root.mkdir(parents=True, exist_ok=True)
    contents = {}
    for i in range(count):
        data = os.urandom(size + i % 7)
        (root / f"f{i:05d}.bin").write_bytes(data)
        contents[f"f{i:05d}.bin"] = data
    return contents


def _walk(folder: Path, scratch: Path) -> FileSet:
    with resolve_source(folder, scratch=scratch) as resolved:
        files = resolved.files
    assert isinstance(files, FileSet)
    return files


def _as_if_cold(monkeypatch: pytest.MonkeyPatch) -> None:
    """Small files count as not in the page cache: the hashing opens them ahead."""
    monkeypatch.setattr(hashing, "_cold", lambda paths, sizes: True)


def _paths(root: Path, contents: dict[str, bytes]) -> list[str]:
    return [str(root / name) for name in contents]


# -- the stat of a folder's files ----------------------------------------------------------


def _stat_threads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every stat counts as slow from now on; the names of the threads that stat go here."""
    threads: list[str] = []
    real = sources._stat_into

    def noting(fields: list[int], names: Iterable[str], folder: int) -> list[int]:
        threads.append(threading.current_thread().name)
        return real(fields, names, folder)

    monkeypatch.setattr(sources, "_SLOW_STAT", 0.0)
    monkeypatch.setattr(sources, "_stat_into", noting)
    return threads


def test_a_slow_stat_is_shared_with_a_helper_and_gives_the_same_columns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _folder(tmp_path / "f", 3_000)
    alone = _walk(tmp_path / "f", tmp_path / "scratch")
    helpers = _stat_threads(monkeypatch)
    shared = _walk(tmp_path / "f", tmp_path / "scratch")
    assert any(name.startswith("shipyard-stat") for name in helpers)
    assert shared.names == alone.names
    assert shared.stats == alone.stats


def test_slow_stats_across_small_folders_are_shared_too_and_give_the_same_columns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for k in range(5):
        _folder(tmp_path / "f" / f"part{k}", 30)
    (tmp_path / "f" / "top.bin").write_bytes(b"top")
    alone = _walk(tmp_path / "f", tmp_path / "scratch")
    helpers = _stat_threads(monkeypatch)
    monkeypatch.setattr(sources, "_PROBE", 40)  # decided within the second folder
    monkeypatch.setattr(sources, "_SHARE_FROM", 4)
    shared = _walk(tmp_path / "f", tmp_path / "scratch")
    assert sum(name.startswith("shipyard-stat") for name in helpers) >= 3
    assert (shared.names, shared.stats) == (alone.names, alone.stats)
    assert len(shared.names) == 151


def test_a_file_vanishing_under_a_shared_stat_is_named_as_on_one_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _folder(tmp_path / "f", 3_000)
    real = os.stat

    def vanishing(name: object, *args: object, **kwargs: object) -> os.stat_result:
        if name == "f02900.bin":  # in the helper's half
            (tmp_path / "f" / "f02900.bin").unlink(missing_ok=True)
        return real(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(sources, "_SLOW_STAT", 0.0)
    monkeypatch.setattr(sources.os, "stat", vanishing)
    with pytest.raises(SourceError, match=r"f02900\.bin: not a regular file"):
        _walk(tmp_path / "f", tmp_path / "scratch")


# -- small files opened ahead --------------------------------------------------------------


@pytest.mark.parametrize("ahead", [1, 7, 512])
def test_files_opened_ahead_hash_alike_and_none_stays_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ahead: int
) -> None:
    contents = _folder(tmp_path / "f", 300, size=50)
    big = os.urandom(hashing.PACK_MAX + 1)  # never opened ahead: hashed as usual
    (tmp_path / "f" / "f00150.bin").write_bytes(big)
    contents["f00150.bin"] = big
    paths = _paths(tmp_path / "f", contents)
    sizes = [len(data) for data in contents.values()]
    _as_if_cold(monkeypatch)
    monkeypatch.setattr(hashing, "_PREFETCH_AHEAD", ahead)
    before = _open_fds()
    hashed = list(hashing.hash_many(paths, sizes))
    assert [(n, d) for n, d, _ in hashed] == [(len(b), _digest(b)) for b in contents.values()]
    assert _open_fds() == before


def test_a_file_gone_before_it_is_opened_ahead_is_reported_and_nothing_stays_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    contents = _folder(tmp_path / "f", 400, size=20)
    paths = _paths(tmp_path / "f", contents)
    sizes = [len(data) for data in contents.values()]
    Path(paths[250]).unlink()
    _as_if_cold(monkeypatch)
    monkeypatch.setattr(hashing, "_PREFETCH_AHEAD", 16)
    before = _open_fds()
    with pytest.raises(NotFoundError, match=r"f00250\.bin does not exist"):
        list(hashing.hash_many(paths, sizes))
    assert _open_fds() == before
    assert not [t for t in threading.enumerate() if "prefetch" in t.name]


def test_a_consumer_that_stops_early_closes_what_was_opened_ahead(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    contents = _folder(tmp_path / "f", 2_000, size=10)
    paths = _paths(tmp_path / "f", contents)
    _as_if_cold(monkeypatch)
    before = _open_fds()
    results = hashing.hash_many(paths, [len(d) for d in contents.values()])
    for count, _ in enumerate(results):
        if count == 600:
            break
    results.close()  # type: ignore[attr-defined]
    assert _open_fds() == before


# -- small files packed while the others are hashed ----------------------------------------


def test_a_folder_of_small_files_is_packed_while_hashed_and_reads_back(
    project: Shipyard, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    contents = _folder(tmp_path / "f", 2_500, size=30)
    (tmp_path / "f" / "same-as-f00001.bin").write_bytes(contents["f00001.bin"])
    packed: list[int] = []
    real = EarlyPacks.finish

    def noting(self: EarlyPacks) -> object:
        staged = real(self)
        packed.append(len(staged.object_rows))
        return staged

    monkeypatch.setattr(EarlyPacks, "finish", noting)
    result = project.datasets.add("small", tmp_path / "f")
    assert packed == [2_500], "every distinct new file packed once, while hashed"
    assert result.new_bytes == sum(len(d) for d in contents.values())
    got = project.datasets.get("small@1").path()
    for name, data in contents.items():
        assert (got / name).read_bytes() == data
    assert (got / "same-as-f00001.bin").read_bytes() == contents["f00001.bin"]


def test_files_stored_already_are_not_packed_again(project: Shipyard, tmp_path: Path) -> None:
    contents = _folder(tmp_path / "f", 300, size=40)
    project.datasets.add("first", tmp_path / "f")
    (tmp_path / "f" / "new.bin").write_bytes(b"only this one is new")
    result = project.datasets.add("second", tmp_path / "f")
    assert result.new_bytes == len(b"only this one is new")
    got = project.datasets.get("second@1").path()
    assert (got / "f00299.bin").read_bytes() == contents["f00299.bin"]
    assert (got / "new.bin").read_bytes() == b"only this one is new"


def test_a_pack_write_failing_while_hashing_fails_the_add_and_records_nothing(
    project: Shipyard, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    contents = _folder(tmp_path / "f", 3_000, size=20 * 1024)  # more than one pack of 32 MiB
    calls: list[int] = []
    real = ContentStore.put_pieces

    def failing(self: ContentStore, pieces: list[bytes], buffer: bytearray | None = None) -> object:
        calls.append(len(pieces))
        if len(calls) == 2:
            raise OSError("disk full")
        return real(self, pieces, buffer)

    monkeypatch.setattr(ContentStore, "put_pieces", failing)
    with pytest.raises(OSError, match="disk full"):
        project.datasets.add("packs", tmp_path / "f")
    assert project.datasets.list() == []
    monkeypatch.setattr(ContentStore, "put_pieces", real)
    again = project.datasets.add("packs", tmp_path / "f")  # the next try stores it all
    assert again.created and again.version.version == 1
    total = 3_000 * 20 * 1024 + sum(i % 7 for i in range(3_000))
    # the pack the failed try wrote in full is found, not written again
    assert 0 < again.new_bytes <= total - 32 * 1024 * 1024
    got = project.datasets.get("packs@1").path()
    assert sum(p.stat().st_size for p in got.iterdir()) == total
    assert (got / "f02999.bin").read_bytes() == contents["f02999.bin"]


def test_a_table_folder_is_profiled_before_any_byte_is_stored(
    project: Shipyard, tmp_path: Path
) -> None:
    folder = tmp_path / "t"
    folder.mkdir()
    (folder / "a.csv").write_text("x,y\n1,2\n")
    (folder / "b.csv").write_text('x,y\n3,"unclosed\n')
    blobs = project.content.blobs
    before = set(blobs.list())
    with pytest.raises(InvalidArgumentError, match=r"b\.csv is not valid CSV"):
        project.datasets.add("t", folder)
    assert set(blobs.list()) == before


def test_pieces_joined_in_a_buffer_store_what_pieces_written_one_by_one_store(
    tmp_path: Path,
) -> None:
    from shipyard.stores.artifacts.local import LocalBlobStore

    content = ContentStore(LocalBlobStore(tmp_path / "store"))
    pieces = [os.urandom(n) for n in (0, 1, 4096, 70_000, 3)]
    joined = content.put_pieces(pieces, bytearray(200_000))
    assert joined.digest == _digest(b"".join(pieces)) and joined.new
    assert content.read_bytes(joined.digest) == b"".join(pieces)
    too_small = content.put_pieces([*pieces, b"x"], bytearray(10))  # pieces one by one
    assert too_small.digest == _digest(b"".join(pieces) + b"x")
    assert content.read_bytes(too_small.digest) == b"".join(pieces) + b"x"


def test_files_opened_ahead_for_two_hashing_threads_hash_alike(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    contents = []
    for i in range(200):  # big and small by turns: two hashing threads share the batches
        data = os.urandom(600 * 1024 if i % 2 else 10 + i)
        (tmp_path / f"{i}.bin").write_bytes(data)
        contents.append(data)
    paths = [str(tmp_path / f"{i}.bin") for i in range(200)]
    _as_if_cold(monkeypatch)
    monkeypatch.setattr(hashing, "_PREFETCH_AHEAD", 8)
    monkeypatch.setattr(hashing, "_BATCH_FILES", 16)
    before = _open_fds()
    hashed = list(hashing.hash_many(paths, [len(d) for d in contents]))
    assert [(n, d) for n, d, _ in hashed] == [(len(b), _digest(b)) for b in contents]
    assert _open_fds() == before


# -- a large file read from the disk -------------------------------------------------------


def _in_page_cache(path: Path, offset: int) -> bool:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.preadv(fd, [bytearray(1)], offset, os.RWF_NOWAIT)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


def _evicted(path: Path, size: int) -> None:
    """Make a file's pages leave the page cache, as after a reboot."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    assert not _in_page_cache(path, size // 3), "this file system keeps pages it was told to drop"


def _stored_sink(store: ContentStore) -> chunking.ChunkSink:
    def sink(digest: str, data: memoryview) -> int:
        info = store.put_hashed(digest, data)
        return info.size if info.new else 0

    return sink


@pytest.mark.parametrize("cold", [True, False])
def test_a_large_file_read_from_the_disk_is_not_kept_in_the_page_cache(
    tmp_path: Path, cold: bool
) -> None:
    from shipyard.stores.artifacts.local import LocalBlobStore

    size = chunking.CHUNK_FROM + 3 * 1024 * 1024 + 5
    data = os.urandom(size)
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    if cold:
        _evicted(path, size)
    store = ContentStore(LocalBlobStore(tmp_path / "store"))
    plan = chunking.plan_chunks(str(path), _stored_sink(store))
    assert plan.digest == _digest(data) and plan.stored
    assert b"".join(store.read_bytes(d) for _, _, d in plan.chunks) == data
    # read from the disk: let go behind the reading; held before: left as it was
    kept = [_in_page_cache(path, offset) for offset in (size // 3, size - 4096)]
    assert kept == [not cold, not cold]


def test_a_large_file_hashed_without_a_sink_keeps_its_pages_for_the_stage(
    tmp_path: Path,
) -> None:
    size = chunking.CHUNK_FROM + 1024 * 1024
    path = tmp_path / "big.bin"
    path.write_bytes(os.urandom(size))
    _evicted(path, size)
    chunking.plan_chunks(str(path))  # a remote store: the stage reads new chunks again
    assert _in_page_cache(path, size // 3)


def test_two_adds_at_once_on_threads_each_stage_their_own_packs(
    project: Shipyard, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    first = _folder(tmp_path / "a", 300, size=50)
    second = _folder(tmp_path / "b", 200, size=70)
    both_hashed = threading.Barrier(2, timeout=30)
    real = EarlyPacks.finish

    def in_step(self: EarlyPacks) -> object:
        staged = real(self)
        both_hashed.wait()  # both adds have packed before either stages
        return staged

    monkeypatch.setattr(EarlyPacks, "finish", in_step)
    with ThreadPoolExecutor(2) as pool:
        a = pool.submit(project.datasets.add, "a", tmp_path / "a")
        b = pool.submit(project.datasets.add, "b", tmp_path / "b")
        added = {"a": a.result(), "b": b.result()}
    assert added["a"].new_bytes == sum(map(len, first.values()))
    assert added["b"].new_bytes == sum(map(len, second.values()))
    for name, contents in (("a", first), ("b", second)):
        got = project.datasets.get(f"{name}@1").path()
        assert {p.name: p.read_bytes() for p in got.iterdir()} == contents


def test_an_add_killed_while_packing_small_files_leaves_no_version(
    project: Shipyard, tmp_path: Path, add_killed_while_storing: Callable[[str, Path, int], None]
) -> None:
    from datetime import timedelta

    contents = _folder(tmp_path / "f", 2_000, size=40 * 1024)  # packs of 32 MiB: three
    # killed at the second pack, while the folder is still being hashed
    add_killed_while_storing("small", tmp_path / "f", 2)
    assert project.datasets.list() == []
    assert project.maintenance.fsck().ok
    orphans = project.maintenance.gc(dry_run=True, grace=timedelta(0)).unreferenced
    assert len(orphans) == 1, "the pack stored before the kill is garbage, not a version"
    added = project.datasets.add("small", tmp_path / "f")
    got = project.datasets.get("small@1").path()
    assert added.created and (got / "f01999.bin").read_bytes() == contents["f01999.bin"]


def test_hashing_a_folder_reports_progress_in_files_as_it_goes(
    project: Shipyard, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shipyard.services.objects as objects_module

    monkeypatch.setattr(objects_module, "_PROGRESS_EVERY", 100)
    _folder(tmp_path / "f", 450, size=10)
    for path in (tmp_path / "f").iterdir():  # out of the stat cache's racily-clean window
        os.utime(path, (1_700_000_000, 1_700_000_000))
    seen: list[tuple[str, int, int]] = []
    project.datasets.add("p", tmp_path / "f", progress=lambda *told: seen.append(told))
    hashing_steps = [(done, total) for stage, done, total in seen if stage == "hash"]
    assert hashing_steps == [(0, 450), (100, 450), (200, 450), (300, 450), (400, 450), (450, 450)]
    (tmp_path / "f" / "f00003.bin").write_bytes(b"changed")  # one file hashed again
    os.utime(tmp_path / "f" / "f00003.bin", (1_700_000_100, 1_700_000_100))
    seen.clear()
    project.datasets.add("p", tmp_path / "f", progress=lambda *told: seen.append(told))
    assert [(d, t) for stage, d, t in seen if stage == "hash"] == [(0, 450), (450, 450)]


def test_a_large_file_is_cut_alike_where_the_platform_has_no_fadvise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = os.urandom(chunking.CHUNK_FROM + 2 * 1024 * 1024)
    (tmp_path / "big.bin").write_bytes(data)
    expected = chunking.plan_chunks(str(tmp_path / "big.bin"))
    monkeypatch.delattr(os, "posix_fadvise")  # as on macOS
    monkeypatch.delattr(os, "RWF_NOWAIT")
    plan = chunking.plan_chunks(str(tmp_path / "big.bin"))
    assert (plan.digest, plan.chunks) == (expected.digest, expected.chunks)


def test_small_files_opened_ahead_hash_alike_where_the_platform_has_no_fadvise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    contents = _folder(tmp_path / "f", 200, size=30)
    paths = _paths(tmp_path / "f", contents)
    _as_if_cold(monkeypatch)
    monkeypatch.delattr(os, "posix_fadvise")
    before = _open_fds()
    hashed = list(hashing.hash_many(paths, [len(d) for d in contents.values()]))
    assert [(n, d) for n, d, _ in hashed] == [(len(b), _digest(b)) for b in contents.values()]
    assert _open_fds() == before


def test_early_packs_ask_which_are_stored_every_so_many_files_or_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shipyard.services.packing as packing
    from shipyard.stores.artifacts.local import LocalBlobStore

    monkeypatch.setattr(packing, "_CHECK_BYTES", 250 * 1024)
    content = ContentStore(LocalBlobStore(tmp_path / "store"))
    pieces = [os.urandom(100 * 1024) for _ in range(10)]
    stored_before = {_digest(pieces[4])}
    asked: list[int] = []

    def known(digests: set[str]) -> set[str]:
        asked.append(len(digests))
        return digests & stored_before

    with EarlyPacks(content, known) as early:
        for piece in [*pieces, pieces[0]]:  # the first file twice
            early.add(_digest(piece), piece)
        staged = early.finish()
    assert asked == [3, 3, 3, 1], "every 250 KiB held, then the rest"
    rows = {row[0]: row for row in staged.object_rows}
    assert set(rows) == {_digest(p) for p in pieces} - stored_before
    (pack,) = {row[3] for row in rows.values()}
    assert staged.new_bytes == 9 * 100 * 1024 == content.size(pack)
    for piece in pieces[:4] + pieces[5:]:
        _, size, _, blob, offset = rows[_digest(piece)]
        assert content.read_range(blob, offset, size) == piece
