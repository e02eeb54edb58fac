"""Datasets over HTTP: ``add``, ``get``, ``resolve``, ``versions``… as in a local project.

The client does what needs the data where the data is: it reads the source, hashes the
files, profiles a table and uploads only the content the server lacks; the server checks
that every file is stored content and records the version. Reads (files, profiles,
``path()``, ``to_pandas()``, ``validate``, ``diff``) reuse the local service's code over a
reader that downloads content by digest and verifies it.
"""

from __future__ import annotations

import builtins
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from shipyard.client.blobs import RemoteBlobs, hash_files
from shipyard.client.http import ApiClient
from shipyard.domain.datasets import DatasetCard, DatasetSummary, DatasetVersion, ManifestEntry
from shipyard.domain.datasets import content_digest as identity_of
from shipyard.domain.pipelines import note_dataset_read
from shipyard.domain.profiles import TableProfile
from shipyard.domain.records import from_record
from shipyard.domain.references import Reference, validate_name
from shipyard.errors import NotFoundError, NotSupportedError
from shipyard.services.dataset_inputs import check_add, table_format_of
from shipyard.services.datasets import AddResult, DatasetService, Progress
from shipyard.services.hashing import check_relative_paths, names_of
from shipyard.services.objects import ObjectService, StoredFile
from shipyard.services.sources import resolve_source

__all__ = ["RemoteDatasetService", "RemoteObjects"]


class RemoteObjects(ObjectService):
    """The reading half of ``ObjectService`` over HTTP.

    Manifests, exports and materialised folders, with every byte downloaded from the server
    by digest and verified.
    """

    def __init__(self, blobs: RemoteBlobs) -> None:  # no store of its own: nothing to open
        self._blobs = blobs
        self._content = blobs  # type: ignore[assignment]  # read_bytes(digest) is all it uses
        self._read_ahead = {}

    def iter_bytes(self, digest: str) -> Iterator[bytes]:
        """The content of a digest in pieces, verified as it arrives."""
        return self._blobs.iter_bytes(digest)

    def stage(self, *args: Any, **kwargs: Any) -> Any:
        """Not here: a remote client uploads through ``RemoteBlobs``."""
        raise NotSupportedError("a remote project's object reader", "storing files")


class RemoteDatasetService(DatasetService):
    """The dataset service of a remote project: the public methods of ``DatasetService``."""

    def __init__(self, client: ApiClient, blobs: RemoteBlobs, *, cache: Path) -> None:
        # The local service's reading methods run unchanged over the remote reader.
        self._client = client
        self._blobs = blobs
        self._objects = RemoteObjects(blobs)
        self._content = blobs  # type: ignore[assignment]
        self._cache = cache / "datasets"
        self._scratch = cache / "tmp"
        self._user = ""  # the server records the token's user

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
        """Add a version through the server (see ``DatasetService.add``).

        The source is read here; only content the server lacks is uploaded.
        """
        card_tags, keys = check_add(name, tags, key, format)
        self._scratch.mkdir(parents=True, exist_ok=True)
        with resolve_source(source, sql=sql, db=db, scratch=self._scratch) as resolved:
            check_relative_paths(names_of(resolved.files))
            if progress is not None:
                progress("hash", 0, len(resolved.files))
            stored = hash_files(resolved.files)
            identity = identity_of([ManifestEntry(f.name, f.size, f.digest) for f in stored])
            latest = self._latest(name)
            if latest is not None and latest.content_digest == identity:
                return AddResult(latest, False, 0, len(stored))
            table_format = format or table_format_of(resolved.files)
            profile = self._describe(resolved.files, table_format, keys, progress)
            if progress is not None:
                progress("store", 0, sum(f.size for f in stored))
            sent = self._blobs.upload_missing(resolved.files, stored)
            card = DatasetCard(
                description=description,
                owner=owner,
                license=license,
                source_uri=resolved.uri,
                fetched_at=resolved.fetched_at,
                tags=card_tags,
            )
            result = self.add_stored(
                name, stored, table_format=table_format, profile=profile, card=card, key=keys
            )
        return AddResult(result.version, result.created, sent, len(stored))

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
        """Add a version from content the server holds (see ``DatasetService.add_stored``)."""
        validate_name(name, what="dataset name")
        body = {
            "files": [{"path": f.name, "digest": f.digest, "size": f.size} for f in files],
            "format": table_format,
            "profile": None if profile is None else profile.to_dict(),
            "key": list(key),
            "description": card.description,
            "owner": card.owner,
            "license": card.license,
            "source_uri": card.source_uri,
            "fetched_at": None if card.fetched_at is None else card.fetched_at.isoformat(),
            "tags": dict(card.tags),
        }
        answer = self._client.call("POST", f"/datasets/{name}/versions", body=body)
        return from_record(AddResult, answer)

    def resolve(self, reference: str) -> DatasetVersion:
        """Resolve ``name``, ``name@N``, ``name@latest`` or ``name@label`` on the server.

        Inside a pipeline task, a reference that may move is noted with the content it gave
        (a cached result of the task is reused only while it gives the same).
        """
        version = self._resolve(reference)
        pinned = Reference.parse(reference).version is not None
        note_dataset_read(reference, pinned, version.content_digest)
        return version

    def _resolve(self, reference: str) -> DatasetVersion:
        answer = self._client.call("GET", "/dataset-versions", params={"reference": reference})
        return from_record(DatasetVersion, answer)

    def _latest(self, name: str) -> DatasetVersion | None:
        try:
            return self._resolve(f"{name}@latest")
        except NotFoundError:  # the server answers 404 for a dataset without versions
            return None

    def versions(self, name: str) -> builtins.list[DatasetVersion]:
        """Every version of a dataset, oldest first."""
        validate_name(name, what="dataset name")
        answer = self._client.call("GET", f"/datasets/{name}/versions")
        return [from_record(DatasetVersion, v) for v in answer]

    def list(self, *, after: str | None = None, limit: int = 1000) -> builtins.list[DatasetSummary]:
        """Datasets by name, ``limit`` at a time after the name ``after``."""
        params: dict[str, Any] = {"limit": limit}
        if after is not None:
            params["after"] = after
        answer = self._client.call("GET", "/datasets", params=params)
        return [from_record(DatasetSummary, d) for d in answer]

    def label(self, reference: str, label: str) -> DatasetVersion:
        """Point ``name@label`` at a version, on the server."""
        version = self.resolve(reference)
        answer = self._client.call(
            "PUT",
            f"/datasets/{version.name}/labels/{label}",
            body={"version": version.version},
        )
        return from_record(DatasetVersion, answer)


def default_cache(uri: str) -> Path:
    """Where a remote project keeps downloaded content: per server, in the temp folder."""
    safe = "".join(c if c.isalnum() else "_" for c in uri)[:100]
    return Path(tempfile.gettempdir()) / "shipyard-remote" / safe
