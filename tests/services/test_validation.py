from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from sqlalchemy import func, select

from shipyard.app import Shipyard
from shipyard.domain.checks import CheckResult, ValidationReport
from shipyard.errors import (
    DatasetNotFoundError,
    DataValidationError,
    InvalidArgumentError,
    NotFoundError,
)
from shipyard.services.validation import load_checks, run_checks
from shipyard.stores.metadata.schema import dataset_versions

NEWEST = datetime(2024, 6, 30, 12, 0, tzinfo=UTC)

# Every kind, each named so that results can be looked up by name.
PEOPLE_CHECKS = """
[[checks]]
name = "age known"
kind = "not_null"
column = "age"

[[checks]]
name = "ids unique"
kind = "unique"
column = "id"

[[checks]]
name = "id and email unique"
kind = "unique"
columns = ["id", "email"]

[[checks]]
name = "age plausible"
kind = "range"
column = "age"
min = 0
max = 120

[[checks]]
name = "score is a share"
kind = "range"
column = "score"
min = 0
max = 1

[[checks]]
name = "known colors"
kind = "allowed_values"
column = "color"
values = ["red", "green", "blue"]

[[checks]]
name = "emails"
kind = "regex"
column = "email"
pattern = '[^@\\s]+@[^@\\s]+\\.[a-z]+'

[[checks]]
name = "schema"
kind = "schema_equals"
columns = { id = "int64", email = "string", age = "int64", score = "double" }

[[checks]]
name = "strict schema"
kind = "schema_equals"
strict = true
columns = { id = "int64", email = "string", age = "int64", score = "double" }

[[checks]]
name = "enough rows"
kind = "row_count"
min = 10

[[checks]]
name = "not too many rows"
kind = "row_count"
min = 1
max = 8

[[checks]]
name = "recent updates"
kind = "freshness"
column = "updated_at"
max_age = "7d"

[[checks]]
name = "recently fetched"
kind = "freshness"
max_age = "1h"

[[checks]]
name = "few NA"
kind = "max_na_share"
max = 0.2

[[checks]]
name = "score NA"
kind = "max_na_share"
column = "score"
max = 0.3
severity = "warning"
"""


def _people() -> pa.Table:
    """Eight rows with a null, two repeated ids, out-of-range ages, bad emails and a NaN."""
    return pa.table(
        {
            "id": [1, 2, 3, 3, 4, 5, 6, 6],
            "email": [
                "a@example.org",
                "not-an-email",
                None,
                "c@example.com",
                "d at example.com",
                "e@example.io",
                "f@example.org",
                "f@example.org",
            ],
            "age": [34, 150, None, 28, -3, 41, 52, 52],
            "score": [0.5, math.nan, 0.1, None, 0.9, 0.7, 1.5, 0.2],
            "color": ["red", "green", "pink", "red", None, "blue", "green", "green"],
            "updated_at": pa.array(
                [NEWEST - timedelta(days=i) for i in range(7, -1, -1)],
                pa.timestamp("us", tz="UTC"),
            ),
        }
    )


def _wine() -> Any:
    from sklearn.datasets import load_wine

    return load_wine(as_frame=True).frame


def _count_versions(project: Shipyard) -> int:
    with project.metadata.read() as conn:
        return int(conn.execute(select(func.count()).select_from(dataset_versions)).scalar() or 0)


def _by_name(report: ValidationReport) -> dict[str, CheckResult]:
    return {r.check.name: r for r in report.results}


def _run(project: Shipyard, reference: str, checks: Any, now: datetime) -> ValidationReport:
    """Run checks at a chosen moment (``validate`` always measures freshness from now)."""
    version = project.datasets.resolve(reference)
    folder = project.datasets.path(version)
    files = [folder.joinpath(*e.path.split("/")) for e in project.datasets.manifest(version)]
    return run_checks(
        version, files, project.datasets.profile(version), load_checks(checks), now=now
    )


def test_the_wine_table_passes_checks_of_every_kind(project: Shipyard, tmp_path: Path) -> None:
    project.datasets.add("wine", _wine())
    checks = tmp_path / "checks.toml"
    checks.write_text(
        """
[[checks]]
kind = "not_null"
column = "target"

[[checks]]
kind = "unique"
columns = ["alcohol", "malic_acid", "proline", "target"]

[[checks]]
kind = "range"
column = "alcohol"
min = 11
max = 15

[[checks]]
kind = "allowed_values"
column = "target"
values = [0, 1, 2]

[[checks]]
kind = "regex"
column = "target"
pattern = '[0-2]'

[[checks]]
kind = "schema_equals"
columns = { alcohol = "double", "od280/od315_of_diluted_wines" = "double", target = "int64" }

[[checks]]
kind = "row_count"
min = 178
max = 178

[[checks]]
kind = "freshness"
max_age = "1h"

[[checks]]
kind = "max_na_share"
max = 0
"""
    )
    report = project.datasets.validate("wine@1", checks)
    assert report.reference == "wine@1"
    assert report.ok and report.failures == ()
    assert len(report.results) == 9
    assert all(r.passed and r.message == "ok" for r in report.results), report.to_dict()
    results = _by_name(report)
    assert results["row_count"].observed == 178
    assert results["range(alcohol)"].observed == 0
    assert results["max_na_share"].observed["proline"] == 0.0
    assert project.datasets.require("wine@latest", checks).ok


