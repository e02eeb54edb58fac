"""Two callers materialising the same version at once: the one that finishes second keeps the
first one's intact copy instead of moving it away while the first one reads it.

Seen in the demo: a pipeline's ``load`` and ``validate`` tasks read a new version at the same
time, and ``load`` failed with "…/files/x.parquet does not exist".
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from shipyard.app import Shipyard
from shipyard.services.objects import ObjectService


def test_a_copy_built_meanwhile_by_another_caller_is_kept(
    project: Shipyard, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.datasets.add("t", pa.table({"x": [1, 2, 3]}))
    export_all = ObjectService.export_all
    other: dict[str, Any] = {}

    def export_while_another_caller_finishes(
        self: ObjectService, files: Sequence[Any], dest: Path
    ) -> list[Path]:
        if not other:  # the first caller, mid-build: a second one builds and renames first
            other["files"] = "building"
            folder = project.datasets.get("t@1").path()
            (data,) = [p for p in folder.rglob("*") if p.is_file()]
            other.update(files=folder, data=data, inode=data.stat().st_ino)
        return export_all(self, files, dest)

    monkeypatch.setattr(ObjectService, "export_all", export_while_another_caller_finishes)
    folder = project.datasets.get("t@1").path()

    assert folder == other["files"]
    assert other["data"].stat().st_ino == other["inode"]  # the other caller's copy, untouched
    assert project.datasets.get("t@1").to_arrow().column("x").to_pylist() == [1, 2, 3]
