"""Models and the registry over HTTP: ``log_model``, ``load``, aliases, promotions, unchanged.

``log_model`` prepares the model where it was trained (flavor files, ONNX export with its
parity check, metadata), uploads only the files the server lacks and asks the server to
register the version; the server checks the files and never loads the model. ``load``
downloads the version's files, verifies them and loads them with the local flavor code.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from shipyard.client.blobs import RemoteBlobs
from shipyard.client.datasets import RemoteObjects
from shipyard.client.http import ApiClient
from shipyard.domain.models import ModelVersion, PromotionRequest, RegisteredModel, Signature
from shipyard.domain.records import from_record
from shipyard.domain.references import Reference, validate_name
from shipyard.services.models import ModelService, PreparedModel
from shipyard.services.objects import StoredFile

__all__ = ["RemoteModelService", "RemoteRegistryService"]


class RemoteRegistryService:
    """The registry of a remote project: the public methods of ``RegistryService``."""

    def __init__(self, client: ApiClient) -> None:
        self._client = client

    def resolve(self, reference: str) -> ModelVersion:
        """The version ``name@N``, ``name@latest``, ``name@ALIAS`` or ``name@STAGE`` names."""
        Reference.parse(reference)
        answer = self._client.call("GET", "/model-versions", params={"reference": reference})
        return from_record(ModelVersion, answer)

    def versions(self, name: str) -> list[ModelVersion]:
        """Every version of a model, oldest first."""
        validate_name(name, what="model name")
        return [
            from_record(ModelVersion, v)
            for v in self._client.call("GET", f"/models/{name}/versions")
        ]

    def models(self) -> list[RegisteredModel]:
        """Every registered model with its latest version and aliases."""
        return [from_record(RegisteredModel, m) for m in self._client.call("GET", "/models")]

    def model(self, name: str) -> RegisteredModel:
        """One registered model with its description, tags, latest version and aliases."""
        validate_name(name, what="model name")
        return from_record(RegisteredModel, self._client.call("GET", f"/models/{name}"))

    def update_model(
        self,
        name: str,
        *,
        description: str | None = None,
        tags: Mapping[str, str | None] | None = None,
    ) -> RegisteredModel:
        """Set a model's description and merge its tags (see ``RegistryService.update_model``)."""
        validate_name(name, what="model name")
        body = {"description": description, "tags": dict(tags or {})}
        answer = self._client.call("PATCH", f"/models/{name}", body=body)
        return from_record(RegisteredModel, answer)

    def set_alias(self, reference: str, alias: str) -> ModelVersion:
        """Point an unprotected alias at a version (see ``RegistryService.set_alias``)."""
        validate_name(alias, what="alias")
        version = self.resolve(reference)
        body = {"version": version.version}
        answer = self._client.call("PUT", f"/models/{version.name}/aliases/{alias}", body=body)
        return from_record(ModelVersion, answer)

    def set_stage(self, reference: str, stage: str) -> ModelVersion:
        """Move a version to an unprotected stage (see ``RegistryService.set_stage``)."""
        validate_name(stage, what="stage")
        version = self.resolve(reference)
        body = {"version": version.version}
        answer = self._client.call("PUT", f"/models/{version.name}/stages/{stage}", body=body)
        return from_record(ModelVersion, answer)

    def request(self, reference: str, to: str, reason: str) -> PromotionRequest:
        """Ask for a version to get a protected stage or alias."""
        body = {"reference": reference, "to": to, "reason": reason}
        return from_record(PromotionRequest, self._client.call("POST", "/promotions", body=body))

    def approve(self, request_id: str, comment: str | None = None) -> PromotionRequest:
        """Approve a request (approvers)."""
        return self._decide(request_id, "approve", comment)

    def reject(self, request_id: str, comment: str | None = None) -> PromotionRequest:
        """Reject a request (approvers)."""
        return self._decide(request_id, "reject", comment)

    def cancel(self, request_id: str) -> PromotionRequest:
        """Withdraw a pending request."""
        return from_record(
            PromotionRequest, self._client.call("POST", f"/promotions/{request_id}/cancel")
        )

    def requests(
        self, *, status: str | None = "pending", name: str | None = None
    ) -> list[PromotionRequest]:
        """Promotion requests, newest first; ``status=None`` for all of them."""
        params = {"status": status or "all"} | ({"name": name} if name else {})
        answer = self._client.call("GET", "/promotions", params=params)
        return [from_record(PromotionRequest, r) for r in answer]

    def _decide(self, request_id: str, verb: str, comment: str | None) -> PromotionRequest:
        answer = self._client.call(
            "POST", f"/promotions/{request_id}/{verb}", body={"comment": comment}
        )
        return from_record(PromotionRequest, answer)


class RemoteModelService(ModelService):
    """The model service of a remote project: the public methods of ``ModelService``."""

    def __init__(
        self,
        client: ApiClient,
        blobs: RemoteBlobs,
        registry: RemoteRegistryService,
        *,
        cache: Path,
    ) -> None:
        # The local service's preparing and loading code runs unchanged over remote content.
        self._client = client
        self._blobs = blobs
        self._objects = RemoteObjects(blobs)
        self._content = blobs  # type: ignore[assignment]
        self._registry = registry  # type: ignore[assignment]
        self._scratch = cache / "tmp"
        self._cache = cache / "models"

    def _store(
        self,
        name: str,
        prepared: PreparedModel,
        run_id: str | None,
        description: str | None,
        tags: Mapping[str, str] | None,
    ) -> ModelVersion:
        # ``log_model`` prepares the model here (flavor files, ONNX export and its parity
        # check); its files go up where the server lacks them, and the server registers it.
        validate_name(name, what="model name")
        stored = self._blobs.upload_files(prepared.files)
        return self.register_stored(
            name,
            stored,
            flavor=prepared.flavor,
            signature=prepared.signature,
            requirements=prepared.requirements,
            onnx=prepared.onnx,
            run_id=run_id,
            description=description,
            tags=tags,
        )

    def register_stored(
        self,
        name: str,
        files: Sequence[StoredFile],
        *,
        flavor: str,
        signature: Signature | None,
        requirements: Sequence[str],
        onnx: Mapping[str, Any],
        run_id: str | None = None,
        description: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> ModelVersion:
        """Register a version from uploaded files (see ``ModelService.register_stored``)."""
        body = {
            "files": [{"path": f.name, "digest": f.digest, "size": f.size} for f in files],
            "flavor": flavor,
            "signature": None if signature is None else signature.to_dict(),
            "requirements": list(requirements),
            "onnx": dict(onnx),
            "run_id": run_id,
            "description": description,
            "tags": dict(tags or {}),
        }
        answer = self._client.call("POST", f"/models/{name}/versions", body=body)
        return from_record(ModelVersion, answer)
