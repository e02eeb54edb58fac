"""Store health: describe the configured stores, check every blob and reference, collect garbage."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any

from shipyard._version import __version__
from shipyard.errors import BlobNotFoundError, NotFoundError, NotSupportedError, ShipyardError
from shipyard.stores.artifacts.content import ContentStore
from shipyard.stores.metadata import SqlMetadataStore, redact_url

__all__ = ["FsckReport", "GcReport", "MaintenanceService", "StoreInfo"]

Progress = Callable[[int, int | None], None]  # (done, total or None)


@dataclass(frozen=True, slots=True)
class StoreInfo:
    """What ``shipyard info`` shows: versions, where the stores are, whether they answer."""

    version: str
    project_root: str
    metadata_uri: str
    metadata_backend: str
    metadata_reachable: bool
    metadata_detail: str
    schema_revision: str | None
    schema_head: str
    artifact_uri: str
    artifact_reachable: bool
    artifact_detail: str
    executor: str
    server_uri: str | None
    user: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class FsckReport:
    """Every problem ``fsck`` found; empty lists mean a healthy store."""

    blobs_checked: int
    references_checked: int
    corrupt: list[dict[str, str]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    database: list[str] = field(default_factory=list)
    schema_pending: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether nothing is wrong."""
        return not (self.corrupt or self.missing or self.database or self.schema_pending)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {**asdict(self), "ok": self.ok}


@dataclass(frozen=True, slots=True)
class GcReport:
    """Blobs nothing references, and what was done with them."""

    unreferenced: list[str]
    bytes: int
    deleted: list[str]
    dry_run: bool
    stale_temporaries: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return asdict(self)


class MaintenanceService:
    """``info``, ``fsck`` and ``gc`` over the configured stores."""

    def __init__(
        self,
        metadata: SqlMetadataStore,
        content: ContentStore,
        *,
        project_root: str,
        executor: str,
        server_uri: str | None,
        user: str,
    ) -> None:
        self._metadata = metadata
        self._content = content
        self._context = {
            "project_root": project_root,
            "executor": executor,
            "server_uri": server_uri,
            "user": user,
        }

    def info(self) -> StoreInfo:
        """Describe the stores and check that each can be reached."""
        try:
            detail, reachable = self._metadata.server_version(), True
            status = self._metadata.status()
            revision, head = status.current, status.head
        except ShipyardError as exc:
            detail, reachable, revision, head = str(exc), False, None, "?"
        try:
            count = sum(1 for _ in self._content.digests())
            blob_detail, blob_ok = f"{count} blobs", True
        except (ShipyardError, OSError) as exc:
            blob_detail, blob_ok = str(exc), False
        return StoreInfo(
            version=__version__,
            project_root=str(self._context["project_root"]),
            metadata_uri=redact_url(self._metadata.uri),
            metadata_backend=self._metadata.dialect,
            metadata_reachable=reachable,
            metadata_detail=detail,
            schema_revision=revision,
            schema_head=head,
            artifact_uri=self._content.uri,
            artifact_reachable=blob_ok,
            artifact_detail=blob_detail,
            executor=str(self._context["executor"]),
            server_uri=self._context["server_uri"],
            user=str(self._context["user"]),
        )

    def fsck(self, *, progress: Progress | None = None) -> FsckReport:
        """Re-hash every blob and check that every referenced blob exists.

        Args:
            progress: called with (blobs checked, total blobs) as the check goes on.
        """
        digests = sorted(self._content.digests())
        corrupt: list[dict[str, str]] = []
        for done, digest in enumerate(digests, 1):
            try:
                actual = self._content.verify(digest)
            except BlobNotFoundError:  # deleted while we looked: not a problem
                actual = None
            if actual is not None:
                corrupt.append({"digest": digest, "actual": actual})
            if progress is not None:
                progress(done, len(digests))
        stored = set(digests)
        referenced = self._metadata.referenced_digests()
        missing = sorted(d for d in referenced if d not in stored)
        status = self._metadata.status()
        return FsckReport(
            blobs_checked=len(digests),
            references_checked=len(referenced),
            corrupt=corrupt,
            missing=missing,
            database=self._metadata.integrity_problems(),
            schema_pending=list(status.pending),
        )

    def gc(self, *, dry_run: bool = True, grace: timedelta = timedelta(hours=1)) -> GcReport:
        """List, and unless ``dry_run`` delete, blobs that no metadata references.

        A blob younger than ``grace`` is kept even when unreferenced: a writer may have
        stored it and not yet committed the metadata that will reference it. Referenced
        blobs are never deleted.
        """
        referenced = self._metadata.referenced_digests()
        unreferenced = sorted(d for d in self._content.digests() if d not in referenced)
        sizes = {d: self._content.size(d) for d in unreferenced}
        deleted: list[str] = []
        cutoff = time.time() - grace.total_seconds()
        stale = self._content.blobs.clean_staged(older_than=cutoff, dry_run=dry_run)
        if not dry_run:
            # Look again right before deleting: a reference committed meanwhile wins.
            referenced = self._metadata.referenced_digests()
            for digest in unreferenced:
                if digest not in referenced and self._written_before(digest, cutoff):
                    self._content.delete(digest)
                    deleted.append(digest)
        return GcReport(unreferenced, sum(sizes.values()), deleted, dry_run, stale)

    def _written_before(self, digest: str, cutoff: float) -> bool:
        try:
            return self._content.blobs.modified(self._content.key_of(digest)) <= cutoff
        except NotFoundError:
            return False
        except NotSupportedError:  # age unknown: only a zero grace period may delete it
            return cutoff >= time.time()
