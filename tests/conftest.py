"""Fixtures shared by the whole suite: metadata stores on SQLite and PostgreSQL, projects."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from _pytest.nodeid import coerce_node_id
from sqlalchemy import create_engine, text

from shipyard.app import Shipyard, build
from shipyard.domain.ids import new_id
from shipyard.settings import Settings

# Two cores run two test workers: OpenMP pools in every worker (scikit-learn's gradient
# boosting, numpy's BLAS) would oversubscribe them and spin, making some tests 100x slower.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

PG_SERVER = os.environ.get("SHIPYARD_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def pg_engine() -> Iterator[object]:
    """The real PostgreSQL test server; a test that needs it fails when it is down."""
    engine = create_engine(PG_SERVER, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text("select 1"))
    except Exception as exc:  # pragma: no cover - only when the server is down
        pytest.fail(f"PostgreSQL at {PG_SERVER} is not reachable: {exc}", pytrace=False)
    yield engine
    engine.dispose()


@pytest.fixture
def pg_uri(pg_engine: object) -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh schema, dropped after the test."""
    schema = f"t_{new_id()}"
    with pg_engine.connect() as conn:  # type: ignore[attr-defined]
        conn.execute(text(f'create schema "{schema}"'))
    yield f"{PG_SERVER}?options=-csearch_path%3D{schema}"
    with pg_engine.connect() as conn:  # type: ignore[attr-defined]
        conn.execute(text(f'drop schema "{schema}" cascade'))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def metadata_uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A metadata-store URL for each back end of the contract."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'meta' / 'shipyard.db'}"
    return str(request.getfixturevalue("pg_uri"))


@pytest.fixture
def settings(tmp_path: Path, metadata_uri: str) -> Settings:
    """Settings of a fresh project in tmp_path, on each metadata back end."""
    root = tmp_path / "project"
    root.mkdir()
    return Settings.load(root, env={}, metadata_uri=metadata_uri, user="alice")


@pytest.fixture
def project(settings: Settings) -> Iterator[Shipyard]:
    """A fresh, migrated project on each metadata back end."""
    with build(settings) as opened:
        yield opened


AddKilled = Callable[[str, Path, int], None]


@pytest.fixture
def add_killed_while_storing(project: Shipyard) -> AddKilled:
    """Run ``datasets.add(name, source)`` on ``project`` in a child process and SIGKILL it as
    it stores its ``call``-th blob through ``put_hashed`` (a chunk of a large file, a pack
    of small ones): what a crash or an OOM kill in the middle of an add leaves."""

    def run(name: str, source: Path, call: int) -> None:
        script = (
            "from shipyard.settings import Settings\n"
            "from shipyard.app import build\n"
            f"s = Settings.load({str(project.settings.root)!r}, env={{}}, "
            f"metadata_uri={project.settings.metadata_uri!r})\n"
            "p = build(s)\n"
            "from shipyard.stores.artifacts.content import ContentStore\n"
            "real, calls = ContentStore.put_hashed, []\n"
            "def slow(self, digest, data):\n"
            "    calls.append(1)\n"
            f"    if len(calls) == {call}:\n"
            "        print('storing', flush=True)\n"
            "        import time; time.sleep(30)\n"
            "    return real(self, digest, data)\n"
            "ContentStore.put_hashed = slow\n"
            f"p.datasets.add({name!r}, {str(source)!r})\n"
        )
        with subprocess.Popen(
            [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True
        ) as proc:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "storing"
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)

    return run


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Make ``xdist_group`` group again (Ray starts once, on one worker).

    pytest-xdist 3.8 appends the group to ``item._nodeid``, but pytest 9.2 reads the node id
    from ``item._id``, so ``--dist loadgroup`` would spread a group over every worker.
    """
    if not getattr(config.option, "loadgroup", False):
        return
    for item in items:
        names = sorted(
            {
                str(m.args[0] if m.args else m.kwargs.get("name", "default"))
                for m in item.iter_markers("xdist_group")
            }
        )
        if names and "@" not in item.nodeid:
            item._id = coerce_node_id(f"{item.nodeid}@{'_'.join(names)}")  # type: ignore[attr-defined]
