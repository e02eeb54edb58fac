"""Datasets: add immutable versions, resolve references, read versions back, label them."""

from __future__ import annotations

import builtins
import dataclasses
import json
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, RowMapping, func, select

from shipyard.domain.checks import Check, ValidationReport
from shipyard.domain.datasets import (
    DatasetCard,
    DatasetSummary,
    DatasetVersion,
    ManifestEntry,
    content_digest,
)
from shipyard.domain.diffs import DatasetDiff
from shipyard.domain.ids import new_id, utcnow
from shipyard.domain.pipelines import note_dataset_read
from shipyard.domain.profiles import ColumnSchema, TableProfile
from shipyard.domain.references import LATEST, Reference, validate_name
from shipyard.errors import (
    DatasetNotFoundError,
    DataValidationError,
    InvalidArgumentError,
    MissingDependencyError,
)
from shipyard.services.audit import AuditService
from shipyard.services.dataset_inputs import TABLE_FORMATS, check_add, check_tags, table_format_of
from shipyard.services.hashing import names_of, total_size
from shipyard.services.objects import (
    DigestedFiles,
    LocalFile,
    ObjectService,
    StagedObjects,
    StoredFile,
    check_relative_path,
    check_relative_paths,
)
from shipyard.services.sources import resolve_source
from shipyard.stores.artifacts.content import ContentStore
from shipyard.stores.metadata import SqlMetadataStore
from shipyard.stores.metadata.schema import dataset_labels, dataset_versions, datasets

__all__ = ["AddResult", "DatasetHandle", "DatasetService"]


Progress = Callable[[str, int, int], None]  # (stage, done, total)

# Tables of at least this many bytes are profiled while their bytes are hashed and stored.
_OVERLAP_FROM = 32 * 1024 * 1024
# ... when they are at most this many files (a folder of many files is rarely one table).
_EARLY_FILES = 64


@dataclass(frozen=True, slots=True)
class AddResult:
    """What ``add`` did: the version, whether it is new, and what had to be stored."""

    version: DatasetVersion
    created: bool
    new_bytes: int
    hashed_files: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "version": self.version.to_dict(),
            "created": self.created,
            "new_bytes": self.new_bytes,
            "hashed_files": self.hashed_files,
        }


