"""Datasets: immutable versions of files or tables, their manifest and their card."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from blake3 import blake3

from shipyard.domain.digests import format_digest
from shipyard.domain.profiles import ColumnSchema

__all__ = [
    "TABLE_FORMATS",
    "DatasetCard",
    "DatasetSummary",
    "DatasetVersion",
    "ManifestEntry",
    "content_digest",
    "format_of",
]

# File suffix -> table format; any other file is stored as an opaque file.
TABLE_FORMATS: Mapping[str, str] = {
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".arrow": "arrow",
    ".feather": "arrow",
    ".ipc": "arrow",
}


def format_of(name: str) -> str | None:
    """The table format a file name implies, or None for an opaque file."""
    dot = name.rfind(".")
    return TABLE_FORMATS.get(name[dot:].lower()) if dot > 0 else None


@dataclass(frozen=True, slots=True)
class ManifestEntry:
    """One file of a version: its path inside the dataset, size and content digest."""

    path: str
    size: int
    digest: str


def content_digest(entries: Iterable[ManifestEntry]) -> str:
    """The identity of a version's content: a hash over its sorted paths and digests."""
    hasher = blake3()
    for entry in sorted(entries, key=lambda e: e.path):
        hasher.update(f"{entry.path}\0{entry.digest}\n".encode())
    return format_digest(hasher.hexdigest())


@dataclass(frozen=True, slots=True)
class DatasetCard:
    """What people need to know about a version: description, owner, license, source, tags."""

    description: str | None = None
    owner: str | None = None
    license: str | None = None
    source_uri: str | None = None
    fetched_at: datetime | None = None
    tags: Mapping[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "description": self.description,
            "owner": self.owner,
            "license": self.license,
            "source_uri": self.source_uri,
            "fetched_at": self.fetched_at.isoformat() if self.fetched_at else None,
            "tags": dict(self.tags),
        }


@dataclass(frozen=True, slots=True)
class DatasetVersion:
    """An immutable version ``name@version`` of a dataset."""

    id: str
    name: str
    version: int
    kind: str  # "table" or "files"
    format: str | None
    file_count: int
    bytes: int
    rows: int | None
    schema: tuple[ColumnSchema, ...] | None
    manifest_digest: str
    content_digest: str
    profile_digest: str | None
    card: DatasetCard
    key_columns: tuple[str, ...]
    parent: int | None
    created_at: datetime
    created_by: str

    @property
    def ref(self) -> str:
        """The reference ``name@version``."""
        return f"{self.name}@{self.version}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "ref": self.ref,
            "id": self.id,
            "name": self.name,
            "version": self.version,
            "kind": self.kind,
            "format": self.format,
            "file_count": self.file_count,
            "bytes": self.bytes,
            "rows": self.rows,
            "schema": [c.to_dict() for c in self.schema] if self.schema else None,
            "manifest_digest": self.manifest_digest,
            "content_digest": self.content_digest,
            "profile_digest": self.profile_digest,
            "card": self.card.to_dict(),
            "key_columns": list(self.key_columns),
            "parent": self.parent,
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
        }


@dataclass(frozen=True, slots=True)
class DatasetSummary:
    """One line of ``shipyard data list``."""

    name: str
    description: str | None
    latest: int
    versions: int
    updated_at: datetime

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "name": self.name,
            "description": self.description,
            "latest": self.latest,
            "versions": self.versions,
            "updated_at": self.updated_at.isoformat(),
        }
