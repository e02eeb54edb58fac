"""One SQLAlchemy metadata store for SQLite and PostgreSQL, migrated by one Alembic chain.

SQLite runs in WAL mode with a busy timeout; write transactions start with ``BEGIN
IMMEDIATE`` so that two writers queue instead of failing half-way with "database is
locked". Opening a store applies pending migrations under a lock (a lock file beside a
SQLite database, an advisory lock on PostgreSQL), so any number of processes opening an
empty store at once migrate it exactly once.
"""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import math
import os
import socket
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Table, create_engine, event, select, text, union
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DataError, NoSuchModuleError, OperationalError

from shipyard.domain.ids import utcnow
from shipyard.errors import (
    InvalidArgumentError,
    MissingDependencyError,
    SettingsError,
    StoreUnavailableError,
)
from shipyard.stores.metadata.schema import digest_columns, schema_history

__all__ = ["MigrationStatus", "SqlMetadataStore", "redact_url"]

MIGRATIONS = Path(__file__).parent / "migrations"
_PG_LOCK_KEY = 0x5348_4950  # "SHIP": the advisory lock that serialises migrations
_BUSY_TIMEOUT_MS = 30_000
_INSERT_BATCH = 10_000

RowListener = Callable[[Connection, str, Mapping[str, Any]], None]


@dataclass(frozen=True, slots=True)
class MigrationStatus:
    """Where a store's schema stands against the migrations this shipyard knows."""

    current: str | None
    head: str
    pending: tuple[str, ...]

    @property
    def up_to_date(self) -> bool:
        """Whether no migration is pending."""
        return not self.pending