class DatasetService:
    """Stores, versions and describes datasets."""

    def __init__(
        self,
        metadata: SqlMetadataStore,
        content: ContentStore,
        objects: ObjectService,
        audit: AuditService,
        *,
        user: str,
        scratch: Path,
        cache: Path,
    ) -> None:
        self._metadata = metadata
        self._content = content
        self._objects = objects
        self._audit = audit
        self._user = user
        self._scratch = scratch
        self._cache = cache

    # -- adding ---------------------------------------------------------------------------

    def add(
        self,
        name: str,
        source: Any = None,
        *,
        sql: str | None = None,
        db: str | None = None,
        description: str | None = None,
        owner: str | None = None,
        license: str | None = None,
        tags: Mapping[str, str] | None = None,
        key: Sequence[str] | str | None = None,
        format: str | None = None,
        progress: Progress | None = None,
    ) -> AddResult:
        """Add a version of dataset ``name`` from a source, if its content changed.

        Args:
            name: the dataset's name (letters, digits, ``-``, ``_``, ``.``).
            source: a local file or folder, an http(s) or fsspec URL, or a pyarrow /
                pandas / polars table.
            sql: a SQL query to run instead of reading ``source``; needs ``db``.
            db: SQLAlchemy URL of the database the query runs against.
            description: markdown description for the dataset card.
            owner: who answers for the data (default: the current user).
            license: the data's license.
            tags: free key/value tags for the card.
            key: the column(s) that identify a row, used by ``diff``.
            format: force a table format (csv, parquet, jsonl, arrow) instead of guessing it
                from file suffixes.
            progress: called with (stage, done, total) as the add goes on.

        Returns:
            The new version, or the latest one when the content is unchanged.

        Raises:
            InvalidNameError: for a bad name.
            SourceError: when the source cannot be read (missing, unreachable, malformed).
        """
        card_tags, keys = check_add(name, tags, key, format)
        with resolve_source(source, sql=sql, db=db, scratch=self._scratch) as resolved:
            files = resolved.files
            check_relative_paths(names_of(files))
            if progress is not None:
                progress("hash", 0, len(files))
            table_format = format or table_format_of(files)
            early = self._profile_early(files, table_format, keys, progress)
            try:
                # Columns all the way: a re-add of an unchanged folder of 100,000 files ends
                # here without an object per file. Files that are no table are stored as
                # they are hashed: nothing after can refuse them (a key can: it needs a table).
                opaque = table_format is None and not keys
                hashing = None if progress is None else partial(progress, "hash")
                digested = self._objects.digest(files, store_small=opaque, progress=hashing)
                hashed, identity = digested.hashed, digested.identity
                latest = self._latest(name)
                if latest is not None and latest.content_digest == identity:
                    return AddResult(latest, False, 0, hashed)
                profile, staged = self._describe_and_stage(
                    files, digested, table_format, keys, progress, early and early[1]
                )
            finally:
                if early is not None:
                    early[0].shutdown(wait=True, cancel_futures=True)
            card = DatasetCard(
                description=description,
                owner=owner or self._user,
                license=license,
                source_uri=resolved.uri,
                fetched_at=resolved.fetched_at,
                tags=card_tags,
            )
            version = self._record(
                name, identity, table_format, digested, profile, card, keys, staged
            )
            new_bytes = staged.new_bytes
        return AddResult(version, True, new_bytes, hashed)

    def add_stored(
        self,
        name: str,
        files: Sequence[StoredFile],
        *,
        table_format: str | None,
        profile: TableProfile | None,
        card: DatasetCard,
        key: Sequence[str] = (),
    ) -> AddResult:
        """Add a version from content stored already (uploaded by digest to a server).

        The remote client describes the table where the data is and uploads only what the
        server lacks; this records the version. Sizes are the stored objects' own.

        Raises:
            InvalidNameError: for a bad name.
            UnsafePathError: for a file path that is absolute or climbs out.
            NotFoundError: when a digest is not stored content (upload it first).
            InvalidArgumentError: for an unknown format, a table without a profile, files
                with a profile, key columns the table lacks, or sizes that do not match.
        """
        validate_name(name, what="dataset name")
        tags = check_tags(card.tags)
        keys = tuple(key)
        if table_format is not None and table_format not in TABLE_FORMATS:
            raise InvalidArgumentError(f"unknown table format {table_format!r}")
        if (table_format is None) != (profile is None):
            raise InvalidArgumentError("a table version needs its profile, files have none")
        if keys and profile is None:
            raise InvalidArgumentError("--key needs a table (csv, parquet, jsonl or arrow)")
        if profile is not None:
            missing = sorted(set(keys) - {c.name for c in profile.schema})
            if missing:
                raise InvalidArgumentError(f"key column(s) {', '.join(missing)} not in the table")
        if not files:
            raise InvalidArgumentError("a dataset version needs at least one file")
        names = [check_relative_path(f.name) for f in files]
        if len(set(names)) != len(names):
            raise InvalidArgumentError("a file path appears twice in the version")
        from shipyard.services.transfers import require_stored

        require_stored(self._objects, files, "file")
        stored = [StoredFile(n, f.size, f.digest) for n, f in zip(names, files, strict=True)]
        identity = content_digest([ManifestEntry(f.name, f.size, f.digest) for f in stored])
        latest = self._latest(name)
        if latest is not None and latest.content_digest == identity:
            return AddResult(latest, False, 0, 0)
        owned = dataclasses.replace(card, owner=card.owner or self._user, tags=tags)
        version = self._record(name, identity, table_format, stored, profile, owned, keys)
        return AddResult(version, True, 0, 0)

    def _record(
        self,
        name: str,
        identity: str,
        table_format: str | None,
        stored: Sequence[StoredFile] | DigestedFiles,
        profile: TableProfile | None,
        card: DatasetCard,
        keys: tuple[str, ...],
        staged: StagedObjects | None = None,
    ) -> DatasetVersion:
        """Store the manifest and profile, then the version in one transaction."""
        manifest = self._objects.put_manifest(stored)
        profile_blob = (
            self._content.put_bytes(json.dumps(profile.to_dict()).encode())
            if profile is not None
            else None
        )
        with self._metadata.write() as conn:
            self._metadata.lock(conn, f"dataset:{name}")
            if staged is not None:
                self._objects.commit(conn, staged)
            return self._insert_version(
                conn,
                name=name,
                identity=identity,
                manifest=manifest,
                table_format=table_format,
                stored=stored,
                profile=profile,
                profile_digest=profile_blob.digest if profile_blob else None,
                card=card,
                keys=keys,
            )

    def _profile_early(
        self,
        files: Sequence[LocalFile],
        table_format: str | None,
        keys: tuple[str, ...],
        progress: Progress | None,
    ) -> tuple[ThreadPoolExecutor, Future[TableProfile | None]] | None:
        """Start profiling a big table now, unless the stat cache vouches for its files."""
        # Hashing a big table waits on the disk, DuckDB's profile on the CPU: they overlap.
        # An unchanged re-add reads nothing, so it profiles nothing either.
        if len(files) > _EARLY_FILES:
            return None
        if table_format is None or total_size(files) < _OVERLAP_FROM:
            return None
        if not self._objects.stale(files):
            return None
        pool = ThreadPoolExecutor(1, thread_name_prefix="shipyard-profile")
        return pool, pool.submit(self._describe, files, table_format, keys, progress)

    def _describe_and_stage(
        self,
        files: Sequence[LocalFile],
        stored: DigestedFiles,
        table_format: str | None,
        keys: tuple[str, ...],
        progress: Progress | None,
        early: Future[TableProfile | None] | None = None,
    ) -> tuple[TableProfile | None, StagedObjects]:
        """Profile the table and store its bytes.

        A big table is being profiled already (``early``, since it was hashed): DuckDB works
        without the GIL meanwhile, and a malformed one leaves only unreferenced blobs, which
        ``gc`` removes. Any other table is profiled first, so a malformed one is refused
        before any byte is stored.
        """
        store_progress = None if progress is None else lambda d, t: progress("store", d, t)
        if early is None:
            profile = self._describe(files, table_format, keys, progress)
            return profile, self._objects.stage(files, stored, progress=store_progress)
        staged = self._objects.stage(files, stored, progress=store_progress)
        return early.result(), staged

    def _describe(
        self,
        files: Sequence[LocalFile],
        table_format: str | None,
        keys: tuple[str, ...],
        progress: Progress | None,
    ) -> TableProfile | None:
        if table_format is None:
            if keys:
                raise InvalidArgumentError("--key needs a table (csv, parquet, jsonl or arrow)")
            return None
        from shipyard.services.profiling import profile_table

        if progress is not None:
            progress("profile", 0, 1)
        profile = profile_table([f.path for f in files], table_format)
        columns = {c.name for c in profile.schema}
        missing = [k for k in keys if k not in columns]
        if missing:
            raise InvalidArgumentError(
                f"key column(s) {', '.join(missing)} not in the table; "
                f"its columns are {', '.join(sorted(columns))}"
            )
        return profile

    def _insert_version(
        self,
        conn: Connection,
        *,
        name: str,
        identity: str,
        manifest: str,
        table_format: str | None,
        stored: Sequence[StoredFile] | DigestedFiles,
        profile: TableProfile | None,
        profile_digest: str | None,
        card: DatasetCard,
        keys: tuple[str, ...],
    ) -> DatasetVersion:
        now = utcnow()
        self._metadata.insert_ignore(
            conn,
            datasets,
            [
                {
                    "name": name,
                    "description": card.description,
                    "created_at": now,
                    "created_by": self._user,
                }
            ],
        )
        last = conn.execute(
            select(func.max(dataset_versions.c.version)).where(dataset_versions.c.name == name)
        ).scalar()
        row = {
            "id": new_id(),
            "name": name,
            "version": (last or 0) + 1,
            "content_digest": identity,
            "manifest": manifest,
            "kind": "table" if table_format else "files",
            "format": table_format,
            "file_count": len(stored),
            "bytes": sum(stored.sizes)
            if isinstance(stored, DigestedFiles)
            else sum(f.size for f in stored),
            "rows": profile.rows if profile else None,
            "schema": json.dumps([c.to_dict() for c in profile.schema]) if profile else None,
            "profile": profile_digest,
            "description": card.description,
            "owner": card.owner,
            "license": card.license,
            "source_uri": card.source_uri,
            "fetched_at": card.fetched_at,
            "tags": json.dumps(dict(card.tags), sort_keys=True),
            "key_columns": json.dumps(list(keys)) if keys else None,
            "parent": last,
            "created_at": now,
            "created_by": self._user,
        }
        conn.execute(dataset_versions.insert().values(**row))
        version = _version(row)
        self._audit.record(
            conn,
            actor=self._user,
            action="dataset.add",
            entity_kind="dataset_version",
            entity_id=version.ref,
            after={"content_digest": identity, "files": len(stored), "rows": row["rows"]},
        )
        return version

    # -- reading --------------------------------------------------------------------------

    def get(self, reference: str) -> DatasetHandle:
        """A version ready to read: ``.to_arrow()``, ``.to_pandas()``, ``.path()``, ….

        Raises:
            InvalidReferenceError: for a malformed reference.
            DatasetNotFoundError: if nothing answers to it.
        """
        return DatasetHandle(self, self.resolve(reference))

    def resolve(self, reference: str) -> DatasetVersion:
        """Resolve ``name``, ``name@N``, ``name@latest`` or ``name@label`` to a version.

        Inside a pipeline task, a reference that may move is noted with the content it gave
        (a cached result of the task is reused only while it gives the same).

        Raises:
            InvalidReferenceError: for a malformed reference.
            DatasetNotFoundError: if nothing answers to it.
        """
        version = self._resolve(reference)
        pinned = Reference.parse(reference).version is not None
        note_dataset_read(reference, pinned, version.content_digest)
        return version

    def _resolve(self, reference: str) -> DatasetVersion:
        ref = Reference.parse(reference)
        query = select(dataset_versions).where(dataset_versions.c.name == ref.name)
        with self._metadata.read() as conn:
            if ref.version is not None:
                number: int | None = ref.version
            elif ref.label == LATEST:
                number = conn.execute(
                    select(func.max(dataset_versions.c.version)).where(
                        dataset_versions.c.name == ref.name
                    )
                ).scalar()
            else:
                number = conn.execute(
                    select(dataset_labels.c.version).where(
                        dataset_labels.c.name == ref.name, dataset_labels.c.label == ref.label
                    )
                ).scalar()
            row = None
            if number is not None:
                row = conn.execute(query.where(dataset_versions.c.version == number)).first()
        if row is None:
            raise DatasetNotFoundError(str(ref), self._hint(ref.name))
        return _version(row._mapping)

    def _hint(self, name: str) -> str:
        with self._metadata.read() as conn:
            latest = conn.execute(
                select(func.max(dataset_versions.c.version)).where(dataset_versions.c.name == name)
            ).scalar()
        if latest is None:
            return "no dataset has that name; `shipyard data list` shows them"
        return f"{name} has versions 1 to {latest}; `shipyard data versions {name}` lists them"

    def _latest(self, name: str) -> DatasetVersion | None:
        try:
            return self._resolve(f"{name}@latest")
        except DatasetNotFoundError:
            return None

    def versions(self, name: str) -> builtins.list[DatasetVersion]:
        """Every version of a dataset, oldest first.

        Raises:
            DatasetNotFoundError: if no dataset has this name.
        """
        validate_name(name, what="dataset name")
        query = (
            select(dataset_versions)
            .where(dataset_versions.c.name == name)
            .order_by(dataset_versions.c.version)
        )
        with self._metadata.read() as conn:
            rows = conn.execute(query).all()
        if not rows:
            raise DatasetNotFoundError(name, "no dataset has that name")
        return [_version(r._mapping) for r in rows]

    def list(self, *, after: str | None = None, limit: int = 1000) -> builtins.list[DatasetSummary]:
        """Datasets by name, ``limit`` at a time after the name ``after`` (cursor paging)."""
        v = dataset_versions.c
        query = (
            select(
                datasets.c.name,
                datasets.c.description,
                func.max(v.version).label("latest"),
                func.count(v.version).label("versions"),
                func.max(v.created_at).label("updated_at"),
            )
            .join(dataset_versions, v.name == datasets.c.name)
            .group_by(datasets.c.name, datasets.c.description)
            .order_by(datasets.c.name)
            .limit(limit)
        )
        if after is not None:
            query = query.where(datasets.c.name > after)
        with self._metadata.read() as conn:
            rows = conn.execute(query).all()
        return [
            DatasetSummary(r.name, r.description, r.latest, r.versions, r.updated_at) for r in rows
        ]

    def manifest(self, version: DatasetVersion) -> builtins.list[ManifestEntry]:
        """The files of a version."""
        files = self._objects.read_manifest(version.manifest_digest)
        return [ManifestEntry(f.name, f.size, f.digest) for f in files]

    def profile(self, version: DatasetVersion) -> TableProfile | None:
        """The stored profile of a table version (None for a version of opaque files)."""
        if version.profile_digest is None:
            return None
        data = json.loads(self._content.read_bytes(version.profile_digest))
        return TableProfile.from_dict(data)

    def path(self, version: DatasetVersion) -> Path:
        """A local folder holding the version's files, verified; cached across calls."""
        target = self._cache / version.name / str(version.version) / version.content_digest[7:19]
        return self._objects.materialise(version.manifest_digest, target, self._scratch)

    def export(self, version: DatasetVersion, dest: Path) -> builtins.list[Path]:
        """Write a version's files under ``dest``, each verified against its digest."""
        return self._objects.export_all(self._objects.read_manifest(version.manifest_digest), dest)

    def read_table(self, version: DatasetVersion) -> Any:
        """A table version's rows as a ``pyarrow.Table``, read the way it was profiled.

        Raises:
            InvalidArgumentError: if the version is not a table.
        """
        if version.format is None:
            raise InvalidArgumentError(
                f"{version.ref} holds files, not a table: use .path() or `shipyard data get`"
            )
        from shipyard.services.tables import read_table

        folder = self.path(version)
        files = [folder.joinpath(*e.path.split("/")) for e in self.manifest(version)]
        return read_table(files, version.format)

    def write_report(self, version: DatasetVersion, dest: Path) -> Path:
        """Write the version's card and profile as one self-contained HTML page."""
        from shipyard.services.reports import render_profile_html

        profile = self.profile(version)
        if profile is None:
            raise InvalidArgumentError(f"{version.ref} holds files, not a table: no profile")
        card = version.card
        meta = {
            "rows": f"{version.rows:,}" if version.rows is not None else "",
            "files": str(version.file_count),
            "bytes": f"{version.bytes:,}",
            "owner": card.owner or "",
            "license": card.license or "",
            "source": card.source_uri or "",
            "fetched": card.fetched_at.isoformat() if card.fetched_at else "",
            "created": f"{version.created_at.isoformat()} by {version.created_by}",
            "content": version.content_digest,
            **{f"tag {k}": v for k, v in card.tags.items()},
        }
        page = render_profile_html(
            profile, title=version.ref, description_md=card.description or "", meta=meta
        )
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(page, encoding="utf-8")
        return dest

    def validate(self, reference: str, checks: Any) -> ValidationReport:
        """Run checks against a table version.

        Args:
            reference: the version, such as ``customers@3``.
            checks: a TOML file path, a list of check dicts, or parsed ``Check`` records.

        Returns:
            The report; ``report.ok`` is False when an error-severity check failed.
        """
        from shipyard.services.validation import load_checks, run_checks

        parsed = (
            tuple(checks)
            if isinstance(checks, (list, tuple)) and all(isinstance(c, Check) for c in checks)
            else load_checks(checks)
        )
        version = self.resolve(reference)
        profile = self.profile(version)
        if version.format is None or profile is None:
            raise InvalidArgumentError(f"{version.ref} holds files, not a table: checks need one")
        folder = self.path(version)
        files = [folder.joinpath(*e.path.split("/")) for e in self.manifest(version)]
        return run_checks(version, files, profile, parsed)

    def require(self, reference: str, checks: Any) -> ValidationReport:
        """Like ``validate``, but raise when a check fails: a gate for pipelines.

        Raises:
            DataValidationError: naming every failed check.
        """
        report = self.validate(reference, checks)
        if not report.ok:
            raise DataValidationError(
                report.reference, [f"{r.check.name}: {r.message}" for r in report.failures]
            )
        return report

    def diff(self, old: str, new: str, *, key: Sequence[str] | str | None = None) -> DatasetDiff:
        """What changed from version ``old`` to version ``new``.

        Args:
            old: the reference version, such as ``customers@3``.
            new: the version to compare, such as ``customers@5``.
            key: column(s) that identify a row; default: the versions' own key.
        """
        from shipyard.services.diffs import TableSide, diff_versions

        sides = []
        for reference in (old, new):
            version = self.resolve(reference)
            manifest = self.manifest(version)
            profile = self.profile(version)
            files = None
            if profile is not None:
                folder = self.path(version)
                files = [folder.joinpath(*e.path.split("/")) for e in manifest]
            sides.append(TableSide(version, manifest, files, profile))
        keys = (key,) if isinstance(key, str) else tuple(key or ())
        return diff_versions(sides[0], sides[1], key=keys)

    # -- labels ---------------------------------------------------------------------------

    def label(self, reference: str, label: str) -> DatasetVersion:
        """Point ``name@label`` at a version (moving it if it pointed elsewhere).

        Raises:
            InvalidArgumentError: for ``latest`` or a number as label.
        """
        validate_name(label, what="label")
        if label == LATEST or label.isdigit():
            raise InvalidArgumentError(f"{label!r} cannot be a label: it reads as a version")
        version = self.resolve(reference)
        with self._metadata.write() as conn:
            self._metadata.lock(conn, f"dataset:{version.name}")
            before = conn.execute(
                select(dataset_labels.c.version).where(
                    dataset_labels.c.name == version.name, dataset_labels.c.label == label
                )
            ).scalar()
            values = {"version": version.version, "updated_at": utcnow(), "updated_by": self._user}
            if before is None:
                conn.execute(
                    dataset_labels.insert().values(name=version.name, label=label, **values)
                )
            else:
                conn.execute(
                    dataset_labels.update()
                    .where(dataset_labels.c.name == version.name, dataset_labels.c.label == label)
                    .values(**values)
                )
            self._audit.record(
                conn,
                actor=self._user,
                action="dataset.label",
                entity_kind="dataset_version",
                entity_id=f"{version.name}@{label}",
                before=None if before is None else {"version": before},
                after={"version": version.version},
            )
        return version


