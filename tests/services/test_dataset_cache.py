"""A version's materialised folder (``path()``) is checked on every reuse and rebuilt when
anything in it changed."""

from __future__ import annotations

import os
from pathlib import Path

from shipyard.app import Shipyard


def _folder(project: Shipyard, tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    source = tmp_path / "images"
    (source / "b").mkdir(parents=True)
    content = {"a.txt": b"alpha" * 100, "b/c.txt": b"gamma" * 50, "d.bin": bytes(range(256))}
    for name, data in content.items():
        (source / name).write_bytes(data)
    project.datasets.add("images", source)
    return project.datasets.get("images@1").path(), content


def _files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


def test_an_untouched_copy_is_reused_as_it_is(project: Shipyard, tmp_path: Path) -> None:
    folder, content = _folder(project, tmp_path)
    inode = (folder / "a.txt").stat().st_ino
    again = project.datasets.get("images@1").path()
    assert again == folder
    assert (again / "a.txt").stat().st_ino == inode  # not built again
    assert _files(again) == content


def test_a_file_rewritten_in_place_with_its_old_times_is_restored(
    project: Shipyard, tmp_path: Path
) -> None:
    folder, content = _folder(project, tmp_path)
    target = folder / "a.txt"
    before = target.stat()
    target.chmod(0o644)
    target.write_bytes(b"ALPHA" * 100)  # same size
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))  # mtime put back
    assert project.datasets.get("images@1").path() == folder
    assert _files(folder) == content


def test_a_removed_or_added_file_is_noticed(project: Shipyard, tmp_path: Path) -> None:
    folder, content = _folder(project, tmp_path)
    (folder / "b" / "c.txt").unlink()
    assert _files(project.datasets.get("images@1").path()) == content
    (folder / "stray.txt").write_text("not part of the version")
    assert _files(project.datasets.get("images@1").path()) == content


def test_a_table_read_after_damage_reads_the_versions_rows(
    project: Shipyard, tmp_path: Path
) -> None:
    import pyarrow as pa

    project.datasets.add("t", pa.table({"x": [1, 2, 3]}))
    handle = project.datasets.get("t@1")
    (data_file,) = [p for p in handle.path().rglob("*") if p.is_file()]
    data_file.chmod(0o644)
    data_file.write_bytes(b"garbage")
    assert handle.to_arrow().column("x").to_pylist() == [1, 2, 3]
