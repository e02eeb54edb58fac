"""The metadata store contract, run against SQLite and the real PostgreSQL server."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Column, MetaData, String, Table, func, select

from shipyard.errors import InvalidArgumentError, SettingsError, StoreUnavailableError
from shipyard.stores.metadata import SqlMetadataStore
from shipyard.stores.metadata import schema as schema_module
from shipyard.stores.metadata.schema import audit_log, lineage_edges, schema_history


def test_open_migrates_an_empty_store_to_the_newest_revision(metadata_uri: str) -> None:
    store = SqlMetadataStore(metadata_uri)
    status = store.status()
    assert status.up_to_date
    assert status.current == status.head
    with store.read() as conn:
        rows = conn.execute(select(schema_history.c.revision)).scalars().all()
    assert rows == [f"{n:04d}" for n in range(1, 12)]  # 0001 … 0011
    store.close()


def test_status_without_migrating_lists_every_pending_revision(metadata_uri: str) -> None:
    store = SqlMetadataStore(metadata_uri, migrate=False)
    status = store.status()
    assert status.current is None
    assert status.pending == (
        "0001",
        "0002",
        "0003",
        "0004",
        "0005",
        "0006",
        "0007",
        "0008",
        "0009",
        "0010",
        "0011",
    )
    assert store.migrate() == [
        "0001",
        "0002",
        "0003",
        "0004",
        "0005",
        "0006",
        "0007",
        "0008",
        "0009",
        "0010",
        "0011",
    ]
    assert store.migrate() == []
    store.close()


_OPEN = """
import pathlib, sys, time
from shipyard.stores.metadata import SqlMetadataStore
start = pathlib.Path(sys.argv[2])
while not start.exists():
    time.sleep(0.005)
store = SqlMetadataStore(sys.argv[1])
print(store.status().current)
store.close()
"""


def test_eight_processes_opening_an_empty_store_migrate_it_exactly_once(
    metadata_uri: str, tmp_path: Path
) -> None:
    start = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _OPEN, metadata_uri, str(start)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(8)
    ]
    time.sleep(1.0)  # let every process import and wait at the start line
    start.touch()
    revisions = []
    for proc in procs:
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0
        revisions.append(out.strip())
    store = SqlMetadataStore(metadata_uri, migrate=False)
    with store.read() as conn:
        history = conn.execute(select(schema_history.c.revision)).scalars().all()
    store.close()
    assert revisions == ["0011"] * 8
    once = "each revision is applied and recorded exactly once"
    assert history == [f"{n:04d}" for n in range(1, 12)], once


def test_a_failed_write_transaction_leaves_nothing(metadata_uri: str) -> None:
    store = SqlMetadataStore(metadata_uri)
    row = {
        "id": "a" * 32,
        "from_kind": "run",
        "from_id": "1",
        "to_kind": "run",
        "to_id": "2",
        "relation": "produced",
        "created_at": datetime.now(UTC),
        "created_by": "alice",
    }
    with pytest.raises(RuntimeError), store.write() as conn:
        conn.execute(lineage_edges.insert().values(**row))
        raise RuntimeError("boom")
    with store.read() as conn:
        assert conn.execute(select(func.count()).select_from(lineage_edges)).scalar() == 0
    with store.write() as conn:
        conn.execute(lineage_edges.insert().values(**row))
    with store.read() as conn:
        assert conn.execute(select(func.count()).select_from(lineage_edges)).scalar() == 1
    store.close()


def test_concurrent_writers_queue_instead_of_failing(metadata_uri: str) -> None:
    store = SqlMetadataStore(metadata_uri)
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(25):
                with store.write() as conn:
                    store.lock(conn, "audit_log")  # read-then-insert needs the lock
                    last = conn.execute(select(func.max(audit_log.c.seq))).scalar() or 0
                    conn.execute(
                        audit_log.insert().values(
                            seq=last + 1,
                            at=datetime.now(UTC),
                            actor=f"w{n}",
                            action="test",
                            entity_kind="run",
                            entity_id=str(i),
                            prev_hash="0" * 64,
                            hash=f"{n:032x}{i:032x}",
                        )
                    )
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    with store.read() as conn:
        seqs = conn.execute(select(audit_log.c.seq).order_by(audit_log.c.seq)).scalars().all()
    assert seqs == list(range(1, 101))
    store.close()


def test_referenced_digests_unions_every_marked_column(
    metadata_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    extra = MetaData()
    table = Table(
        "digest_holder",
        extra,
        Column("a", String(71), info={"digest": True}),
        Column("b", String(71), info={"digest": True}),
        Column("c", String(71)),
    )
    store = SqlMetadataStore(metadata_uri)
    extra.create_all(store.engine)
    monkeypatch.setattr(schema_module, "metadata", extra)
    with store.write() as conn:
        conn.execute(table.insert().values(a="blake3:" + "1" * 64, b=None, c="blake3:" + "9" * 64))
        conn.execute(table.insert().values(a="blake3:" + "1" * 64, b="blake3:" + "2" * 64))
    assert store.referenced_digests() == {"blake3:" + "1" * 64, "blake3:" + "2" * 64}
    store.close()


def test_server_version_names_the_backend(metadata_uri: str) -> None:
    store = SqlMetadataStore(metadata_uri)
    version = store.server_version()
    assert version.startswith("SQLite" if store.dialect == "sqlite" else "PostgreSQL")
    assert store.integrity_problems() == []
    store.close()


@pytest.mark.parametrize(
    "uri",
    ["not a url", "mysql+pymysql://root@127.0.0.1/test", "oracle://x"],
)
def test_unsupported_or_malformed_urls_are_refused_with_the_setting_named(uri: str) -> None:
    with pytest.raises(SettingsError, match="metadata_uri"):
        SqlMetadataStore(uri)


def test_an_unreachable_database_is_reported_as_unavailable(tmp_path: Path) -> None:
    with pytest.raises(StoreUnavailableError, match="unavailable"):
        SqlMetadataStore("postgresql+psycopg://postgres@127.0.0.1:1/none?connect_timeout=2")


def test_the_migration_chain_builds_exactly_the_declared_schema(metadata_uri: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    store = SqlMetadataStore(metadata_uri)
    with store.read() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        differences = compare_metadata(context, schema_module.metadata)
    store.close()
    assert differences == []


def test_a_value_the_database_cannot_hold_is_refused_and_nothing_is_written(
    metadata_uri: str,
) -> None:
    # PostgreSQL cannot hold a NUL in text; SQLite can. Either the value is stored as given,
    # or the write is refused as bad input and none of the transaction is kept.
    store = SqlMetadataStore(metadata_uri)
    good = {
        "id": "b" * 32,
        "from_kind": "run",
        "from_id": "1",
        "to_kind": "run",
        "to_id": "2",
        "relation": "produced",
        "created_at": datetime.now(UTC),
        "created_by": "alice",
    }
    bad = good | {"id": "c" * 32, "created_by": "ali\x00ce"}
    try:
        if store.dialect == "postgresql":
            with (
                pytest.raises(InvalidArgumentError, match="nothing was written"),
                store.write() as conn,
            ):
                conn.execute(lineage_edges.insert().values(**good))
                conn.execute(lineage_edges.insert().values(**bad))
            with store.read() as conn:
                assert conn.execute(select(func.count()).select_from(lineage_edges)).scalar() == 0
        else:
            with store.write() as conn:
                conn.execute(lineage_edges.insert().values(**bad))
            with store.read() as conn:
                found = conn.execute(select(lineage_edges.c.created_by)).scalar()
            assert found == "ali\x00ce"
    finally:
        store.close()
