from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

from shipyard.app import Shipyard
from shipyard.domain.diffs import population_stability_index
from shipyard.errors import InvalidArgumentError
from shipyard.services.reports import render_diff_html


def _people(n: int = 1000) -> dict[str, list[object]]:
    return {
        "id": list(range(n)),
        "age": [20 + i % 50 for i in range(n)],
        "city": [["paris", "lyon", "nice", "lille"][i % 4] for i in range(n)],
    }


def _add(project: Shipyard, path: Path, columns: dict[str, list[object]], **kw: object) -> str:
    pq.write_table(pa.table(columns), path)
    return project.datasets.add("people", path, **kw).version.ref  # type: ignore[arg-type]


def test_diff_by_key_counts_added_removed_and_changed_rows(
    project: Shipyard, tmp_path: Path
) -> None:
    path = tmp_path / "p.parquet"
    old = _add(project, path, _people(), key="id")
    cols = _people()
    for column in cols.values():
        del column[:10]  # ids 0-9 removed
    cols["id"] += [5000, 5001, 5002]  # three added
    cols["age"] += [30, 31, 32]
    cols["city"] += ["paris"] * 3
    for i in range(0, 40, 2):  # ids 10, 12, ..., 48 changed: 20 rows
        cols["age"][i] = 99
    new = _add(project, path, cols)
    diff = project.datasets.diff(old, new)
    assert diff.rows is not None
    assert (diff.rows.added, diff.rows.removed, diff.rows.changed) == (3, 10, 20)
    assert diff.rows.unchanged == 1000 - 10 - 20
    assert diff.rows.key == ("id",)
    assert {s["id"] for s in diff.rows.samples["added"]} <= {5000, 5001, 5002}
    assert diff.rows.samples["changed"][0]["changes"]["age"]["new"] == 99
    assert diff.files[0].change == "changed"
    assert (diff.rows_old, diff.rows_new) == (1000, 993)
    age = next(c for c in diff.columns if c.name == "age")
    assert age.mean_new is not None and age.mean_old is not None
    assert age.mean_new > age.mean_old
    assert age.psi is not None and age.psi > 0
    json.dumps(diff.to_dict(), allow_nan=False)


def test_diff_without_key_compares_whole_rows(project: Shipyard, tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    pcsv.write_csv(pa.table({"a": [1, 2, 2, 3], "b": ["x", "y", "y", "z"]}), path)
    old = project.datasets.add("rows", path).version.ref
    pcsv.write_csv(pa.table({"a": [1, 2, 4, 4], "b": ["x", "y", "w", "w"]}), path)
    new = project.datasets.add("rows", path).version.ref
    diff = project.datasets.diff(old, new)
    assert diff.rows is not None and diff.rows.key == ()
    assert (diff.rows.added, diff.rows.removed, diff.rows.unchanged) == (2, 2, 2)


def test_schema_changes_are_reported(project: Shipyard, tmp_path: Path) -> None:
    path = tmp_path / "p.parquet"
    old = _add(project, path, {"id": [1, 2], "a": [1, 2], "gone": ["x", "y"]})
    new = _add(project, path, {"id": [1, 2], "a": ["1", "2"], "fresh": [0.5, 0.7]})
    diff = project.datasets.diff(old, new, key="id")
    changes = {(c.name, c.change) for c in diff.schema}
    assert changes == {("gone", "removed"), ("fresh", "added"), ("a", "retyped")}
    assert diff.rows is not None
    assert diff.rows.changed == 0, "a retyped column compares by its text"


def test_a_key_that_is_not_unique_or_missing_is_refused(project: Shipyard, tmp_path: Path) -> None:
    path = tmp_path / "p.parquet"
    old = _add(project, path, {"id": [1, 1, 2], "v": [1, 2, 3]})
    new = _add(project, path, {"id": [1, 2, 3], "v": [1, 2, 3]})
    with pytest.raises(InvalidArgumentError, match="not unique"):
        project.datasets.diff(old, new, key="id")
    with pytest.raises(InvalidArgumentError, match="key column 'nope'"):
        project.datasets.diff(old, new, key="nope")


def test_diff_of_file_folders_lists_file_changes(project: Shipyard, tmp_path: Path) -> None:
    folder = tmp_path / "f"
    folder.mkdir()
    (folder / "a.bin").write_bytes(b"a")
    (folder / "b.bin").write_bytes(b"b")
    old = project.datasets.add("files", folder).version.ref
    (folder / "a.bin").write_bytes(b"A!")
    (folder / "b.bin").unlink()
    (folder / "c.bin").write_bytes(b"c")
    new = project.datasets.add("files", folder).version.ref
    diff = project.datasets.diff(old, new)
    assert [(f.path, f.change) for f in diff.files] == [
        ("a.bin", "changed"),
        ("b.bin", "removed"),
        ("c.bin", "added"),
    ]
    assert diff.rows is None and diff.columns == ()


def test_the_diff_report_is_self_contained_and_escaped(project: Shipyard, tmp_path: Path) -> None:
    path = tmp_path / "p.parquet"
    old = _add(project, path, {"<b>id</b>": [1, 2], "v": [1.0, 2.0]})
    new = _add(project, path, {"<b>id</b>": [1, 3], "v": [1.0, 5.0]})
    page = render_diff_html(project.datasets.diff(old, new))
    assert "<b>id</b>" not in page and "&lt;b&gt;id&lt;/b&gt;" in page
    assert "<svg" in page
    assert "http://" not in page and "https://" not in page


def test_psi_is_zero_for_equal_and_grows_with_shift() -> None:
    assert population_stability_index([10, 20, 30], [10, 20, 30]) == pytest.approx(0)
    small = population_stability_index([10, 20, 30], [12, 20, 28])
    large = population_stability_index([10, 20, 30], [30, 20, 10])
    assert 0 < small < large