class SqlMetadataStore:
    """The metadata store on SQLite or PostgreSQL.

    Args:
        uri: SQLAlchemy URL, ``sqlite:///path`` or ``postgresql+psycopg://user@host/db``.
        durability: ``"full"`` fsyncs every SQLite commit; ``"normal"`` lets WAL
            checkpoints do it (a crash of the process loses nothing, a power cut may).
        migrate: apply pending migrations on open.
    """

    def __init__(self, uri: str, *, durability: str = "full", migrate: bool = True) -> None:
        self.uri = uri
        try:
            url = make_url(uri)
        except ArgumentError:
            raise SettingsError("metadata_uri", f"{uri!r} is not a SQLAlchemy URL") from None
        self.dialect = url.get_backend_name()
        if self.dialect not in ("sqlite", "postgresql"):
            raise SettingsError(
                "metadata_uri", f"{self.dialect!r} is not supported: use sqlite or postgresql"
            )
        if self.dialect == "postgresql" and url.drivername == "postgresql":
            url = url.set(drivername="postgresql+psycopg")
        self._db_path: Path | None = None
        self._analyzed_at = -math.inf
        # (table, columns, ignore) -> driver statement and bind conversions (``insert_row``)
        self._plain_inserts: dict[tuple[str, tuple[str, ...], bool], tuple[str, list[Any]]] = {}
        self._row_listeners: list[RowListener] = []
        options: dict[str, Any] = {}
        if self.dialect == "sqlite":
            options["connect_args"] = {"timeout": _BUSY_TIMEOUT_MS / 1000}
            if url.database and url.database != ":memory:":
                self._db_path = Path(url.database)
                try:
                    self._db_path.parent.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise StoreUnavailableError(uri, str(exc)) from None
        else:
            options["pool_pre_ping"] = True
        try:
            self.engine: Engine = create_engine(url, **options)
        except NoSuchModuleError:
            raise SettingsError("metadata_uri", f"no driver for {uri!r}") from None
        except ModuleNotFoundError as exc:
            raise MissingDependencyError(exc.name or "psycopg", "postgres") from None
        if self.dialect == "sqlite":
            _tune_sqlite(self.engine, synchronous="FULL" if durability == "full" else "NORMAL")
        if migrate:
            self.migrate()

    @contextlib.contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection for reads, in one transaction that is rolled back at the end."""
        try:
            with self.engine.connect() as conn:
                yield conn
        except OperationalError as exc:
            raise StoreUnavailableError(self.uri, str(exc.orig)) from None
        except DataError as exc:
            raise _refused_value(exc) from None

    @contextlib.contextmanager
    def write(self) -> Iterator[Connection]:
        """A connection in one write transaction, committed if the block succeeds.

        On SQLite the transaction starts with ``BEGIN IMMEDIATE``: it takes the write lock
        at once, so concurrent writers wait (busy timeout) instead of failing on commit.
        """
        try:
            with self.engine.connect() as conn:
                if self.dialect == "sqlite":
                    conn = conn.execution_options(sqlite_begin="IMMEDIATE")
                with conn.begin():
                    yield conn
        except OperationalError as exc:
            raise StoreUnavailableError(self.uri, str(exc.orig)) from None
        except DataError as exc:
            raise _refused_value(exc) from None

    def lock(self, conn: Connection, name: str) -> None:
        """Serialise writers of ``name`` until the transaction of ``conn`` ends.

        On SQLite ``BEGIN IMMEDIATE`` serialises all writers already; on PostgreSQL this
        takes a transaction-scoped advisory lock.
        """
        if self.dialect == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:name))"), {"name": name})

    def insert_ignore(
        self, conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]]
    ) -> None:
        """Insert rows, skipping any whose primary or unique key exists already.

        Rows that all name the same columns go straight to the driver's ``executemany``,
        with each column's own bind conversion (UTC times, JSON) applied once per value:
        for 100,000 object rows that is several times faster than a compiled insert.
        """
        if not rows:
            return
        names = list(rows[0])
        try:
            if any(len(row) != len(names) for row in rows):
                raise KeyError(names)
            self._insert_ignore_plain(conn, table, names, rows)
        except KeyError:  # rows name different columns: let SQLAlchemy fill the gaps
            insert = pg_insert if self.dialect == "postgresql" else sqlite_insert
            for start in range(0, len(rows), _INSERT_BATCH):
                batch = list(rows[start : start + _INSERT_BATCH])
                conn.execute(insert(table).on_conflict_do_nothing(), batch)

    def _insert_ignore_plain(
        self,
        conn: Connection,
        table: Table,
        names: Sequence[str],
        rows: Sequence[Mapping[str, Any]],
    ) -> None:
        statement, convert = self._plain_insert(conn, table, tuple(names), ignore=True)
        values = [
            tuple(row[n] if f is None else f(row[n]) for n, f in zip(names, convert, strict=True))
            for row in rows
        ]
        for start in range(0, len(values), _INSERT_BATCH):
            conn.exec_driver_sql(statement, values[start : start + _INSERT_BATCH])

    def insert_row(self, conn: Connection, table: Table, row: Mapping[str, Any]) -> None:
        """Insert one row straight through the driver, each column's bind conversion applied.

        For hot single-row writes (a model version, an audit entry): the statement and the
        conversions are built once per table and set of columns, where a compiled insert
        costs tens of microseconds a call in SQLAlchemy.
        """
        statement, convert = self._plain_insert(conn, table, tuple(row), ignore=False)
        values = tuple(
            value if f is None else f(value) for value, f in zip(row.values(), convert, strict=True)
        )
        conn.exec_driver_sql(statement, values)
        for listener in self._row_listeners:
            listener(conn, table.name, row)

    def add_row_listener(self, listener: RowListener) -> None:
        """Call ``listener(conn, table_name, row)`` after each ``insert_row``, in its transaction.

        Rows written through SQLAlchemy statements are seen by engine events instead; this
        is how a listener sees the rows that bypass them.
        """
        self._row_listeners.append(listener)

    def driver_sql(self, conn: Connection, sql: str) -> str:
        """``sql`` written with ``?`` placeholders, in the paramstyle of ``conn``'s driver.

        The statement must hold no other ``?`` or ``%`` (no literals with them).
        """
        return sql if conn.dialect.paramstyle == "qmark" else sql.replace("?", "%s")

    def _plain_insert(
        self, conn: Connection, table: Table, names: tuple[str, ...], *, ignore: bool
    ) -> tuple[str, list[Any]]:
        key = (table.name, names, ignore)
        found = self._plain_inserts.get(key)
        if found is None:
            dialect = conn.dialect
            quote = dialect.identifier_preparer.quote
            mark = "?" if dialect.paramstyle == "qmark" else "%s"
            statement = (
                f"INSERT INTO {quote(table.name)} ({', '.join(quote(n) for n in names)}) "
                f"VALUES ({', '.join(mark for _ in names)})"
                + (" ON CONFLICT DO NOTHING" if ignore else "")
            )
            found = statement, [table.c[n].type.bind_processor(dialect) for n in names]
            self._plain_inserts[key] = found
        return found

    def bulk_insert(
        self, conn: Connection, table: Table, columns: Sequence[str], rows: Sequence[Sequence[Any]]
    ) -> None:
        """Insert many rows of plain values straight through the driver's ``executemany``.

        For hot paths (metric points): it skips SQLAlchemy's per-row parameter processing,
        so values must already be what the column stores (no type decorators run).
        """
        if not rows:
            return
        quote = conn.dialect.identifier_preparer.quote
        mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
        statement = (
            f"INSERT INTO {quote(table.name)} ({', '.join(quote(c) for c in columns)}) "
            f"VALUES ({', '.join(mark for _ in columns)})"
        )
        conn.exec_driver_sql(statement, [tuple(r) for r in rows])

    # -- migrations -------------------------------------------------------------------

    def status(self) -> MigrationStatus:
        """The current revision, the newest one, and those still to apply."""
        from alembic.runtime.migration import MigrationContext

        script = _script()
        head = script.get_current_head()
        assert head is not None  # the chain is never empty
        with self.read() as conn:
            current = MigrationContext.configure(conn).get_current_revision()
        pending = [
            rev.revision
            for rev in script.iterate_revisions(head, current or "base")
            if rev.revision != current
        ]
        return MigrationStatus(current, head, tuple(reversed(pending)))

    def migrate(self) -> list[str]:
        """Apply pending migrations exactly once, even when many processes call at once.

        Returns:
            The revisions this call applied (empty when the store was up to date).
        """
        if self.status().up_to_date:
            return []
        with self._migration_lock() as conn:
            before = _current_revision(conn)
            from alembic import command

            config = _config()
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
            applied = _applied_since(before)
            for revision in applied:
                conn.execute(
                    schema_history.insert().values(
                        revision=revision,
                        applied_at=utcnow(),
                        applied_by=_os_user(),
                        host=socket.gethostname(),
                        pid=os.getpid(),
                    )
                )
            conn.commit()
        return applied

    @contextlib.contextmanager
    def _migration_lock(self) -> Iterator[Connection]:
        if self.dialect == "postgresql":
            with self.engine.connect() as conn:
                conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _PG_LOCK_KEY})
                conn.commit()
                try:
                    yield conn
                finally:
                    conn.rollback()
                    conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _PG_LOCK_KEY})
                    conn.commit()
            return
        lock_path = (
            self._db_path.with_name(self._db_path.name + ".migrate.lock") if self._db_path else None
        )
        with contextlib.ExitStack() as stack:
            if lock_path is not None:
                handle = stack.enter_context(lock_path.open("a"))
                fcntl.flock(handle, fcntl.LOCK_EX)
            conn = stack.enter_context(self.engine.connect())
            yield conn

    # -- references and health ----------------------------------------------------------

    def referenced_digests(self) -> set[str]:
        """Every blob digest any metadata row references."""
        columns = digest_columns()
        if not columns:
            return set()
        query = union(*(select(c.label("digest")).where(c.is_not(None)) for c in columns))
        with self.read() as conn:
            return {row.digest for row in conn.execute(query)}

    def server_version(self) -> str:
        """The database server's version string; checks that it can be reached."""
        with self.read() as conn:
            if self.dialect == "sqlite":
                return "SQLite " + str(conn.execute(text("select sqlite_version()")).scalar())
            return str(conn.execute(text("select version()")).scalar()).split(" on ")[0]

    def integrity_problems(self) -> list[str]:
        """Problems the database itself reports (SQLite's integrity check)."""
        if self.dialect != "sqlite":
            return []
        with self.read() as conn:
            rows = [str(r[0]) for r in conn.execute(text("PRAGMA integrity_check"))]
        return [] if rows == ["ok"] else rows

    def refresh_statistics(self, *, max_age: float = 300.0) -> None:
        """Refresh SQLite's planner statistics if this process has not for ``max_age`` s.

        Without statistics SQLite may walk a wide index range instead of a narrow one (a
        search filtering on a metric and a param ran 6x slower). The refresh is bounded
        (10,000 sampled rows an index) and gives up at once when another process is writing.
        PostgreSQL's autovacuum keeps its own statistics.
        """
        now = time.monotonic()
        if self.dialect != "sqlite" or now - self._analyzed_at < max_age:
            return
        self._analyzed_at = now
        with contextlib.suppress(Exception), self.engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA busy_timeout = 20")
            conn.exec_driver_sql("PRAGMA analysis_limit = 10000")
            conn.exec_driver_sql("ANALYZE")
            conn.commit()
            conn.exec_driver_sql(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")

    def close(self) -> None:
        """Refresh stale planner statistics (SQLite), then close every pooled connection."""
        self.refresh_statistics()
        self.engine.dispose()


def _tune_sqlite(engine: Engine, *, synchronous: str) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide where transactions begin.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute(f"PRAGMA synchronous = {synchronous}")
        cursor.execute("PRAGMA foreign_keys = ON")
        # LIKE is case-sensitive on PostgreSQL; make SQLite agree (ILIKE is the other one).
        cursor.execute("PRAGMA case_sensitive_like = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")


def _script() -> Any:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_config())


def _config() -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def _current_revision(conn: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(conn).get_current_revision()


def _applied_since(before: str | None) -> list[str]:
    script = _script()
    revisions = [r.revision for r in script.iterate_revisions("heads", before or "base")]
    return [r for r in reversed(revisions) if r != before]


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid-{os.getuid()}"


def redact_url(url: str) -> str:
    """A database URL fit to print or store: the password replaced by ``***``."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def _refused_value(error: DataError) -> InvalidArgumentError:
    # A value the database cannot hold (a NUL in text or an integer out of range on
    # PostgreSQL) is the caller's input, not a broken store: the write rolled back.
    reason = str(error.orig).strip().splitlines()[0] if error.orig else "invalid value"
    return InvalidArgumentError(
        f"the metadata store refused a value: {reason}; nothing was written"
    )
