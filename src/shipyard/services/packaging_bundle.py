"""Opening a model bundle written by ``shipyard package``: verify every file, load the model.

A bundle is a folder that serves one model version with no metadata store and no artifact
store around it::

    manifest.json         format, model reference, flavor, signature, ONNX status, and
                          every other file with its size and BLAKE3 digest
    model/                the version's files (model.skops, model.onnx, …)
    requirements.txt      every distribution pinned to the version that was packaged with
    wheels/shipyard-*.whl shipyard itself (it is not on PyPI)
    serve.py              the entry point: ``python serve.py --port 8080``
    Dockerfile, .dockerignore

``open_bundle`` refuses the bundle, naming the file, when a listed file is missing or does
not match its digest, when ``model/`` holds a file the manifest does not list, or when a
listed path would leave the folder.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from shipyard.domain.ids import utcnow
from shipyard.domain.models import ModelVersion, Signature
from shipyard.errors import CorruptBundleError, InvalidArgumentError, NotSupportedError
from shipyard.services.flavors import flavor_named
from shipyard.services.flavors.base import LoadedModel
from shipyard.services.flavors.onnx import FILE as ONNX_FILE
from shipyard.services.flavors.onnx import OnnxRuntimeModel
from shipyard.services.objects import check_relative_path
from shipyard.stores.artifacts.content import hash_file

__all__ = ["FORMAT", "MANIFEST", "MODEL_DIR", "Bundle", "open_bundle", "verify_bundle"]

FORMAT = "shipyard-bundle/1"
MANIFEST = "manifest.json"
MODEL_DIR = "model"
RUNTIMES = ("onnx", "native")


@dataclass(frozen=True)
class Bundle:
    """A verified bundle and its loaded model, ready to serve.

    Attributes:
        folder: the bundle's folder.
        name: the model's name.
        version: the version number.
        flavor: the flavor the model was logged with.
        signature: the inputs and outputs, when the version has one.
        runtime: ``onnx`` (ONNX Runtime on the attached export) or ``native``.
        model: the loaded model.
        manifest: the whole manifest.json.
    """

    folder: Path
    name: str
    version: int
    flavor: str
    signature: Signature | None
    runtime: str
    model: LoadedModel
    manifest: Mapping[str, Any]

    @property
    def ref(self) -> str:
        """The reference ``name@version``."""
        return f"{self.name}@{self.version}"

    def model_version(self) -> ModelVersion:
        """The registered version the bundle was made from, as the registry described it."""
        model = self.manifest["model"]
        onnx = model.get("onnx") or {}
        created = model.get("created_at") or self.manifest.get("created_at")
        return ModelVersion(
            id=str(model.get("id") or model.get("manifest_digest")),
            name=self.name,
            version=self.version,
            flavor=self.flavor,
            run_id=model.get("run_id"),
            manifest_digest=str(model.get("manifest_digest", "")),
            signature=self.signature,
            requirements=tuple(model.get("requirements") or ()),
            onnx_status=str(onnx.get("status", "unavailable")),
            onnx_max_diff=onnx.get("max_diff"),
            onnx_reason=onnx.get("reason"),
            stage=str(model.get("stage", "none")),
            aliases=tuple(model.get("aliases") or ()),
            description=model.get("description"),
            tags=dict(model.get("tags") or {}),
            created_at=datetime.fromisoformat(created) if created else utcnow(),
            created_by=str(model.get("created_by") or self.manifest.get("created_by", "")),
        )


def verify_bundle(folder: Path) -> dict[str, Any]:
    """Check every file of a bundle against its manifest and return the manifest.

    Raises:
        CorruptBundleError: naming the first file that is missing, altered or unlisted.
        UnsafePathError: if the manifest lists a path that would leave the folder.
    """
    root = Path(folder).resolve()
    label = str(folder)
    path = root / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CorruptBundleError(label, MANIFEST, "is missing (is this a bundle folder?)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorruptBundleError(label, MANIFEST, f"cannot be read: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else None
        raise CorruptBundleError(label, MANIFEST, f"has format {found!r}, not {FORMAT!r}")
    files = manifest.get("files")
    if not isinstance(files, list) or not all(isinstance(f, dict) for f in files):
        raise CorruptBundleError(label, MANIFEST, "has no list of files")
    listed = set()
    for entry in files:
        name = check_relative_path(str(entry.get("path", "")))
        target = root.joinpath(*name.split("/"))
        if not target.resolve().is_relative_to(root):
            raise CorruptBundleError(label, name, "is a link that leaves the bundle")
        if not target.is_file():
            raise CorruptBundleError(label, name, "is missing")
        digest, size = hash_file(target)
        if digest != entry.get("digest") or size != entry.get("size"):
            raise CorruptBundleError(
                label,
                name,
                f"was altered: it hashes to {digest}, the manifest says {entry.get('digest')}",
            )
        listed.add(name)
    for extra in sorted((root / MODEL_DIR).rglob("*")):
        name = extra.relative_to(root).as_posix()
        if extra.is_file() and name not in listed:
            raise CorruptBundleError(label, name, "is not listed in manifest.json")
    return manifest


def open_bundle(folder: Path, *, runtime: str | None = None) -> Bundle:
    """Verify a bundle and load its model.

    Args:
        folder: the bundle's folder.
        runtime: ``onnx`` or ``native``; default: what the bundle was packaged for (ONNX
            Runtime when a parity-checked export is attached).

    Returns:
        The bundle with its loaded model.

    Raises:
        CorruptBundleError: naming a file that is missing, altered or unlisted.
        UnsafePathError: if the manifest lists a path that would leave the folder.
        NotSupportedError: for ``runtime="onnx"`` without an attached export.
        InvalidArgumentError: for an unknown runtime.
    """
    manifest = verify_bundle(folder)
    model = manifest.get("model")
    if not isinstance(model, dict):
        raise CorruptBundleError(str(folder), MANIFEST, "does not describe the model")
    chosen = runtime or str(model.get("runtime", "native"))
    if chosen not in RUNTIMES:
        raise InvalidArgumentError(f"runtime is 'onnx' or 'native', not {chosen!r}")
    files = Path(folder) / MODEL_DIR
    onnx = model.get("onnx") or {}
    if chosen == "onnx":
        if onnx.get("status") != "attached" or not (files / ONNX_FILE).is_file():
            raise NotSupportedError(
                f"bundle of {model.get('reference')}",
                f"ONNX serving ({onnx.get('status')}: {onnx.get('reason')})",
            )
        loaded: LoadedModel = OnnxRuntimeModel((files / ONNX_FILE).read_bytes())
    else:
        # Only files verified against the manifest's digests get here (see verify_bundle).
        loaded = flavor_named(str(model["flavor"])).load(files)
    signature = model.get("signature")
    return Bundle(
        folder=Path(folder),
        name=str(model["name"]),
        version=int(model["version"]),
        flavor=str(model["flavor"]),
        signature=Signature.from_dict(signature) if signature else None,
        runtime=chosen,
        model=loaded,
        manifest=manifest,
    )
