from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import Result

Invoke = Callable[..., Result]

PEOPLE = (
    "id,name,email,score\n"
    "1,ann,ann@example.org,0.5\n"
    "2,bob,bob@example.org,0.75\n"
    "3,cy,not-an-email,1.5\n"
)


@pytest.fixture
def people(cli: Invoke, tmp_path: Path) -> Path:
    """An initialised project in the working folder, and a small CSV beside it."""
    assert cli("init").exit_code == 0
    path = tmp_path / "people.csv"
    path.write_text(PEOPLE)
    return path


def _json(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def _one_error_line(result: Result, code: int = 2) -> str:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error: ")
    return lines[0]


def test_add_prints_the_new_version_as_json(cli: Invoke, people: Path) -> None:
    added = _json(cli("data", "add", "people", str(people), "--json"))
    assert added["created"] is True
    assert added["hashed_files"] == 1
    assert added["new_bytes"] > 0
    version = added["version"]
    assert version["ref"] == "people@1"
    assert (version["kind"], version["format"], version["rows"]) == ("table", "csv", 3)
    assert (version["file_count"], version["bytes"]) == (1, len(PEOPLE))
    assert [c["name"] for c in version["schema"]] == ["id", "name", "email", "score"]
    assert version["card"]["source_uri"] == str(people.resolve())
    assert version["parent"] is None


def test_adding_the_same_content_again_makes_no_version(cli: Invoke, people: Path) -> None:
    first = _json(cli("data", "add", "people", str(people), "--json"))
    again = _json(cli("data", "add", "people", str(people), "--json"))
    assert again["created"] is False and again["new_bytes"] == 0
    assert again["version"] == first["version"]
    said = cli("data", "add", "people", str(people))
    assert said.exit_code == 0
    assert "unchanged: the content is already people@1; nothing new stored" in said.output


def test_human_add_says_what_was_stored(cli: Invoke, people: Path) -> None:
    result = cli("data", "add", "people", str(people))
    assert result.exit_code == 0, result.output
    assert f"added people@1: 1 file(s), {len(PEOPLE)} bytes, 3 rows" in result.output


def test_tags_key_and_card_fields_are_recorded(cli: Invoke, people: Path) -> None:
    added = _json(
        cli(
            "data",
            "add",
            "people",
            str(people),
            "--tag",
            "team=growth",
            "--tag",
            "pii=yes=really",
            "--key",
            "id",
            "--description",
            "One row per person.",
            "--license",
            "CC0-1.0",
            "--owner",
            "data-team",
            "--json",
        )
    )
    version = added["version"]
    assert version["card"]["tags"] == {"team": "growth", "pii": "yes=really"}
    assert version["key_columns"] == ["id"]
    assert version["card"]["description"] == "One row per person."
    assert (version["card"]["license"], version["card"]["owner"]) == ("CC0-1.0", "data-team")


@pytest.mark.parametrize("tag", ["team", "=growth"])
def test_a_tag_without_a_key_and_an_equals_sign_is_one_error_line(
    cli: Invoke, people: Path, tag: str
) -> None:
    line = _one_error_line(cli("data", "add", "people", str(people), "--tag", tag))
    assert line == f"error: --tag {tag!r}: write the tag as KEY=VALUE"
    assert json.loads(cli("data", "list", "--json").output) == []


def test_a_key_that_is_not_a_column_is_refused(cli: Invoke, people: Path) -> None:
    line = _one_error_line(cli("data", "add", "people", str(people), "--key", "uid"))
    assert "key column(s) uid not in the table" in line
    assert "email, id, name, score" in line


def test_list_and_versions_as_json(cli: Invoke, people: Path, tmp_path: Path) -> None:
    cli("data", "add", "people", str(people), "-d", "People.")
    people.write_text(PEOPLE + "4,dee,dee@example.org,0.25\n")
    cli("data", "add", "people", str(people))
    other = tmp_path / "other.csv"
    other.write_text("a\n1\n")
    cli("data", "add", "other", str(other))

    listed = _json(cli("data", "list", "--json"))
    assert [(d["name"], d["latest"], d["versions"]) for d in listed] == [
        ("other", 1, 1),
        ("people", 2, 2),
    ]
    assert listed[1]["description"] == "People."

    found = _json(cli("data", "versions", "people", "--json"))
    assert [(v["ref"], v["rows"], v["parent"]) for v in found] == [
        ("people@1", 3, None),
        ("people@2", 4, 1),
    ]
    human = cli("data", "versions", "people")
    assert human.exit_code == 0
    assert "people@1" in human.output and "people@2" in human.output


def test_show_prints_the_card_and_the_columns(cli: Invoke, people: Path) -> None:
    cli("data", "add", "people", str(people), "--tag", "team=growth")
    result = cli("data", "show", "people@1")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("people@1\n")
    for word in ("id", "name", "email", "score", "team=growth", "profile: 3 rows", "int64"):
        assert word in result.output
    shown = _json(cli("data", "show", "people", "--json"))
    assert shown["version"]["ref"] == "people@1"
    assert shown["profile"]["rows"] == 3
    assert [c["name"] for c in shown["profile"]["columns"]] == ["id", "name", "email", "score"]


def test_show_html_writes_a_self_contained_report(
    cli: Invoke, people: Path, tmp_path: Path
) -> None:
    cli("data", "add", "people", str(people))
    result = cli("data", "show", "people@1", "--html", "report.html")
    assert result.exit_code == 0, result.output
    assert "wrote report.html" in result.output
    page = (tmp_path / "report.html").read_text()
    assert "<svg" in page
    assert "people@1" in page and "email" in page
    linked = re.findall(r"""\b(?:src|href)\s*=\s*["']?([^"'\s>]+)""", page)
    assert not [url for url in linked if url.startswith(("http://", "https://", "//"))]


def test_show_lists_the_files_of_a_version_of_files(
    cli: Invoke, people: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "blobs"
    folder.mkdir()
    (folder / "a.bin").write_bytes(b"a" * 10)
    (folder / "b.bin").write_bytes(b"b" * 20)
    cli("data", "add", "blobs", str(folder))
    result = cli("data", "show", "blobs@1")
    assert result.exit_code == 0, result.output
    assert "2 file(s)" in result.output and "a.bin" in result.output
    refused = cli("data", "show", "blobs@1", "--html", "r.html")
    assert "holds files, not a table" in _one_error_line(refused)
    assert not (tmp_path / "r.html").exists()


def test_get_writes_the_identical_bytes(cli: Invoke, people: Path, tmp_path: Path) -> None:
    cli("data", "add", "people", str(people))
    result = cli("data", "get", "people@1", "-o", "out")
    assert result.exit_code == 0, result.output
    assert "wrote 1 file(s) of people@1 to out" in result.output
    assert (tmp_path / "out" / "people.csv").read_bytes() == people.read_bytes()
    listed = _json(cli("data", "get", "people", "-o", "again", "--json"))
    assert listed == {"ref": "people@1", "files": [str(Path("again") / "people.csv")]}


def test_a_label_points_at_a_version_and_moves(cli: Invoke, people: Path, tmp_path: Path) -> None:
    cli("data", "add", "people", str(people))
    people.write_text(PEOPLE + "4,dee,dee@example.org,0.25\n")
    cli("data", "add", "people", str(people))
    result = cli("data", "label", "people@1", "golden")
    assert result.exit_code == 0, result.output
    assert "people@golden -> people@1" in result.output
    assert _json(cli("data", "show", "people@golden", "--json"))["version"]["rows"] == 3
    moved = _json(cli("data", "label", "people@2", "golden", "--json"))
    assert moved == {"label": "people@golden", "version": "people@2"}
    cli("data", "get", "people@golden", "-o", "out")
    assert (tmp_path / "out" / "people.csv").read_text().endswith("dee@example.org,0.25\n")
    assert "cannot be a label" in _one_error_line(cli("data", "label", "people@1", "latest"))


def test_validate_exits_0_when_the_checks_pass(cli: Invoke, people: Path, tmp_path: Path) -> None:
    cli("data", "add", "people", str(people))
    checks = tmp_path / "checks.toml"
    checks.write_text(
        '[[checks]]\nkind = "unique"\ncolumn = "id"\n\n'
        '[[checks]]\nkind = "row_count"\nmin = 3\nmax = 3\n\n'
        '[[checks]]\nkind = "range"\ncolumn = "score"\nmin = 0\nmax = 1\nseverity = "warning"\n'
    )
    result = cli("data", "validate", "people@1", "--checks", str(checks))
    assert result.exit_code == 0, result.output
    assert "unique(id)" in result.output and "row_count" in result.output
    assert "warn" in result.output and "1 row(s) out of range" in result.output
    assert "all checks pass" in result.output


def test_validate_exits_1_and_prints_the_table_when_a_check_fails(
    cli: Invoke, people: Path, tmp_path: Path
) -> None:
    cli("data", "add", "people", str(people))
    checks = tmp_path / "checks.toml"
    checks.write_text(
        '[[checks]]\nname = "emails"\nkind = "regex"\ncolumn = "email"\npattern = ".+@.+"\n\n'
        '[[checks]]\nkind = "not_null"\ncolumn = "id"\n'
    )
    result = cli("data", "validate", "people@1", "-c", str(checks))
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    for text in ("people@1", "FAIL", "emails", "1 row(s) do not match", "not-an-email"):
        assert text in result.output
    assert "pass" in result.output and "1 check(s) failed" in result.output
    report = json.loads(cli("data", "validate", "people", "-c", str(checks), "--json").output)
    assert report["ok"] is False
    assert [(r["name"], r["passed"]) for r in report["results"]] == [
        ("emails", False),
        ("not_null(id)", True),
    ]
    assert report["results"][0]["examples"] == ["not-an-email"]


@pytest.mark.parametrize(
    ("checks", "message"),
    [
        (None, "checks file missing.toml does not exist"),
        ('[[checks]]\nkind = "not_null\n', "checks file checks.toml is not valid TOML"),
        ('[[checks]]\nkind = "nope"\n', "check 1: unknown kind 'nope'"),
    ],
    ids=["missing", "not toml", "bad check"],
)
def test_validate_with_a_bad_checks_file_is_one_error_line(
    cli: Invoke, people: Path, tmp_path: Path, checks: str | None, message: str
) -> None:
    cli("data", "add", "people", str(people))
    name = "missing.toml"
    if checks is not None:
        name = "checks.toml"
        (tmp_path / name).write_text(checks)
    assert message in _one_error_line(cli("data", "validate", "people@1", "-c", name))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("data", "show", "nope@1"), "error: dataset nope@1 does not exist"),
        (("data", "versions", "nope"), "error: dataset nope does not exist"),
        (("data", "get", "nope@1", "-o", "out"), "error: dataset nope@1 does not exist"),
        (("data", "label", "nope@1", "golden"), "error: dataset nope@1 does not exist"),
        (("data", "show", "people@9"), "people has versions 1 to 1"),
        (("data", "add", "a/b", "people.csv"), "error: invalid name 'a/b'"),
        (("data", "add", "people", "missing.csv"), "cannot read missing.csv: no such file"),
        (("data", "add", "people"), "give a file, folder, URL, table or --sql query"),
        (("data", "add", "people", "people.csv", "--format", "xlsx"), "unknown table format"),
        (("data", "show", "people@1@2"), "invalid reference 'people@1@2'"),
    ],
)
def test_errors_are_one_line_with_exit_2(
    cli: Invoke, people: Path, args: tuple[str, ...], message: str
) -> None:
    cli("data", "add", "people", str(people))
    line = _one_error_line(cli(*args))
    assert message in line
    versions = _json(cli("data", "versions", "people", "--json"))
    assert len(versions) == 1, "nothing new was stored"
