from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.main import get_command
from typer.testing import Result

from shipyard.cli.main import app

DOCS = Path(__file__).parents[2] / "docs" / "cli.md"
Invoke = Callable[..., Result]


def command_paths() -> list[tuple[str, ...]]:
    """Every command and sub-command of the CLI, as argument tuples."""
    paths: list[tuple[str, ...]] = []

    def walk(command: object, path: tuple[str, ...]) -> None:
        paths.append(path)
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, (*path, name))

    walk(get_command(app), ())
    return paths


@pytest.mark.parametrize("path", command_paths(), ids=lambda p: " ".join(p) or "shipyard")
def test_every_command_answers_help(cli: Invoke, path: tuple[str, ...]) -> None:
    result = cli(*path, "--help")
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


@pytest.mark.parametrize("path", [p for p in command_paths() if p], ids=" ".join)
def test_every_command_has_a_docs_entry(path: tuple[str, ...]) -> None:
    assert f"`shipyard {' '.join(path)}" in DOCS.read_text()


def test_every_leaf_command_takes_json() -> None:
    root = get_command(app)
    leaves = 0
    for path in command_paths():
        command = root
        for name in path:
            command = command.commands[name]  # type: ignore[attr-defined]
        if path and not hasattr(command, "commands"):
            leaves += 1
            assert any("--json" in p.opts for p in command.params), path
    assert leaves >= 9


def test_version(cli: Invoke) -> None:
    result = cli("--version")
    assert result.exit_code == 0
    assert result.output.startswith("shipyard 0.")


def test_init_info_fsck_gc_round_trip(cli: Invoke, tmp_path: Path) -> None:
    result = cli("init", "--json")
    assert result.exit_code == 0, result.output
    created = json.loads(result.output)
    assert Path(created["config"]).is_file()
    assert (tmp_path / ".shipyard" / "shipyard.db").is_file()

    again = cli("init")
    assert again.exit_code == 2
    assert "exists already" in again.output

    (tmp_path / "data.bin").write_bytes(b"x" * 1000)
    put = json.loads(cli("blobs", "put", "data.bin", "--json").output)
    assert put["new"] is True and put["size"] == 1000
    assert json.loads(cli("blobs", "put", "data.bin", "--json").output)["new"] is False

    info = json.loads(cli("info", "--json").output)
    assert info["metadata_reachable"] and info["artifact_reachable"]
    assert info["artifact_detail"] == "1 blobs"

    fsck = cli("fsck", "--json")
    assert fsck.exit_code == 0
    assert json.loads(fsck.output)["ok"] is True

    gc = json.loads(cli("gc", "--dry-run", "--json").output)
    assert gc["unreferenced"] == [put["digest"]]
    assert gc["dry_run"] is True and gc["deleted"] == []

    out = tmp_path / "out.bin"
    assert cli("blobs", "get", put["digest"], "-o", str(out)).exit_code == 0
    assert out.read_bytes() == b"x" * 1000

    status = json.loads(cli("db", "status", "--json").output)
    assert status["pending"] == [] and status["current"] == status["head"]
    assert json.loads(cli("db", "upgrade", "--json").output) == {"applied": []}


def test_fsck_exits_1_on_a_corrupt_blob(cli: Invoke, tmp_path: Path) -> None:
    cli("init")
    (tmp_path / "f").write_bytes(b"hello world")
    digest = json.loads(cli("blobs", "put", "f", "--json").output)["digest"]
    hexdigest = digest.split(":")[1]
    blob = tmp_path / ".shipyard" / "artifacts" / "blobs" / hexdigest[:2] / hexdigest[2:]
    blob.write_bytes(b"hello worle")
    result = cli("fsck")
    assert result.exit_code == 1
    assert "corrupt blob" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("blobs", "put", "missing.txt"), "does not exist"),
        (("blobs", "get", "blake3:nothex", "-o", "x"), "invalid digest"),
        (("blobs", "get", "blake3:" + "0" * 64, "-o", "x"), "not in the artifact store"),
    ],
)
def test_errors_are_one_red_line_and_a_nonzero_exit(
    cli: Invoke, args: tuple[str, ...], message: str
) -> None:
    cli("init")
    result = cli(*args)
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_the_installed_script_turns_errors_into_one_line(tmp_path: Path) -> None:
    (tmp_path / "shipyard.toml").write_text("[store]\nmetadata = 42\n")
    result = subprocess.run(
        [sys.executable, "-m", "shipyard", "info"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "COLUMNS": "200"},
    )
    assert result.returncode == 2
    assert result.stderr.startswith("error: setting metadata_uri")
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
