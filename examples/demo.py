"""The end-to-end demo behind `make demo`: each step runs the real CLI and shows its output.

It works in a fresh temporary folder on the embedded defaults (SQLite + local artifacts), so
it never touches anything else on the machine.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

from rich.console import Console
from rich.rule import Rule

console = Console(highlight=False)


def step(title: str, *args: str, cwd: Path, expect: int = 0) -> str:
    """Run `shipyard ARGS` in the project, show the command and its output."""
    console.print(Rule(f"[bold]{title}"))
    console.print(f"[cyan]$ shipyard {shlex.join(args)}[/cyan]")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
    env["COLUMNS"] = "110"
    result = subprocess.run(
        [sys.executable, "-m", "shipyard", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    output = result.stdout + result.stderr
    console.print(output.rstrip(), markup=False, soft_wrap=True)
    if result.returncode != expect:
        console.print(f"[red]demo step failed with exit code {result.returncode}[/red]")
        raise SystemExit(1)
    return result.stdout


def main() -> None:
    """Run every step of the demo."""
    with tempfile.TemporaryDirectory(prefix="shipyard-demo-") as tmp:
        root = Path(tmp)
        console.print(f"[bold]shipyard demo[/bold] in {root}")
        step("1. initialise a project", "init", cwd=root)
        notes = root / "notes.txt"
        notes.write_text("shipyard stores every file once, by its BLAKE3 digest.\n" * 100)
        step("2. store a file", "blobs", "put", "notes.txt", cwd=root)
        step("   storing it again stores nothing new", "blobs", "put", "notes.txt", cwd=root)
        step("3. what is configured, and can it be reached?", "info", cwd=root)

        wine = write_wine(root / "wine.csv")
        step(
            "4. add a dataset: the wine table scikit-learn ships",
            "data",
            "add",
            "wine",
            "wine.csv",
            "--key",
            "id",
            "--license",
            "BSD-3-Clause",
            "--tag",
            "source=sklearn",
            "--description",
            "Wine recognition data, one row a wine.",
            cwd=root,
        )
        step(
            "   adding the same content again makes no new version",
            "data",
            "add",
            "wine",
            "wine.csv",
            cwd=root,
        )
        change_wine(wine)
        step(
            "5. a changed version: rows dropped, a column shifted, a column added",
            "data",
            "add",
            "wine",
            "wine.csv",
            cwd=root,
        )
        step(
            "6. its card and column profile (and an HTML report with plots)",
            "data",
            "show",
            "wine@2",
            "--html",
            "wine-report.html",
            cwd=root,
        )
        checks = root / "checks.toml"
        checks.write_text(CHECKS)
        step(
            "7. validate it against declarative checks (exit 1 = a check failed)",
            "data",
            "validate",
            "wine@2",
            "--checks",
            "checks.toml",
            cwd=root,
            expect=1,
        )
        step("8. what changed between the versions", "data", "diff", "wine@1", "wine@2", cwd=root)
        step("9. check every blob and reference", "fsck", cwd=root)
        step("10. blobs nothing references", "gc", "--dry-run", cwd=root)
        console.print(Rule("[green]demo finished"))


CHECKS = """
[[checks]]
kind = "not_null"
column = "alcohol"

[[checks]]
kind = "unique"
column = "id"

[[checks]]
kind = "range"
column = "alcohol"
min = 10
max = 15

[[checks]]
kind = "allowed_values"
column = "target"
values = [0, 1, 2]

[[checks]]
kind = "row_count"
min = 100
"""


def write_wine(path: Path) -> Path:
    """Write scikit-learn's wine table (shipped with scikit-learn, no download) as CSV."""
    from sklearn.datasets import load_wine

    frame = load_wine(as_frame=True).frame.reset_index(names="id")
    frame.to_csv(path, index=False)
    return path


def change_wine(path: Path) -> None:
    """Drop some rows, shift one column and add another: what a new data drop looks like."""
    import pandas as pd

    frame = pd.read_csv(path)
    frame = frame.drop(index=range(170, 178))
    frame.loc[:30, "alcohol"] += 1.5
    frame["batch"] = "2026-11"
    frame.to_csv(path, index=False)


if __name__ == "__main__":
    main()
