"""Models: log a trained model as a registered version, and load any version back.

A logged version holds the flavor's files, the signature, pinned requirements, an input
example and, where a converter exists, an ONNX export kept only if its predictions match.
"""

from __future__ import annotations

import json
import platform
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from shipyard.domain.models import ModelVersion, Signature, infer_signature
from shipyard.errors import InvalidArgumentError, NotSupportedError, ShipyardError
from shipyard.services.flavors import flavor_for, flavor_named
from shipyard.services.flavors.base import LoadedModel
from shipyard.services.flavors.onnx import FILE as ONNX_FILE
from shipyard.services.flavors.onnx import OnnxRuntimeModel
from shipyard.services.objects import LocalFile, ObjectService, StoredFile, check_relative_path
from shipyard.services.registry import RegistryService
from shipyard.services.transfers import require_stored
from shipyard.stores.artifacts.content import ContentStore, hash_file
from shipyard.stores.metadata import SqlMetadataStore

__all__ = ["ONNX_TOLERANCE", "ModelService", "PreparedModel"]

ONNX_TOLERANCE = 1e-4  # ONNX Runtime computes in float32: differences beyond this are real
META = "shipyard-model.json"
EXAMPLE = "input_example.json"
_PARITY_ROWS = 1000


@dataclass(frozen=True, slots=True)
class PreparedModel:
    """A model written as files, ready to store: what ``ModelService.prepare`` made."""

    flavor: str
    signature: Signature | None
    requirements: list[str]
    onnx: dict[str, Any]
    files: list[LocalFile]


