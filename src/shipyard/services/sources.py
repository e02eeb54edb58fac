"""Data sources: turn what ``data add`` is given into local files to store.

A source is a local file or folder, an http(s) URL, any fsspec URL (``s3://…``), a SQL query
against any SQLAlchemy URL, or an in-memory table (pyarrow, pandas or polars). Remote and
in-memory sources are first written to a private temporary folder inside the project.
"""

from __future__ import annotations

import contextlib
import operator
import os
import shutil
import stat
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from shipyard.domain.ids import utcnow
from shipyard.errors import MissingDependencyError, SourceError, UnsafePathError
from shipyard.services.objects import LocalFile
from shipyard.stores.metadata import redact_url

__all__ = ["ResolvedSource", "resolve_source"]

_HTTP_TIMEOUT = 60
_SQL_BATCH = 50_000
_NAME = operator.attrgetter("name")


@dataclass(frozen=True, slots=True)
class ResolvedSource:
    """Local files ready to store, and where they came from."""

    files: list[LocalFile]
    uri: str
    fetched_at: datetime


@contextlib.contextmanager
def resolve_source(
    source: Any = None,
    *,
    sql: str | None = None,
    db: str | None = None,
    scratch: Path,
) -> Iterator[ResolvedSource]:
    """Materialise a source as local files for the duration of the block.

    Args:
        source: a path, a URL, or a pyarrow / pandas / polars table.
        sql: a SQL query to run instead of reading ``source``.
        db: the SQLAlchemy URL the query runs against.
        scratch: a folder for temporary copies (inside the project, so renames stay local).

    Raises:
        SourceError: the source is missing, unreachable, empty or fails.
    """
    scratch.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="source-", dir=scratch))
    try:
        if sql is not None:
            if not db:
                raise SourceError("the SQL query", "name the database with --db URL")
            yield ResolvedSource([_from_sql(sql, db, tmp)], redact_url(db), utcnow())
        elif isinstance(source, (str, os.PathLike)):
            text = os.fspath(source)
            if text.startswith(("http://", "https://")):
                yield ResolvedSource([_from_http(text, tmp)], text, utcnow())
            elif "://" in text and not text.startswith("file://"):
                yield ResolvedSource(_from_fsspec(text, tmp), text, utcnow())
            else:
                path = Path(text.removeprefix("file://")).expanduser()
                yield ResolvedSource(_local_files(path), str(path.resolve()), utcnow())
        elif source is not None:
            yield ResolvedSource(
                [_from_frame(source, tmp)], "python:" + type(source).__name__, utcnow()
            )
        else:
            raise SourceError("nothing", "give a file, folder, URL, table or --sql query")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _local_files(path: Path) -> list[LocalFile]:
    try:
        info = path.stat()
    except FileNotFoundError:
        raise SourceError(str(path), "no such file or folder") from None
    except OSError as exc:
        raise SourceError(str(path), exc.strerror or str(exc)) from None
    if stat.S_ISREG(info.st_mode):
        key = (info.st_size, info.st_mtime_ns, info.st_ino)
        return [LocalFile(path.resolve(), path.name, key)]
    if not stat.S_ISDIR(info.st_mode):
        raise SourceError(str(path), "not a regular file or folder")
    files = _walk(str(path.resolve()))
    if not files:
        raise SourceError(str(path), "the folder holds no files")
    return files


def _walk(root: str) -> list[LocalFile]:
    """The files under ``root``, in ``os.walk`` order with sorted names, each stat'ed once.

    Like ``os.walk``: a folder that cannot be listed is skipped, and a symlink to a folder is
    neither followed nor stored. A symlink to a file inside ``root`` is stored as that file;
    one that leads outside raises ``UnsafePathError``; anything else that is not a regular
    file (a socket, a device, a dangling symlink) raises ``SourceError``.
    """
    inside = root.rstrip("/") + "/"
    files: list[LocalFile] = []
    folders = [(root, "")]  # a stack of (absolute path, its name inside root + "/")
    while folders:
        folder, prefix = folders.pop()
        try:
            with os.scandir(folder) as listing:
                entries = sorted(listing, key=_NAME)
        except OSError:
            continue
        subfolders: list[tuple[str, str]] = []
        for entry in entries:
            try:
                is_dir = entry.is_dir()  # follows a symlink, as os.walk does
            except OSError:
                is_dir = False
            if is_dir:
                if not entry.is_symlink():
                    subfolders.append((entry.path, prefix + entry.name + "/"))
                continue
            try:
                info: os.stat_result | None = entry.stat(follow_symlinks=False)
            except OSError:
                info = None
            if info is None or not stat.S_ISREG(info.st_mode):
                info = _followed(entry, prefix + entry.name, info, inside)
            key = (info.st_size, info.st_mtime_ns, info.st_ino)
            files.append(LocalFile(entry.path, prefix + entry.name, key))
        folders.extend(reversed(subfolders))
    return files


