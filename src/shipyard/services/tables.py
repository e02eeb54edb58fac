"""Tables on disk: which files make a table, and a bounded DuckDB session that reads them.

Profiling, validation, diffs and reading a version into Arrow all go through ``open_table``,
so a table is parsed the same way everywhere, in a dedicated in-memory DuckDB connection with
bounded memory that spills to a temporary folder, and every read error names the file (and
for CSV the line).
"""

from __future__ import annotations

import csv
import re
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pyarrow as pa

from shipyard.errors import BackendError, InvalidArgumentError, NotFoundError

__all__ = [
    "FORMATS",
    "LABELS",
    "add_source",
    "check_csv_width",
    "input_errors",
    "open_table",
    "read_table",
    "table_files",
]

FORMATS = ("arrow", "csv", "jsonl", "parquet")
LABELS = {"arrow": "Arrow IPC", "csv": "CSV", "jsonl": "JSON Lines", "parquet": "Parquet"}
# Bounded: a query never takes the machine, whatever the size of the table.
_CONFIG: dict[str, str | int | float | list[str]] = {
    "memory_limit": "1GB",
    "threads": 2,
    "preserve_insertion_order": False,
    "autoinstall_known_extensions": False,  # never reach the network
    "TimeZone": "UTC",
}
_TABLE = "_shipyard_table"
_ERROR_PREFIX = re.compile(r"^[A-Za-z ]*Error:\s*")
_LINE = re.compile(r"\bline:? (\d+)", re.IGNORECASE)


def table_files(paths: Sequence[Path], fmt: str) -> list[Path]:
    """The files that make a table: given files, and the data files directly in given folders.

    Raises:
        NotFoundError: if a path does not exist.
        InvalidArgumentError: for an unknown format, an empty folder or an empty file.
    """
    if fmt not in FORMATS:
        raise InvalidArgumentError(f"unknown table format {fmt!r}; use one of {', '.join(FORMATS)}")
    if not paths:
        raise InvalidArgumentError("no files given: pass at least one file or folder")
    files: list[Path] = []
    for raw in paths:
        path = Path(raw).expanduser().absolute()
        if not path.exists():
            raise NotFoundError(f"{path} does not exist: check the path")
        if path.is_dir():  # skip _SUCCESS, _metadata, .crc and friends beside the data parts
            inside = sorted(
                p for p in path.iterdir() if p.is_file() and not p.name.startswith((".", "_"))
            )
            if not inside:
                raise InvalidArgumentError(f"folder {path} is empty: it holds no {fmt} files")
            files.extend(inside)
        else:
            files.append(path)
    for file in files:
        if file.stat().st_size == 0:
            raise InvalidArgumentError(
                f"{file} is empty (0 bytes): a {LABELS[fmt]} table needs at least a header"
            )
    return files


@contextmanager
def open_table(files: list[Path], fmt: str) -> Iterator[tuple[duckdb.DuckDBPyConnection, str]]:
    """A dedicated, bounded DuckDB connection and the SQL that names the table in it."""
    with tempfile.TemporaryDirectory(prefix="shipyard-profile-") as spill:
        con = duckdb.connect(":memory:", config={**_CONFIG, "temp_directory": spill})
        try:
            con.execute("SET enable_progress_bar = false")
            with input_errors(files, fmt):  # also around the caller's queries
                source = add_source(con, files, fmt)
                if fmt == "csv":
                    check_csv_width(con, source, files)
                yield con, source
        finally:
            con.close()


def check_csv_width(con: duckdb.DuckDBPyConnection, source: str, files: list[Path]) -> None:
    """Refuse a CSV whose sniffed width is not its header's (a ragged row fooled the sniffer)."""
    sniffed = len(con.sql(f"DESCRIBE SELECT * FROM {source}").fetchall())
    for file in files:
        with file.open(newline="", encoding="utf-8", errors="replace") as handle:
            header = next(csv.reader(handle), [])
        if len(header) != sniffed:
            line = _first_bad_csv_line(file)
            at = f" (line {line})" if line is not None else ""
            raise InvalidArgumentError(
                f"{file} is not valid CSV{at}: the header has {len(header)} fields but rows "
                f"have {sniffed}; fix the file so every row has as many fields as the header"
            )