def test_tighter_checks_on_the_wine_table_fail_with_exact_counts(project: Shipyard) -> None:
    wine = _wine()
    project.datasets.add("wine", wine)
    report = project.datasets.validate(
        "wine",
        [
            {"kind": "allowed_values", "column": "target", "values": [0, 1]},
            {"kind": "range", "column": "alcohol", "min": 12},
            {"kind": "row_count", "max": 100},
        ],
    )
    classes, alcohol, rows = report.results
    assert not report.ok and len(report.failures) == 3
    assert (classes.observed, classes.examples) == (48, (2,))
    assert classes.message == "48 row(s) hold other values"
    assert alcohol.observed == int((wine["alcohol"] < 12).sum()) == 19
    assert set(alcohol.examples) <= set(wine.loc[wine["alcohol"] < 12, "alcohol"])
    assert len(alcohol.examples) == 5
    assert (rows.observed, rows.expected) == (178, {"max": 100})
    assert rows.message == "178 rows, expected {'max': 100}"


def test_every_kind_reports_what_it_found_on_a_table_with_problems(
    project: Shipyard, tmp_path: Path
) -> None:
    project.datasets.add("people", _people())
    checks = tmp_path / "checks.toml"
    checks.write_text(PEOPLE_CHECKS)
    report = project.datasets.validate("people@1", checks)
    results = _by_name(report)
    assert list(results) == [
        "age known",
        "ids unique",
        "id and email unique",
        "age plausible",
        "score is a share",
        "known colors",
        "emails",
        "schema",
        "strict schema",
        "enough rows",
        "not too many rows",
        "recent updates",
        "recently fetched",
        "few NA",
        "score NA",
    ]

    assert (results["age known"].observed, results["age known"].message) == (1, "1 null value(s)")
    ids = results["ids unique"]
    assert (ids.observed, set(ids.examples)) == (2, {3, 6})
    assert ids.message == "2 value(s) repeat, in 4 rows"
    pairs = results["id and email unique"]
    assert (pairs.observed, pairs.examples) == (1, ((6, "f@example.org"),))
    ages = results["age plausible"]
    assert (ages.observed, set(ages.examples)) == (2, {150, -3})
    assert ages.expected == {"min": 0, "max": 120}
    assert ages.message == "2 row(s) out of range"
    scores = results["score is a share"]  # NaN and null are NA, not out of range
    assert (scores.observed, scores.examples) == (1, (1.5,))
    colors = results["known colors"]  # a null is not a value
    assert (colors.observed, colors.examples) == (1, ("pink",))
    emails = results["emails"]
    assert (emails.observed, set(emails.examples)) == (2, {"not-an-email", "d at example.com"})
    assert emails.message == "2 row(s) do not match"
    assert results["schema"].passed
    assert results["strict schema"].message == "color: not expected; updated_at: not expected"
    assert results["enough rows"].message == "8 rows, expected {'min': 10}"
    assert results["not too many rows"].passed
    fresh = results["recent updates"]
    assert fresh.observed == "2024-06-30T12:00:00+00:00"
    assert fresh.message.startswith("newest updated_at ")
    assert fresh.message.endswith(" ago, more than 7 days, 0:00:00")
    assert results["recently fetched"].passed
    na = results["few NA"]
    assert na.observed == {
        "id": 0.0,
        "email": 0.125,
        "age": 0.125,
        "score": 0.25,
        "color": 0.125,
        "updated_at": 0.0,
    }
    assert na.message == "score: 25.0% NA"
    assert results["score NA"].passed

    failed = {r.check.name for r in report.failures}
    assert failed == {
        "age known",
        "ids unique",
        "id and email unique",
        "age plausible",
        "score is a share",
        "known colors",
        "emails",
        "strict schema",
        "enough rows",
        "recent updates",
        "few NA",
    }
    assert not report.ok
    as_json = report.to_dict()
    assert as_json["ok"] is False
    assert as_json["results"][1]["examples"] in (["3", "6"], ["6", "3"])


