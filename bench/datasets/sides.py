"""The two sides of the benchmark: shipyard's Python API and the DVC command line.

Each side works in a fresh store per repetition (``setup`` / ``teardown``) and answers the
same calls: ``add`` a new input (timed, with the bytes its store grew by), ``readd`` an
unchanged one (timed), and ``status``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from .data import DataSet

Input = Literal["table", "files", "changed", "appended"]
DVC_ENV = {**os.environ, "DVC_NO_ANALYTICS": "1", "DVC_NO_UPDATER": "1"}


@dataclass(frozen=True)
class Measure:
    """One timed call: wall seconds, bytes the store grew by, and what the tool reported."""

    seconds: float
    stored: int
    reported: int | None = None
    note: str = ""


class Side(Protocol):
    name: str

    def setup(self, rep: int) -> None: ...

    def add(self, what: Input) -> Measure: ...

    def readd(self, what: Input) -> Measure: ...

    def status(self) -> Measure: ...

    def teardown(self) -> None: ...


def dir_bytes(folder: Path) -> int:
    """Total size of the regular files under ``folder``."""
    total = 0
    stack = [folder]
    while stack:
        with os.scandir(stack.pop()) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))
                elif entry.is_file(follow_symlinks=False):
                    total += entry.stat(follow_symlinks=False).st_size
    return total


class ShipyardSide:
    """shipyard through its Python API, one fresh project per repetition."""

    def __init__(self, data: DataSet, work: Path, durability: str) -> None:
        self.name = f"shipyard ({durability})"
        self._data = data
        self._work = work
        self._durability = durability
        self._folder: Path | None = None
        self._sy: Any = None

    @property
    def _store(self) -> Path:
        assert self._folder is not None
        return self._folder / ".shipyard" / "artifacts"

    def setup(self, rep: int) -> None:
        import shipyard
        from shipyard.services.projects import init_project

        self._folder = self._work / f"shipyard-{self._durability}-{rep}"
        shutil.rmtree(self._folder, ignore_errors=True)
        self._folder.mkdir(parents=True)
        init_project(self._folder)
        self._sy = shipyard.connect(self._folder, durability=self._durability)

    def _source(self, what: Input) -> tuple[str, Path]:
        data = self._data
        sources = {"table": data.table, "changed": data.changed, "appended": data.appended}
        return ("files", data.files) if what == "files" else ("table", sources[what])

    def add_source(self, name: str, source: Path) -> tuple[float, Any]:
        """Time ``sy.datasets.add(name, source)``; returns the seconds and the AddResult."""
        start = time.perf_counter()
        result = self._sy.datasets.add(name, source)
        return time.perf_counter() - start, result

    def _add(self, what: Input) -> tuple[float, Any]:
        return self.add_source(*self._source(what))

    def add(self, what: Input) -> Measure:
        before = dir_bytes(self._store)
        seconds, result = self._add(what)
        stored = dir_bytes(self._store) - before
        note = "" if result.created else "add of new content returned created=False"
        return Measure(seconds, stored, result.new_bytes, note)

    def readd(self, what: Input) -> Measure:
        seconds, result = self._add(what)
        note = "re-add of unchanged content returned created=True" if result.created else ""
        if result.hashed_files:
            note = (note + f"; re-hashed {result.hashed_files} file(s)").lstrip("; ")
        return Measure(seconds, 0, result.new_bytes, note)

    def status(self) -> Measure:
        table, files = self.readd("table"), self.readd("files")
        note = "; ".join(n for n in (table.note, files.note) if n)
        return Measure(table.seconds + files.seconds, 0, None, note)

    def teardown(self) -> None:
        if self._sy is not None:
            self._sy.close()
            self._sy = None
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None


class DvcSide:
    """DVC's command line (``dvc init --no-scm``, ``dvc add``, ``dvc status``)."""

    def __init__(self, data: DataSet, work: Path) -> None:
        self.name = "DVC"
        self._data = data
        self._work = work
        self._dvc = str(Path(sys.executable).with_name("dvc"))
        self._repo: Path | None = None
        self._site: Path | None = None

    def version(self) -> str:
        return self._run("--version").stdout.strip()

    def startup_seconds(self) -> float:
        """What one ``dvc`` call costs before doing anything (its CLI start-up)."""
        start = time.perf_counter()
        self._run("--version")
        return time.perf_counter() - start

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [self._dvc, *args], cwd=self._repo, env=DVC_ENV, capture_output=True, text=True
        )
        if proc.returncode != 0:
            raise RuntimeError(f"dvc {' '.join(args)} failed ({proc.returncode}): {proc.stderr}")
        return proc

    @property
    def _cache(self) -> Path:
        assert self._repo is not None
        return self._repo / ".dvc" / "cache"

    def setup(self, rep: int) -> None:
        # A new repository path and its own site cache per repetition: DVC's state database
        # (digests keyed by inode and mtime) must not carry over from an earlier repetition.
        self._repo = self._work / f"dvc-{rep}"
        self._site = self._work / f"dvc-site-{rep}"
        for folder in (self._repo, self._site):
            shutil.rmtree(folder, ignore_errors=True)
        self._repo.mkdir(parents=True)
        self._run("init", "--no-scm", "-q")
        self._run("config", "core.site_cache_dir", str(self._site))
        self._link(self._data.table, self._repo / "table.parquet")
        self._link_tree(self._data.files, self._repo / "files")

    @staticmethod
    def _link(source: Path, target: Path) -> None:
        target.unlink(missing_ok=True)
        os.link(source, target)  # DVC replaces workspace files; it never writes into them

    def _link_tree(self, source: Path, target: Path) -> None:
        target.mkdir()
        with os.scandir(source) as entries:
            for entry in entries:
                os.link(entry.path, target / entry.name)

    def _target(self, what: Input) -> str:
        return "files" if what == "files" else "table.parquet"

    def _timed(self, *args: str) -> float:
        start = time.perf_counter()
        self._run(*args)
        return time.perf_counter() - start

    def add(self, what: Input) -> Measure:
        assert self._repo is not None
        if what in ("changed", "appended"):
            variant = self._data.changed if what == "changed" else self._data.appended
            self._link(variant, self._repo / "table.parquet")
        before = dir_bytes(self._cache) if self._cache.exists() else 0
        seconds = self._timed("add", "-q", self._target(what))
        return Measure(seconds, dir_bytes(self._cache) - before)

    def readd(self, what: Input) -> Measure:
        # no cache walk here: five walks of a 100,000-file cache would cost more than the
        # re-adds themselves; an unchanged ``dvc add`` stores nothing
        return Measure(self._timed("add", "-q", self._target(what)), 0)

    def status(self) -> Measure:
        return Measure(self._timed("status", "-q"), 0)

    def teardown(self) -> None:
        for folder in (self._repo, self._site):
            if folder is not None:
                shutil.rmtree(folder, ignore_errors=True)
        self._repo = self._site = None