def _followed(
    entry: os.DirEntry[str], name: str, info: os.stat_result | None, inside: str
) -> os.stat_result:
    """The stat of the file a symlink inside the folder leads to; any other entry raises."""
    if info is not None and stat.S_ISLNK(info.st_mode):
        if not os.path.realpath(entry.path).startswith(inside):
            raise UnsafePathError(name, "a symlink in the folder leads outside it")
        try:
            info = entry.stat()
        except OSError:
            info = None
    if info is None or not stat.S_ISREG(info.st_mode):
        raise SourceError(entry.path, "not a regular file")
    return info


def _from_http(url: str, tmp: Path) -> LocalFile:
    name = Path(urllib.parse.urlparse(url).path).name or "download"
    dest = tmp / name
    try:
        with urllib.request.urlopen(url, timeout=_HTTP_TIMEOUT) as response, dest.open("wb") as out:
            shutil.copyfileobj(response, out, 1024 * 1024)
    except urllib.error.HTTPError as exc:
        raise SourceError(url, f"the server answered {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        raise SourceError(url, f"unreachable ({reason})") from None
    return LocalFile(dest, name)


def _from_fsspec(url: str, tmp: Path) -> list[LocalFile]:
    import fsspec

    try:
        fs, path = fsspec.core.url_to_fs(url)
    except ImportError as exc:
        raise MissingDependencyError(exc.name or url.split("://")[0], "all") from None
    try:
        if fs.isdir(path):
            fs.get(path.rstrip("/") + "/", str(tmp / "data") + "/", recursive=True)
            return _local_files(tmp / "data")
        name = Path(path).name
        fs.get_file(path, str(tmp / name))
    except FileNotFoundError:
        raise SourceError(url, "no such file or folder") from None
    except OSError as exc:
        raise SourceError(url, str(exc)) from None
    return [LocalFile(tmp / name, name)]


def _from_sql(sql: str, db: str, tmp: Path) -> LocalFile:
    import pyarrow as pa
    import pyarrow.parquet as pq
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import SQLAlchemyError

    dest = tmp / "query.parquet"
    try:
        engine = create_engine(db)
    except (SQLAlchemyError, ValueError) as exc:
        raise SourceError(redact_url(db), f"not a usable database URL ({exc})") from None
    except ModuleNotFoundError as exc:
        raise MissingDependencyError(exc.name or "driver", "all") from None
    writer: Any = None
    try:
        with engine.connect() as conn:
            result = conn.execution_options(stream_results=True).execute(text(sql))
            columns = list(result.keys())
            while rows := result.fetchmany(_SQL_BATCH):
                batch = pa.table({c: [r[i] for r in rows] for i, c in enumerate(columns)})
                if writer is None:
                    writer = pq.ParquetWriter(dest, batch.schema)
                writer.write_table(batch.cast(writer.schema))
            if writer is None:
                empty = pa.table({c: pa.array([], pa.null()) for c in columns})
                pq.write_table(empty, dest)
    except SQLAlchemyError as exc:
        raise SourceError("the SQL query", str(getattr(exc, "orig", exc) or exc).strip()) from None
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise SourceError("the SQL query", f"a column changes type between rows ({exc})") from None
    finally:
        if writer is not None:
            writer.close()
        engine.dispose()
    return LocalFile(dest, "query.parquet")


def _from_frame(frame: Any, tmp: Path) -> LocalFile:
    import pyarrow as pa
    import pyarrow.parquet as pq

    module = type(frame).__module__.split(".")[0]
    if isinstance(frame, pa.Table):
        table = frame
    elif isinstance(frame, pa.RecordBatch):
        table = pa.Table.from_batches([frame])
    elif module == "pandas":
        try:
            table = pa.Table.from_pandas(frame, preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise SourceError("the DataFrame", f"a column mixes types ({exc})") from None
    elif module == "polars":
        table = frame.to_arrow()
    else:
        raise SourceError(
            type(frame).__name__, "expected a path, URL, pyarrow Table, pandas or polars DataFrame"
        )
    dest = tmp / "data.parquet"
    pq.write_table(table, dest, compression="zstd")
    return LocalFile(dest, "data.parquet")