def test_nan_is_not_a_null_but_counts_as_na(project: Shipyard) -> None:
    project.datasets.add("scores", pa.table({"x": [0.5, math.nan, None, 2.0, -1.0]}))
    report = project.datasets.validate(
        "scores",
        [
            {"kind": "not_null", "column": "x"},
            {"kind": "range", "column": "x", "max": 1},
            {"kind": "range", "column": "x", "min": 0},
            {"kind": "max_na_share", "column": "x", "max": 0.3},
        ],
    )
    nulls, below_max, above_min, na = report.results
    assert nulls.observed == 1
    assert (below_max.observed, below_max.examples) == (1, (2.0,))
    assert (above_min.observed, above_min.examples) == (1, (-1.0,))
    assert na.observed == {"x": 0.4} and not na.passed


def test_a_failed_warning_is_reported_but_the_report_passes(project: Shipyard) -> None:
    project.datasets.add("people", _people())
    report = project.datasets.validate(
        "people",
        [
            {"kind": "not_null", "column": "age", "severity": "warning"},
            {"kind": "row_count", "min": 1},
        ],
    )
    warning, rows = report.results
    assert not warning.passed and warning.check.severity == "warning"
    assert warning.message == "1 null value(s)"
    assert rows.passed
    assert report.ok and report.failures == ()
    assert project.datasets.require(
        "people", [{"kind": "not_null", "column": "age", "severity": "warning"}]
    ).ok


def test_a_check_on_a_missing_column_fails_naming_it(project: Shipyard) -> None:
    project.datasets.add("people", _people())
    report = project.datasets.validate(
        "people",
        [
            {"kind": "not_null", "column": "agee"},
            {"kind": "range", "column": "agee", "min": 0},
            {"kind": "allowed_values", "column": "agee", "values": [1]},
            {"kind": "regex", "column": "agee", "pattern": "x"},
            {"kind": "unique", "columns": ["id", "agee"]},
            {"kind": "max_na_share", "column": "agee", "max": 0.1},
            {"kind": "freshness", "column": "agee", "max_age": "1d"},
            {"kind": "row_count", "min": 1},
        ],
    )
    *missing, rows = report.results
    assert len(missing) == 7
    for result in missing:
        assert not result.passed, result.check.kind
        assert result.message == "column(s) agee not in the table"
    assert rows.passed, "the other checks still run"
    assert len(report.failures) == 7 and not report.ok


@pytest.mark.parametrize(
    ("column", "values"),
    [
        (
            "aware",
            pa.array([NEWEST - timedelta(days=3), NEWEST], pa.timestamp("us", tz="UTC")),
        ),
        ("naive", pa.array([datetime(2024, 6, 1), datetime(2024, 6, 30, 12)], pa.timestamp("ms"))),
        ("day", pa.array([date(2024, 6, 2), date(2024, 6, 30)], pa.date32())),
        ("text", pa.array(["2024-06-29T00:00:00Z", "2024-06-30T12:00:00+00:00"])),
    ],
)
def test_freshness_of_a_column_is_measured_from_its_newest_value(
    project: Shipyard, column: str, values: pa.Array
) -> None:
    project.datasets.add("events", pa.table({column: values}))
    checks = [{"kind": "freshness", "column": column, "max_age": "2d"}]
    newest = NEWEST if column != "day" else datetime(2024, 6, 30, tzinfo=UTC)
    fresh = _run(project, "events", checks, now=newest + timedelta(days=2))
    assert fresh.ok
    assert fresh.results[0].observed == newest.isoformat()
    stale = _run(project, "events", checks, now=newest + timedelta(days=2, seconds=1))
    assert not stale.ok
    assert (
        stale.results[0].message
        == f"newest {column} 2 days, 0:00:01 ago, more than 2 days, 0:00:00"
    )


def test_row_checks_on_time_columns_compare_with_date_strings(project: Shipyard) -> None:
    project.datasets.add(
        "events",
        pa.table(
            {
                "at": pa.array(
                    [NEWEST, NEWEST, NEWEST - timedelta(days=400)], pa.timestamp("us", tz="UTC")
                ),
                "day": pa.array([date(2024, 6, 30), date(2023, 1, 1), None], pa.date32()),
            }
        ),
    )
    old_at, old_day, repeated = project.datasets.validate(
        "events",
        [
            {"kind": "range", "column": "at", "min": "2024-01-01"},
            {"kind": "range", "column": "day", "min": "2024-01-01", "max": "2024-12-31"},
            {"kind": "unique", "column": "at"},
        ],
    ).results
    assert (old_at.observed, old_at.examples) == (1, (NEWEST - timedelta(days=400),))
    assert (old_day.observed, old_day.examples) == (1, (date(2023, 1, 1),))
    assert (repeated.observed, repeated.examples) == (1, (NEWEST,))


