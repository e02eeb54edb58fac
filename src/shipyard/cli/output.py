"""Rendering for every command: Rich for people, ``--json`` for programs, errors as one line."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from shipyard.errors import (
    AlreadyExistsError,
    BackendError,
    ConflictError,
    InvalidArgumentError,
    MissingDependencyError,
    NotFoundError,
    NotSupportedError,
    PermissionDeniedError,
    ShipyardError,
)

__all__ = ["EXIT_CODES", "console", "emit_json", "errors_to_exit", "fail", "kv_table", "table"]

console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False)

# One table from error category to exit code; 1 is kept for "a check found problems".
EXIT_CODES: tuple[tuple[type[ShipyardError], int], ...] = (
    (NotFoundError, 2),
    (InvalidArgumentError, 2),
    (AlreadyExistsError, 2),
    (NotSupportedError, 2),
    (ConflictError, 3),
    (PermissionDeniedError, 4),
    (MissingDependencyError, 5),
    (BackendError, 6),
)


def exit_code(error: ShipyardError) -> int:
    """The exit code for an error, by its category."""
    for kind, code in EXIT_CODES:
        if isinstance(error, kind):
            return code
    return 2


@contextlib.contextmanager
def errors_to_exit() -> Iterator[None]:
    """Turn a ``ShipyardError`` into one red line on stderr and a non-zero exit."""
    try:
        yield
    except ShipyardError as error:
        fail(str(error), exit_code(error))


def fail(message: str, code: int = 2) -> None:
    """Print one red error line and exit with ``code``."""
    err_console.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True, markup=True)
    raise typer.Exit(code)


def emit_json(value: Any) -> None:
    """Print a value as JSON on stdout."""
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")


def kv_table(rows: Mapping[str, Any], *, title: str | None = None) -> Table:
    """A two-column table of names and values."""
    out = Table(title=title, show_header=False, box=None, pad_edge=False)
    out.add_column(style="bold")
    out.add_column()
    for key, value in rows.items():
        out.add_row(key, "" if value is None else str(value))
    return out


def table(
    columns: Sequence[str], rows: Sequence[Sequence[Any]], *, title: str | None = None
) -> Table:
    """A table with a header row."""
    out = Table(title=title)
    for column in columns:
        out.add_column(column)
    for row in rows:
        out.add_row(*("" if v is None else str(v) for v in row))
    return out
