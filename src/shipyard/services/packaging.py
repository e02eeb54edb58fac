"""Packaging: one model version as a self-contained folder that serves it anywhere.

``shipyard package churn@7 -o build/`` writes the version's files, a manifest with every
file's BLAKE3 digest, pinned requirements, a wheel of this shipyard (it is not on PyPI), an
entry point and a Dockerfile. The folder alone serves the model: no metadata store, no
artifact store (see ``shipyard.services.packaging_bundle`` for the layout and the checks done
when it is opened).

The bundle is written under a temporary name next to the output folder and renamed into
place, so a failed packaging leaves nothing half-written and never touches the project.
"""

from __future__ import annotations

import importlib.metadata
import json
import platform
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from shipyard.domain.ids import new_id, utcnow
from shipyard.domain.models import ModelVersion
from shipyard.errors import (
    AlreadyExistsError,
    CorruptBlobError,
    InvalidArgumentError,
)
from shipyard.services.objects import check_relative_path
from shipyard.services.packaging_bundle import FORMAT, MANIFEST, MODEL_DIR
from shipyard.services.packaging_requirements import build_wheel, lock
from shipyard.stores.artifacts.content import hash_file

__all__ = [
    "PORT",
    "SERVING_REQUIREMENTS",
    "Package",
    "PackageService",
    "VersionFiles",
    "VersionResolver",
    "dockerfile",
]

PORT = 8080
# What the bundle's HTTP server needs besides shipyard's own dependencies and the model's.
SERVING_REQUIREMENTS = ("uvicorn[standard]", "starlette")
WHEELS = "wheels"
ENTRY_POINT = "serve.py"
REQUIREMENTS = "requirements.txt"
DOCKERFILE = "Dockerfile"
BASE_IMAGE = "python:3.11-slim"


@dataclass(frozen=True)
class Package:
    """A written bundle.

    Attributes:
        folder: where it was written.
        version: the packaged model version.
        runtime: what the bundle serves with by default (``onnx`` or ``native``).
        files: every file but manifest.json: path, size, digest.
        requirements: the pinned requirements.txt lines.
        wheel: the shipyard wheel's path inside the bundle.
        manifest_digest: the BLAKE3 digest of manifest.json (pin it to detect any change).
    """

    folder: Path
    version: ModelVersion
    runtime: str
    files: tuple[dict[str, Any], ...]
    requirements: tuple[str, ...]
    wheel: str
    manifest_digest: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "folder": str(self.folder),
            "model": self.version.ref,
            "flavor": self.version.flavor,
            "runtime": self.runtime,
            "onnx": self.version.onnx_status,
            "files": list(self.files),
            "requirements": list(self.requirements),
            "wheel": self.wheel,
            "manifest_digest": self.manifest_digest,
            "serve": f"python {ENTRY_POINT} --port {PORT}",
        }


class VersionResolver(Protocol):
    """What packaging asks of a registry: the local one, or a server's (remote mode)."""

    def resolve(self, reference: str) -> ModelVersion:
        """The version a reference names now."""
        ...


class VersionFiles(Protocol):
    """What packaging asks of a model service: the local one, or a server's (remote mode)."""

    def path(self, version: ModelVersion) -> Path:
        """A local folder with the version's files, verified against their digests."""
        ...

    def files(self, version: ModelVersion) -> list[dict[str, Any]]:
        """The version's files: path, size, digest."""
        ...


