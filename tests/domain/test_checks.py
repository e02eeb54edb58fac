from __future__ import annotations

import tomllib
from datetime import timedelta
from typing import Any

import pytest

from shipyard.domain.checks import (
    KINDS,
    Check,
    CheckResult,
    ValidationReport,
    parse_checks,
    parse_duration,
)
from shipyard.errors import InvalidArgumentError

EVERY_KIND = """
[[checks]]
kind = "not_null"
column = "id"

[[checks]]
kind = "unique"
columns = ["id", "day"]

[[checks]]
kind = "range"
column = "age"
min = 0
max = 120

[[checks]]
kind = "allowed_values"
column = "color"
values = ["red", "green"]

[[checks]]
kind = "regex"
column = "email"
pattern = '[^@]+@[^@]+'

[[checks]]
kind = "schema_equals"
columns = { id = "int64", email = "string" }
strict = true

[[checks]]
kind = "row_count"
min = 1
max = 1000

[[checks]]
kind = "freshness"
max_age = "36h"
column = "updated_at"

[[checks]]
kind = "max_na_share"
max = 0.25
"""


def test_every_kind_parses_from_toml_with_its_parameters() -> None:
    checks = parse_checks(tomllib.loads(EVERY_KIND))
    assert [c.kind for c in checks] == [
        "not_null",
        "unique",
        "range",
        "allowed_values",
        "regex",
        "schema_equals",
        "row_count",
        "freshness",
        "max_na_share",
    ]
    assert {c.kind for c in checks} == set(KINDS)
    by_kind = {c.kind: c for c in checks}
    assert by_kind["not_null"].column == "id"
    assert by_kind["unique"].params == {"columns": ["id", "day"]}
    assert by_kind["range"].params == {"column": "age", "min": 0, "max": 120}
    assert by_kind["allowed_values"].params["values"] == ["red", "green"]
    assert by_kind["regex"].params["pattern"] == "[^@]+@[^@]+"
    assert by_kind["schema_equals"].params == {
        "columns": {"id": "int64", "email": "string"},
        "strict": True,
    }
    assert by_kind["row_count"].params == {"min": 1, "max": 1000}
    assert by_kind["freshness"].params == {"max_age": timedelta(hours=36), "column": "updated_at"}
    assert by_kind["max_na_share"].params == {"max": 0.25}
    assert all(c.severity == "error" for c in checks)


@pytest.mark.parametrize(
    ("definition", "name"),
    [
        ({"kind": "not_null", "column": "age"}, "not_null(age)"),
        ({"kind": "unique", "column": "id"}, "unique(id)"),
        ({"kind": "unique", "columns": ["a", "b"]}, "unique(a,b)"),
        ({"kind": "schema_equals", "columns": {"x": "int64", "y": "string"}}, "schema_equals(x,y)"),
        ({"kind": "row_count", "min": 1}, "row_count"),
        ({"kind": "freshness", "max_age": "1d"}, "freshness"),
        ({"kind": "max_na_share", "max": 0.5}, "max_na_share"),
        ({"kind": "not_null", "column": "age", "name": "age is known"}, "age is known"),
    ],
)
def test_a_check_is_named_after_its_kind_and_columns_unless_named(
    definition: dict[str, Any], name: str
) -> None:
    (check,) = parse_checks([definition])
    assert check.name == name


def test_severity_defaults_to_error_and_may_be_warning() -> None:
    error, warning = parse_checks(
        {
            "checks": [
                {"kind": "not_null", "column": "a"},
                {"kind": "not_null", "column": "a", "severity": "warning"},
            ]
        }
    )
    assert (error.severity, warning.severity) == ("error", "warning")


def test_unique_on_one_column_is_stored_as_a_list_of_columns() -> None:
    (check,) = parse_checks([{"kind": "unique", "column": "id"}])
    assert check.params == {"columns": ["id"]}
    assert check.column is None