def add_source(
    con: duckdb.DuckDBPyConnection, files: list[Path], fmt: str, name: str = _TABLE
) -> str:
    """Make a table readable in ``con``; returns the SQL that names it in a FROM clause.

    Args:
        con: the session.
        files: the table's files (from ``table_files``).
        fmt: its format.
        name: the name to register an Arrow table under (one name per table in a session).
    """
    listed = "[" + ", ".join("'" + str(f).replace("'", "''") + "'" for f in files) + "]"
    if fmt == "parquet":
        return f"read_parquet({listed}, union_by_name = false)"
    if fmt == "csv":  # the dialect is fixed (RFC 4180); only column types are sniffed
        return (
            f"read_csv({listed}, header = true, delim = ',', quote = '\"', escape = '\"', "
            "strict_mode = true, ignore_errors = false, null_padding = false, "
            "union_by_name = false, sample_size = 20480)"
        )
    if fmt == "jsonl":
        return f"read_json({listed}, format = 'newline_delimited', records = true)"
    # imported here: pyarrow.dataset imports pandas, which an add of Parquet need not wait for
    import pyarrow.dataset as ds

    con.register(name, ds.dataset([str(f) for f in files], format="ipc"))  # batch by batch
    return name


def _name_files(files: list[Path]) -> str:
    return str(files[0]) if len(files) == 1 else f"one of {len(files)} files in {files[0].parent}"


@contextmanager
def input_errors(files: list[Path], fmt: str) -> Iterator[None]:
    """Turn DuckDB and Arrow errors into shipyard errors naming the file and the line."""
    try:
        yield
    except (duckdb.IOException, duckdb.InvalidInputException, pa.ArrowException) as exc:
        raise _invalid_input(str(exc), files, fmt) from exc
    except duckdb.Error as exc:
        message = str(exc)
        # A conversion error is a value that does not fit its sniffed type, or a bug of ours.
        if isinstance(exc, duckdb.ConversionException) and (
            "CSV Error" in message or any(str(f) in message for f in files)
        ):
            raise _invalid_input(message, files, fmt) from exc
        raise BackendError(f"reading {_name_files(files)} failed: {message}") from exc


def _invalid_input(message: str, files: list[Path], fmt: str) -> InvalidArgumentError:
    named = [f for f in files if str(f) in message or f.name in message]
    file = max(named, key=lambda f: len(str(f))) if named else None
    found = _LINE.search(message.split("\n", 1)[0])
    line = int(found.group(1)) if found else None
    if line is None and fmt == "csv" and (file is not None or len(files) == 1):
        line = _first_bad_csv_line(file or files[0])
    where = str(file) if file is not None else _name_files(files)
    at = f" (line {line})" if line is not None else ""
    return InvalidArgumentError(
        f"{where} is not valid {LABELS[fmt]}{at}: {_summary(message)}; "
        f"fix the file or check that it really is {LABELS[fmt]}"
    )


def _summary(message: str) -> str:
    """The first sentences of a DuckDB message, without its long list of possible fixes."""
    kept: list[str] = []
    for raw in message.splitlines():
        if raw.startswith(("Possible fixes", "The search space")) or (kept and not raw.strip()):
            break
        text = re.sub(r"^CSV Error on Line: \d+\s*", "", _ERROR_PREFIX.sub("", raw.strip()))
        if text and not text.startswith("Original Line"):
            kept.append(text)
    return " ".join(kept[:2])[:300] or "unreadable"


def _first_bad_csv_line(path: Path, limit: int = 100_000) -> int | None:
    """The first line whose field count differs from the header's (DuckDB's sniffer omits it)."""
    with path.open(newline="", encoding="utf-8", errors="replace") as handle:
        reader = csv.reader(handle, strict=True)
        try:
            width = len(next(reader, []))
            for row in reader:
                if (row and len(row) != width) or reader.line_num > limit:
                    return reader.line_num if reader.line_num <= limit else None
        except csv.Error:
            return reader.line_num
    return None


def read_table(paths: Sequence[Path], fmt: str) -> pa.Table:
    """Read a whole table into Arrow, parsed exactly as it is profiled."""
    files = table_files(paths, fmt)
    with open_table(files, fmt) as (con, source):
        con.execute("SET preserve_insertion_order = true")  # rows come back in file order
        table: pa.Table = con.sql(f"SELECT * FROM {source}").to_arrow_table()
    return table