class PackageService:
    """Writes model versions as self-contained bundles.

    Args:
        registry: resolves references (a ``RegistryService``, or a server's registry).
        models: the versions' files (a ``ModelService``, or a server's, which downloads and
            verifies them): the bundle is the same either way.
        actor: who the manifest says packaged it.
        project_root: the project's folder, which ``--force`` never replaces.
    """

    def __init__(
        self, registry: VersionResolver, models: VersionFiles, *, actor: str, project_root: Path
    ) -> None:
        self._registry = registry
        self._models = models
        self._actor = actor
        self._project_root = project_root

    def _packager(self) -> str:
        """Who the manifest records as having packaged the bundle."""
        return self._actor

    def package(self, reference: str, out_dir: Path, *, force: bool = False) -> Package:
        """Write ``reference`` (``churn@7``, ``churn@champion``) as a bundle in ``out_dir``.

        Args:
            reference: the model version to package.
            out_dir: the bundle's folder; created if missing.
            force: replace a folder that is not empty.

        Returns:
            What was written.

        Raises:
            NotFoundError: for an unknown model, version or alias.
            InvalidReferenceError: for a malformed reference.
            AlreadyExistsError: if ``out_dir`` is not empty and ``force`` is not given.
            InvalidArgumentError: if ``out_dir`` is a file, or holds the project itself.
            CorruptBlobError: if a stored model file no longer matches its digest.
        """
        version = self._registry.resolve(reference)
        out = Path(out_dir).absolute()
        self._check_target(out, force=force)
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = out.parent / f".{out.name}.partial-{new_id()}"
        staging.mkdir()
        try:
            package = self._write(version, reference, staging)
            _swap(staging, out)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return Package(
            folder=out,
            version=version,
            runtime=package.runtime,
            files=package.files,
            requirements=package.requirements,
            wheel=package.wheel,
            manifest_digest=package.manifest_digest,
        )

    def _check_target(self, out: Path, *, force: bool) -> None:
        if out.exists() and not out.is_dir():
            raise InvalidArgumentError(f"output {out} is a file: name a folder for the bundle")
        if not out.exists() or not any(out.iterdir()):
            return
        if not force:
            raise AlreadyExistsError(
                f"output folder {out} is not empty: choose another folder or pass --force "
                "to replace its contents"
            )
        project = self._project_root.resolve()
        if project == out.resolve() or project.is_relative_to(out.resolve()):
            raise InvalidArgumentError(
                f"output folder {out} holds the project {project}: --force would delete it; "
                "choose a folder of its own for the bundle"
            )

    def _write(self, version: ModelVersion, requested: str, folder: Path) -> Package:
        files: list[dict[str, Any]] = []
        source = self._models.path(version)
        for stored in self._models.files(version):
            name = check_relative_path(stored["path"])
            target = folder.joinpath(MODEL_DIR, *name.split("/"))
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source.joinpath(*name.split("/")), target)
            digest, _ = hash_file(target)
            if digest != stored["digest"]:
                raise CorruptBlobError(stored["digest"], digest)
        runtime = "onnx" if version.onnx_status == "attached" else "native"
        requirements = _requirements(version, runtime)
        (folder / REQUIREMENTS).write_text(
            f"# Pinned for {version.ref} by shipyard package; shipyard itself is in {WHEELS}/.\n"
            + "".join(f"{line}\n" for line in requirements)
        )
        (folder / WHEELS).mkdir()
        wheel = build_wheel(folder / WHEELS).relative_to(folder).as_posix()
        (folder / ENTRY_POINT).write_text(_entry_point(version))
        (folder / DOCKERFILE).write_text(dockerfile(version, wheel))
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                digest, size = hash_file(path)
                files.append(
                    {"path": path.relative_to(folder).as_posix(), "size": size, "digest": digest}
                )
        manifest = {
            "format": FORMAT,
            "model": {
                "reference": version.ref,
                "requested": requested,
                "name": version.name,
                "version": version.version,
                "flavor": version.flavor,
                "signature": version.signature.to_dict() if version.signature else None,
                "onnx": {
                    "status": version.onnx_status,
                    "max_diff": version.onnx_max_diff,
                    "reason": version.onnx_reason,
                },
                "runtime": runtime,
                "requirements": list(version.requirements),
                "manifest_digest": version.manifest_digest,
                "run_id": version.run_id,
                "id": version.id,
                "stage": version.stage,
                "aliases": list(version.aliases),
                "description": version.description,
                "tags": dict(version.tags),
                "created_at": version.created_at.isoformat(),
                "created_by": version.created_by,
            },
            "shipyard": importlib.metadata.version("shipyard"),
            "python": platform.python_version(),
            "created_at": utcnow().isoformat(),
            "created_by": self._packager(),
            "files": files,
        }
        (folder / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        return Package(
            folder=folder,
            version=version,
            runtime=runtime,
            files=tuple(files),
            requirements=tuple(requirements),
            wheel=wheel,
            manifest_digest=hash_file(folder / MANIFEST)[0],
        )


def _swap(staging: Path, out: Path) -> None:
    """Put the finished bundle in place of ``out`` (missing, empty, or replaced by --force)."""
    if not out.exists():
        staging.rename(out)
        return
    old = out.parent / f".{out.name}.replaced-{new_id()}"
    out.rename(old)
    try:
        staging.rename(out)
    except BaseException:
        old.rename(out)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _requirements(version: ModelVersion, runtime: str) -> list[str]:
    dist = importlib.metadata.distribution("shipyard")
    roots: list[str] = list(dist.requires or [])
    roots += version.requirements
    roots += SERVING_REQUIREMENTS
    if version.onnx_status == "attached" or runtime == "onnx":
        roots.append("onnxruntime")
    return lock(roots, exclude=["shipyard"])


def _entry_point(version: ModelVersion) -> str:
    return f'''#!/usr/bin/env python3
"""Serve {version.ref} from this folder alone: python serve.py [--host H] [--port P].

Install first (from this folder):
    python -m venv .venv
    .venv/bin/pip install -r {REQUIREMENTS}
    .venv/bin/pip install --no-deps {WHEELS}/*.whl
Every file is checked against manifest.json before the model loads.
"""

import sys
from pathlib import Path

from shipyard.server.packaging import main

if __name__ == "__main__":
    sys.exit(main([str(Path(__file__).resolve().parent), *sys.argv[1:]]))
'''


def dockerfile(version: ModelVersion, wheel: str, *, port: int = PORT) -> str:
    """The bundle's Dockerfile: dependencies first (cached layers), the model last.

    Args:
        version: the packaged version.
        wheel: the shipyard wheel's path inside the bundle.
        port: the port the server listens on.
    """
    health = f"http://127.0.0.1:{port}/health"
    probe = (
        "import sys, urllib.request; "
        f"sys.exit(urllib.request.urlopen('{health}', timeout=2).status != 200)"
    )
    lines: Sequence[str] = (
        f"# {version.ref} ({version.flavor}), packaged by shipyard.",
        f"# Build: docker build -t {version.name}:{version.version} .",
        f"# Run:   docker run -p {port}:{port} {version.name}:{version.version}",
        f"FROM {BASE_IMAGE}",
        "ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \\",
        "    PIP_DISABLE_PIP_VERSION_CHECK=1",
        "RUN groupadd --gid 10001 shipyard \\",
        "    && useradd --create-home --uid 10001 --gid 10001 --shell /usr/sbin/nologin shipyard",
        "WORKDIR /app",
        "# Dependencies first: these layers stay cached while only the model changes.",
        f"COPY {REQUIREMENTS} ./",
        f"RUN pip install --no-cache-dir -r {REQUIREMENTS}",
        f"COPY {WHEELS}/ ./{WHEELS}/",
        f"RUN pip install --no-cache-dir --no-deps {wheel}",
        f"COPY {MANIFEST} {ENTRY_POINT} {DOCKERFILE} ./",
        f"COPY {MODEL_DIR}/ ./{MODEL_DIR}/",
        "USER 10001:10001",
        f"EXPOSE {port}",
        "HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \\",
        f"    CMD {json.dumps(['python', '-c', probe])}",
        f'CMD ["python", "{ENTRY_POINT}", "--host", "0.0.0.0", "--port", "{port}"]',
    )
    return "\n".join(lines) + "\n"