class ModelService:
    """Logs models as registered versions and loads them back."""

    def __init__(
        self,
        metadata: SqlMetadataStore,
        content: ContentStore,
        objects: ObjectService,
        registry: RegistryService,
        *,
        scratch: Path,
        cache: Path,
    ) -> None:
        self._metadata = metadata
        self._content = content
        self._objects = objects
        self._registry = registry
        self._scratch = scratch
        self._cache = cache

    def log_model(
        self,
        model: Any,
        name: str,
        *,
        run_id: str | None = None,
        flavor: str | None = None,
        signature: Signature | None = None,
        input_example: Any = None,
        training_sample: Any = None,
        requirements: Sequence[str] | None = None,
        description: str | None = None,
        tags: Mapping[str, str] | None = None,
        onnx: bool = True,
        **flavor_options: Any,
    ) -> ModelVersion:
        """Store a model and register it as the next version of ``name``.

        Args:
            model: the trained model.
            name: the registered model's name.
            run_id: the run that produced it (recorded in lineage).
            flavor: force a flavor (sklearn, onnx, python, pytorch, lightning); default:
                detected.
            signature: inputs and outputs; default: inferred from ``input_example``.
            input_example: a few rows of input, stored with the model.
            training_sample: rows the ONNX parity check also compares on.
            requirements: pinned packages; default: what the flavor needs, pinned.
            description: free text.
            tags: key/value tags.
            onnx: try an ONNX export (kept only when its predictions match).
            **flavor_options: options of the flavor, e.g. ``torchscript=True`` or
                ``init_args={...}`` for ``pytorch`` and ``lightning``.

        Returns:
            The new version.

        Raises:
            InvalidArgumentError: for an unknown flavor (the message lists them), a model
                no flavor can save, or an option its flavor does not take.
        """
        self._scratch.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="model-", dir=self._scratch) as tmp:
            prepared = self.prepare(
                model,
                Path(tmp),
                flavor=flavor,
                signature=signature,
                input_example=input_example,
                training_sample=training_sample,
                requirements=requirements,
                onnx=onnx,
                **flavor_options,
            )
            return self._store(name, prepared, run_id, description, tags)

    def _store(
        self,
        name: str,
        prepared: PreparedModel,
        run_id: str | None,
        description: str | None,
        tags: Mapping[str, str] | None,
    ) -> ModelVersion:
        """Store a prepared model's files and register the version.

        The remote service uploads the files and asks the server instead.
        """
        stored, _ = self._objects.hash(prepared.files)
        staged = self._objects.stage(prepared.files, stored)
        manifest = self._objects.put_manifest(stored)
        with self._metadata.write() as conn:
            self._objects.commit(conn, staged)
            return self._registry.create_version(
                conn,
                name=name,
                flavor=prepared.flavor,
                run_id=run_id,
                manifest=manifest,
                signature=prepared.signature,
                requirements=prepared.requirements,
                onnx=prepared.onnx,
                description=description,
                tags=tags or {},
            )

    def prepare(
        self,
        model: Any,
        folder: Path,
        *,
        flavor: str | None = None,
        signature: Signature | None = None,
        input_example: Any = None,
        training_sample: Any = None,
        requirements: Sequence[str] | None = None,
        onnx: bool = True,
        **flavor_options: Any,
    ) -> PreparedModel:
        """Write a model's files into an empty ``folder``; nothing is stored yet.

        The flavor's files, the input example, the ONNX export when it passes the parity
        check, and the metadata. Takes the options of ``log_model``.
        """
        chosen = (
            flavor_named(flavor, **flavor_options)
            if flavor
            else flavor_for(model, **flavor_options)
        )
        chosen.save_with_example(model, folder, input_example)
        if signature is None and input_example is not None:
            signature = infer_signature(input_example)
        if input_example is not None:
            (folder / EXAMPLE).write_text(_example_json(input_example))
        pins = list(requirements) if requirements is not None else chosen.requirements(model)
        report: dict[str, Any] = {"status": "unavailable", "reason": "not attempted"}
        if onnx and chosen.name != "onnx":
            report = self._export_onnx(chosen, model, folder, input_example, training_sample)
        elif chosen.name == "onnx":
            report = {"status": "attached", "max_diff": 0.0, "reason": None}
        meta = {
            "flavor": chosen.name,
            "python": platform.python_version(),
            "signature": signature.to_dict() if signature else None,
            "requirements": pins,
        }
        (folder / META).write_text(json.dumps(meta, indent=2))
        files = [
            LocalFile(p, p.relative_to(folder).as_posix())
            for p in sorted(folder.rglob("*"))
            if p.is_file()
        ]
        return PreparedModel(chosen.name, signature, pins, report, files)

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
        """Register a version from files stored already (uploaded by digest to a server).

        The remote client prepares the model where it was trained (``prepare``) and uploads
        only what the server lacks; this checks the files and records the version. The
        server never loads the model to do so.

        Raises:
            InvalidArgumentError: for an unknown flavor, files without the model's metadata,
                an ONNX report that does not fit the files, or sizes that do not match.
            UnsafePathError: for a path that is absolute or climbs out.
            NotFoundError: when a digest is not stored content (upload it first).
        """
        flavor_named(flavor)  # an unknown flavor is refused, naming the known ones
        names = [check_relative_path(f.name) for f in files]
        if META not in names:
            raise InvalidArgumentError(f"a model version needs its {META} among its files")
        status = onnx.get("status")
        if status not in ("attached", "rejected", "unavailable"):
            raise InvalidArgumentError(f"unknown ONNX status {status!r}")
        if (status == "attached") != (ONNX_FILE in names):
            raise InvalidArgumentError(f"an attached ONNX export is the file {ONNX_FILE}")
        require_stored(self._objects, files, "model file")
        stored = [StoredFile(n, f.size, f.digest) for n, f in zip(names, files, strict=True)]
        manifest = self._objects.put_manifest(stored)
        with self._metadata.write() as conn:
            return self._registry.create_version(
                conn,
                name=name,
                flavor=flavor,
                run_id=run_id,
                manifest=manifest,
                signature=signature,
                requirements=list(requirements),
                onnx=dict(onnx),
                description=description,
                tags=tags or {},
            )

    def _export_onnx(
        self, flavor: Any, model: Any, folder: Path, example: Any, sample: Any
    ) -> dict[str, Any]:
        if example is None:
            return {"status": "unavailable", "reason": "no input example to convert and check with"}
        try:
            data = flavor.to_onnx(model, example)
        except (NotSupportedError, ShipyardError) as exc:
            return {"status": "unavailable", "reason": str(exc)}
        try:
            exported = OnnxRuntimeModel(data)
        except ShipyardError as exc:
            return {"status": "rejected", "reason": f"the export does not load: {exc}"}
        native = flavor.load(folder)
        rows = [example] + ([_head(sample, _PARITY_ROWS)] if sample is not None else [])
        worst = 0.0
        for batch in rows:
            diff, problem = _parity(native, exported, batch)
            if problem is not None:
                return {"status": "rejected", "max_diff": diff, "reason": problem}
            worst = max(worst, diff)
        if worst > ONNX_TOLERANCE:
            return {
                "status": "rejected",
                "max_diff": worst,
                "reason": (
                    f"ONNX predictions differ by up to {worst:.3g} (tolerance {ONNX_TOLERANCE:g})"
                ),
            }
        (folder / ONNX_FILE).write_bytes(data)
        return {"status": "attached", "max_diff": worst, "reason": None}

    # -- loading ------------------------------------------------------------------------------

    def path(self, version: ModelVersion) -> Path:
        """A local folder with the version's files, verified against their digests; cached.

        The cached copy is checked again on every call (model files hash in milliseconds
        beside a load): one altered or lost since it was made is built again from the
        store, never loaded or packaged.

        Raises:
            CorruptBlobError: when the stored content itself no longer matches.
        """
        target = self._cache / version.name / str(version.version) / version.manifest_digest[7:19]
        folder = self._objects.materialise(version.manifest_digest, target, self._scratch)
        if self._intact(folder, version):
            return folder
        shutil.rmtree(target, ignore_errors=True)
        return self._objects.materialise(version.manifest_digest, target, self._scratch)

    def _intact(self, folder: Path, version: ModelVersion) -> bool:
        for stored in self._objects.read_manifest(version.manifest_digest):
            path = folder.joinpath(*stored.name.split("/"))
            try:
                if hash_file(path) != (stored.digest, stored.size):
                    return False
            except OSError:  # gone, or a folder where a file was
                return False
        return True

    def files(self, version: ModelVersion) -> list[dict[str, Any]]:
        """The version's files: path, size, digest."""
        return [
            {"path": f.name, "size": f.size, "digest": f.digest}
            for f in self._objects.read_manifest(version.manifest_digest)
        ]

    def load(self, reference: str, *, runtime: str = "native") -> LoadedModel:
        """Load a version to predict: ``sy.models.load("churn@champion").predict(df)``.

        Args:
            reference: ``name@N``, ``name@latest``, ``name@ALIAS`` or ``name@STAGE``.
            runtime: ``native`` (the flavor's own library) or ``onnx`` (ONNX Runtime, when
                a parity-checked export is attached).

        Raises:
            NotFoundError: for an unknown model, version or alias.
            CorruptBlobError: if a stored file no longer matches its digest.
            NotSupportedError: for ``runtime="onnx"`` without an attached export.
        """
        version = self._registry.resolve(reference)
        folder = self.path(version)
        if runtime == "onnx":
            if version.onnx_status != "attached":
                raise NotSupportedError(
                    f"{version.ref}", f"ONNX serving ({version.onnx_status}: {version.onnx_reason})"
                )
            return OnnxRuntimeModel((folder / ONNX_FILE).read_bytes())
        if runtime != "native":
            raise InvalidArgumentError(f"runtime is 'native' or 'onnx', not {runtime!r}")
        return flavor_named(version.flavor).load(folder)