@pytest.mark.parametrize(
    ("definition", "message"),
    [
        ({"kind": "no_nulls", "column": "a"}, "unknown kind 'no_nulls'"),
        ({"column": "a"}, "unknown kind None"),
        ({"kind": ["not_null"], "column": "a"}, "unknown kind"),
        ({"kind": "not_null"}, "check 1 (not_null): missing field(s) column"),
        ({"kind": "regex", "column": "a"}, "missing field(s) pattern"),
        ({"kind": "allowed_values"}, "missing field(s) column, values"),
        ({"kind": "not_null", "column": "a", "colour": "x"}, "unknown field(s) colour"),
        ({"kind": "row_count", "minimum": 1}, "unknown field(s) minimum"),
        (
            {"kind": "not_null", "column": "a", "severity": "fatal"},
            "severity is 'error' or 'warning'",
        ),
        ({"kind": "regex", "column": "a", "pattern": "[a-"}, "pattern is not a valid regex"),
        ({"kind": "regex", "column": "a", "pattern": 5}, "pattern is not a valid regex"),
        ({"kind": "freshness", "max_age": "7x"}, "duration '7x' is not a number and a unit"),
        ({"kind": "max_na_share", "max": 1.5}, "max is a share between 0 and 1"),
        ({"kind": "max_na_share", "max": -0.1}, "max is a share between 0 and 1"),
        ({"kind": "max_na_share", "max": "half"}, "max is a share between 0 and 1"),
        ({"kind": "allowed_values", "column": "a", "values": "red"}, "values must be a non-empty"),
        ({"kind": "allowed_values", "column": "a", "values": []}, "values must be a non-empty"),
        ({"kind": "unique"}, "give column or columns"),
        ({"kind": "unique", "columns": "id"}, "give column or columns (a list of names)"),
        ({"kind": "unique", "columns": ["a", 1]}, "give column or columns"),
        ({"kind": "range", "column": "a", "min": [1]}, "min must be a number"),
        ({"kind": "row_count", "min": "ten"}, "min must be a whole number of rows"),
        ({"kind": "row_count", "max": 1.5}, "max must be a whole number of rows"),
        ({"kind": "schema_equals", "columns": ["a"]}, "columns must map column names"),
        ({"kind": "schema_equals", "columns": {}}, "columns must map column names"),
    ],
)
def test_a_bad_definition_is_refused_naming_what_is_wrong(
    definition: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        parse_checks([definition])
    assert message in str(caught.value)


def test_an_unknown_kind_lists_every_kind() -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        parse_checks([{"kind": "nope"}])
    assert f"kinds are {', '.join(sorted(KINDS))}" in str(caught.value)


def test_a_bad_check_is_named_by_its_position() -> None:
    good = {"kind": "not_null", "column": "a"}
    with pytest.raises(InvalidArgumentError, match=r"^check 3 \(range\): missing field"):
        parse_checks([good, good, {"kind": "range"}])


@pytest.mark.parametrize(
    "data",
    [{}, {"checks": []}, [], {"checks": "not_null"}, {"checks": {"kind": "not_null"}}],
    ids=["no key", "empty list", "empty python list", "a string", "a table, not an array"],
)
def test_no_checks_is_an_error(data: Any) -> None:
    with pytest.raises(
        InvalidArgumentError, match=r"no checks given: write them as \[\[checks\]\]"
    ):
        parse_checks(data)


def test_a_check_that_is_not_a_table_is_an_error() -> None:
    with pytest.raises(InvalidArgumentError, match="check 2 is not a table of fields"):
        parse_checks([{"kind": "row_count"}, "not_null"])


def test_parsing_leaves_the_given_definitions_unchanged() -> None:
    definition = {"kind": "freshness", "max_age": "2h"}
    parse_checks([definition])
    assert definition == {"kind": "freshness", "max_age": "2h"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("15m", timedelta(minutes=15)),
        ("24h", timedelta(hours=24)),
        ("7d", timedelta(days=7)),
        ("2w", timedelta(weeks=2)),
        ("1.5h", timedelta(minutes=90)),
        (" 3 d ", timedelta(days=3)),
        ("0s", timedelta(0)),
    ],
)
def test_durations_parse(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["7x", "7", "d", "", "-1d", "7 days", "1h30m", 7, None])
def test_bad_durations_are_refused_with_an_example(text: object) -> None:
    with pytest.raises(InvalidArgumentError, match=r"such as '7d'"):
        parse_duration(text)


def test_a_report_fails_only_on_errors_not_on_warnings() -> None:
    error, warning = parse_checks(
        [
            {"kind": "row_count", "min": 1},
            {"kind": "row_count", "min": 1, "severity": "warning", "name": "soft"},
        ]
    )
    warned = ValidationReport("d@1", (CheckResult(warning, False, 0, {"min": 1}, "0 rows"),))
    assert warned.ok and warned.failures == ()
    failed = ValidationReport(
        "d@1",
        (
            CheckResult(warning, False, 0, {"min": 1}, "0 rows"),
            CheckResult(error, False, 0, {"min": 1}, "0 rows"),
        ),
    )
    assert not failed.ok
    assert [r.check.name for r in failed.failures] == ["row_count"]
    assert failed.to_dict()["ok"] is False
    assert [r["severity"] for r in failed.to_dict()["results"]] == ["warning", "error"]


def test_a_result_is_json_safe_with_examples_as_text() -> None:
    check = Check("range", {"column": "age", "min": 0}, "range(age)")
    result = CheckResult(check, False, 2, {"min": 0}, "2 row(s) out of range", (-5, -1))
    assert result.to_dict() == {
        "name": "range(age)",
        "kind": "range",
        "column": "age",
        "severity": "error",
        "passed": False,
        "observed": 2,
        "expected": {"min": 0},
        "message": "2 row(s) out of range",
        "examples": ["-5", "-1"],
    }
