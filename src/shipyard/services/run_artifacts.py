"""Reading a run's artifacts back: one implementation for local and remote run services.

A run service lists a run's artifacts its own way (the metadata store, or the server); the
bytes come from an object reader (the local object store, or downloads by digest), verified
against their digests either way.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

from shipyard.domain.runs import RunArtifact, select_artifacts
from shipyard.errors import NotFoundError
from shipyard.services.objects import ObjectService

__all__ = ["ArtifactReads"]


class ArtifactReads(ABC):
    """``download_artifacts`` and ``read_artifact`` over ``artifacts`` and an object reader."""

    _objects: ObjectService

    @abstractmethod
    def artifacts(self, run_id: str) -> list[RunArtifact]:
        """The files a run logged."""

    def download_artifacts(self, run_id: str, dest: Path, path: str = "") -> list[Path]:
        """Write a run's artifacts (all, or those under ``path``) into ``dest``, verified."""
        written = []
        for artifact in select_artifacts(self.artifacts(run_id), path):
            target = Path(dest).joinpath(*artifact.path.split("/"))
            self._objects.export(artifact.digest, target)
            written.append(target)
        return written

    def read_artifact(self, run_id: str, path: str) -> bytes:
        """The verified content of one artifact.

        Raises:
            NotFoundError: if the run has no artifact at ``path``.
        """
        for artifact in self.artifacts(run_id):
            if artifact.path == path:
                return self._objects.read_bytes(artifact.digest)
        raise NotFoundError(f"run {run_id} has no artifact {path!r}")