def _example_json(example: Any) -> str:
    from shipyard.services.flavors.tabular import as_frame

    module = type(example).__module__.split(".")[0]
    if module == "numpy":
        return json.dumps({"data": np.asarray(example).tolist()})
    frame = as_frame(example)
    return frame.to_json(orient="split", index=False)  # type: ignore[no-any-return]


def _head(data: Any, rows: int) -> Any:
    if hasattr(data, "head"):
        return data.head(rows)
    if hasattr(data, "slice"):
        return data.slice(0, rows)
    return data[:rows]


def _parity(
    native: LoadedModel, exported: OnnxRuntimeModel, batch: Any
) -> tuple[float, str | None]:
    """Largest difference between native and ONNX predictions, or why they cannot agree."""
    theirs = exported.run(batch)
    ours = np.asarray(native.predict(batch))
    label = np.asarray(theirs[exported.outputs[0]]).reshape(ours.shape)
    if ours.dtype.kind in "OUSb" or label.dtype.kind in "OUSb":
        if not np.array_equal(ours.astype(str), label.astype(str)):
            return float("inf"), "ONNX predicts other labels than the native model"
        diff = 0.0
    elif ours.dtype.kind in "iu" and label.dtype.kind in "iu":
        if not np.array_equal(ours, label):
            return float("inf"), "ONNX predicts other classes than the native model"
        diff = 0.0
    else:
        diff = float(np.max(np.abs(ours.astype(np.float64) - label.astype(np.float64)), initial=0))
    proba = getattr(native, "predict_proba", None)
    if proba is not None and len(exported.outputs) > 1:
        try:
            expected = np.asarray(proba(batch), dtype=np.float64)
        except ShipyardError:
            return diff, None
        got = np.asarray(exported.predict_proba(batch), dtype=np.float64)
        if got.shape != expected.shape:
            return float("inf"), f"ONNX probabilities have shape {got.shape}, not {expected.shape}"
        diff = max(diff, float(np.max(np.abs(got - expected), initial=0)))
    return diff, None
