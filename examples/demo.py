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
        data = root / "notes.txt"
        data.write_text("shipyard stores every file once, by its BLAKE3 digest.\n" * 100)
        step("2. store a file", "blobs", "put", "notes.txt", cwd=root)
        step("   storing it again stores nothing new", "blobs", "put", "notes.txt", cwd=root)
        step("3. what is configured, and can it be reached?", "info", cwd=root)
        step("4. check every blob and reference", "fsck", cwd=root)
        step("5. blobs nothing references yet", "gc", "--dry-run", cwd=root)
        console.print(Rule("[green]demo finished"))


if __name__ == "__main__":
    main()