class DatasetHandle:
    """One dataset version, ready to read.

    Example:
        >>> frame = sy.datasets.get("customers@3").to_pandas()  # doctest: +SKIP
    """

    def __init__(self, service: DatasetService, version: DatasetVersion) -> None:
        self._service = service
        self.version = version

    @property
    def ref(self) -> str:
        """The reference ``name@version``."""
        return self.version.ref

    def __repr__(self) -> str:
        return f"<dataset {self.ref} {self.version.kind}, {self.version.file_count} file(s)>"

    def files(self) -> list[ManifestEntry]:
        """The version's files: path, size and digest."""
        return self._service.manifest(self.version)

    def profile(self) -> TableProfile | None:
        """The stored profile (None for a version of opaque files)."""
        return self._service.profile(self.version)

    def path(self) -> Path:
        """A local folder with the version's files, verified and cached."""
        return self._service.path(self.version)

    def to_arrow(self) -> Any:
        """The table as a ``pyarrow.Table``.

        Raises:
            InvalidArgumentError: if the version holds files that are not a table.
        """
        return self._service.read_table(self.version)

    def to_pandas(self) -> Any:
        """The table as a pandas DataFrame (needs pandas)."""
        try:
            import pandas  # noqa: F401
        except ModuleNotFoundError:
            raise MissingDependencyError("pandas", "ml") from None
        return self.to_arrow().to_pandas()

    def to_polars(self) -> Any:
        """The table as a polars DataFrame (needs polars)."""
        try:
            import polars
        except ModuleNotFoundError:
            raise MissingDependencyError("polars", "polars") from None
        return polars.from_arrow(self.to_arrow())


def _version(row: Mapping[str, Any] | RowMapping) -> DatasetVersion:
    schema = (
        tuple(ColumnSchema.from_dict(c) for c in json.loads(row["schema"]))
        if row["schema"]
        else None
    )
    return DatasetVersion(
        id=row["id"],
        name=row["name"],
        version=row["version"],
        kind=row["kind"],
        format=row["format"],
        file_count=row["file_count"],
        bytes=row["bytes"],
        rows=row["rows"],
        schema=schema,
        manifest_digest=row["manifest"],
        content_digest=row["content_digest"],
        profile_digest=row["profile"],
        card=DatasetCard(
            description=row["description"],
            owner=row["owner"],
            license=row["license"],
            source_uri=row["source_uri"],
            fetched_at=row["fetched_at"],
            tags=json.loads(row["tags"]),
        ),
        key_columns=tuple(json.loads(row["key_columns"])) if row["key_columns"] else (),
        parent=row["parent"],
        created_at=row["created_at"],
        created_by=row["created_by"],
    )