def test_freshness_of_a_column_that_holds_no_time_fails(project: Shipyard) -> None:
    project.datasets.add(
        "t", pa.table({"when": ["soon", "later"], "never": pa.array([None, None], pa.string())})
    )
    when, never = project.datasets.validate(
        "t",
        [
            {"kind": "freshness", "column": "when", "max_age": "1d"},
            {"kind": "freshness", "column": "never", "max_age": "1d"},
        ],
    ).results
    assert (when.passed, when.message, when.observed) == (False, "not a timestamp", "soon")
    assert (never.passed, never.message) == (False, "the column holds no time")


def test_freshness_without_a_column_is_measured_from_the_fetch(project: Shipyard) -> None:
    version = project.datasets.add("people", _people()).version
    fetched = version.card.fetched_at
    assert fetched is not None
    checks = [{"kind": "freshness", "max_age": "1h"}]
    assert _run(project, "people", checks, now=fetched + timedelta(hours=1)).ok
    stale = _run(project, "people", checks, now=fetched + timedelta(hours=2))
    assert not stale.ok
    assert stale.results[0].message == "fetched 2:00:00 ago, more than 1:00:00"
    assert datetime.fromisoformat(stale.results[0].observed) == fetched


def test_require_raises_naming_every_failed_check_and_returns_the_report_on_success(
    project: Shipyard,
) -> None:
    project.datasets.add("people", _people())
    with pytest.raises(DataValidationError) as caught:
        project.datasets.require(
            "people@1",
            [
                {"kind": "not_null", "column": "age"},
                {"kind": "unique", "column": "id", "name": "one row per id"},
                {"kind": "row_count", "min": 1},
                {"kind": "not_null", "column": "email", "severity": "warning"},
            ],
        )
    error = caught.value
    assert error.reference == "people@1"
    assert error.failures == [
        "not_null(age): 1 null value(s)",
        "one row per id: 2 value(s) repeat, in 4 rows",
    ]
    assert str(error).startswith("people@1 failed 2 check(s): not_null(age): 1 null value(s); ")
    assert isinstance(error, InvalidArgumentError)
    report = project.datasets.require("people@1", [{"kind": "row_count", "min": 8, "max": 8}])
    assert report.ok and report.results[0].observed == 8


def test_validating_a_version_of_files_is_refused(project: Shipyard, tmp_path: Path) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    (folder / "a.bin").write_bytes(b"\x00" * 100)
    project.datasets.add("images", folder)
    with pytest.raises(InvalidArgumentError, match="images@1 holds files, not a table"):
        project.datasets.validate("images", [{"kind": "row_count", "min": 1}])
    with pytest.raises(InvalidArgumentError, match="holds files, not a table"):
        project.datasets.require("images@1", [{"kind": "row_count", "min": 1}])


def test_bad_checks_files_are_refused_naming_the_file(project: Shipyard, tmp_path: Path) -> None:
    project.datasets.add("people", _people())
    missing = tmp_path / "missing.toml"
    with pytest.raises(NotFoundError, match=f"checks file {missing} does not exist"):
        project.datasets.validate("people", missing)
    broken = tmp_path / "broken.toml"
    broken.write_text('[[checks]]\nkind = "not_null\ncolumn = "age"\n')
    with pytest.raises(InvalidArgumentError, match=f"checks file {broken} is not valid TOML"):
        project.datasets.validate("people", broken)
    malformed = tmp_path / "malformed.toml"
    malformed.write_text('[[checks]]\nkind = "range"\n')
    with pytest.raises(InvalidArgumentError, match=r"check 1 \(range\): missing field\(s\) column"):
        project.datasets.validate("people", str(malformed))
    with pytest.raises(DatasetNotFoundError, match="dataset nobody@latest does not exist"):
        project.datasets.validate("nobody", [{"kind": "row_count", "min": 1}])


def test_a_pattern_duckdb_cannot_run_is_refused_naming_the_check(project: Shipyard) -> None:
    project.datasets.add("people", _people())
    with pytest.raises(InvalidArgumentError, match=r"check emails: pattern '\(\?=a\)a' is not RE2"):
        project.datasets.validate(
            "people", [{"kind": "regex", "column": "email", "pattern": "(?=a)a", "name": "emails"}]
        )


def test_validating_changes_nothing_stored(project: Shipyard, tmp_path: Path) -> None:
    project.datasets.add("people", _people())
    project.datasets.add("people", _people().slice(1))
    checks = tmp_path / "checks.toml"
    checks.write_text(PEOPLE_CHECKS)
    before = (_count_versions(project), project.datasets.list(), len(project.audit.list()))
    project.datasets.validate("people", checks)
    with pytest.raises(DataValidationError):
        project.datasets.require("people", checks)
    with pytest.raises(InvalidArgumentError):
        project.datasets.validate("people", [{"kind": "nope"}])
    after = (_count_versions(project), project.datasets.list(), len(project.audit.list()))
    assert after == before
    assert before[0] == 2
