from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.feather as feather
import pyarrow.parquet as pq
import pytest

from shipyard.app import Shipyard
from shipyard.errors import InvalidArgumentError


def _table(n: int = 300, start: int = 0) -> pa.Table:
    """Integers, floats with nulls, strings with nulls and booleans."""
    ids = range(start, start + n)
    return pa.table(
        {
            "id": list(ids),
            "x": [i * 0.25 if i % 7 else None for i in ids],
            "name": [f"n{i % 13}" if i % 5 else None for i in ids],
            "flag": [i % 2 == 0 for i in ids],
        }
    )


def _parquet(table: pa.Table, path: Path) -> None:
    pq.write_table(table, path)


def _csv(table: pa.Table, path: Path) -> None:
    pcsv.write_csv(table, path)


def _jsonl(table: pa.Table, path: Path) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in table.to_pylist()))


def _arrow(table: pa.Table, path: Path) -> None:
    feather.write_feather(table, path)


WRITERS: dict[str, tuple[str, Callable[[pa.Table, Path], None]]] = {
    "parquet": (".parquet", _parquet),
    "csv": (".csv", _csv),
    "jsonl": (".jsonl", _jsonl),
    "arrow": (".arrow", _arrow),
}


@pytest.mark.parametrize("fmt", list(WRITERS))
def test_a_table_reads_back_equal_as_arrow_pandas_and_polars(
    project: Shipyard, tmp_path: Path, fmt: str
) -> None:
    import polars as pl
    from pandas.testing import assert_frame_equal

    suffix, write = WRITERS[fmt]
    table = _table()
    path = tmp_path / f"t{suffix}"
    write(table, path)
    project.datasets.add("t", path)

    handle = project.datasets.get("t@1")
    assert handle.ref == "t@1" and handle.version.format == fmt
    arrow = handle.to_arrow()
    assert arrow.schema == table.schema
    assert arrow.equals(table)
    assert_frame_equal(handle.to_pandas(), table.to_pandas())
    assert handle.to_polars().equals(pl.from_arrow(table))
    assert [f.path for f in handle.files()] == [path.name]
    assert (handle.path() / path.name).read_bytes() == path.read_bytes()
    profile = handle.profile()
    assert profile is not None and profile.rows == 300


def test_a_python_table_reads_back_equal(project: Shipyard) -> None:
    import pandas as pd
    from pandas.testing import assert_frame_equal

    frame = pd.DataFrame({"id": [3, 1, 2], "city": ["Oslo", None, "Lima"], "t": [0.5, 1.5, None]})
    project.datasets.add("frame", frame)
    assert_frame_equal(project.datasets.get("frame").to_pandas(), frame)


def test_a_folder_of_parts_reads_back_as_one_table(project: Shipyard, tmp_path: Path) -> None:
    folder = tmp_path / "parts"
    folder.mkdir()
    parts = [_table(100, start) for start in (0, 100, 200)]
    for i, part in enumerate(parts):
        pq.write_table(part, folder / f"part-{i}.parquet")
    version = project.datasets.add("parts", folder).version
    assert (version.format, version.file_count, version.rows) == ("parquet", 3, 300)
    arrow = project.datasets.get("parts").to_arrow()
    assert arrow.sort_by("id").equals(pa.concat_tables(parts))


def test_each_version_reads_back_its_own_rows(project: Shipyard, tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    pcsv.write_csv(_table(10), path)
    project.datasets.add("t", path)
    pcsv.write_csv(_table(12), path)
    project.datasets.add("t", path)
    project.datasets.label("t@1", "golden")
    assert project.datasets.get("t@1").to_arrow().num_rows == 10
    assert project.datasets.get("t").to_arrow().num_rows == 12
    assert project.datasets.get("t@golden").to_arrow().equals(_table(10))


def test_a_version_of_files_is_not_a_table(project: Shipyard, tmp_path: Path) -> None:
    path = tmp_path / "model.bin"
    path.write_bytes(b"\x00\x01" * 500)
    handle = project.datasets.get(project.datasets.add("model", path).version.ref)
    assert handle.profile() is None
    assert (handle.path() / "model.bin").read_bytes() == path.read_bytes()
    for read in (handle.to_arrow, handle.to_pandas, handle.to_polars):
        with pytest.raises(InvalidArgumentError, match=r"model@1 holds files, not a table"):
            read()
