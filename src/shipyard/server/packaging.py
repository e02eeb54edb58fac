"""Serve a model bundle (``shipyard package``) from its folder alone: no project, no stores.

What a bundle's ``serve.py`` runs: ``python -m shipyard.server.packaging BUNDLE [--port P]``.
The bundle is verified file by file before the model loads; then the same HTTP app as
``shipyard serve`` answers ``/predict``, ``/health``, ``/ready``, ``/metadata``,
``/metrics`` and ``/openapi.json``, with no deployment record, prediction log or feedback
store (there is no store to write them to).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

from shipyard.domain.lineage import Node
from shipyard.domain.models import ModelVersion
from shipyard.errors import MissingDependencyError, NotFoundError, ShipyardError
from shipyard.server.serving.app import ServingApp, create_serving_app
from shipyard.server.serving.metrics import ServingMetrics
from shipyard.services.flavors.base import LoadedModel
from shipyard.services.lineage import LineageGraph
from shipyard.services.packaging import PORT
from shipyard.services.packaging_bundle import Bundle, open_bundle
from shipyard.services.serving import BatchOptions, ModelServer, ServingSession

__all__ = ["create_bundle_app", "main"]


class _BundleVersions:
    """The registry and model store of a bundle: the one version it holds, already loaded."""

    def __init__(self, bundle: Bundle) -> None:
        self._version = bundle.model_version()
        self._model = bundle.model
        self._runtime = bundle.runtime

    def resolve(self, reference: str) -> ModelVersion:
        if reference != self._version.ref:
            raise NotFoundError(f"this bundle holds {self._version.ref}, not {reference}")
        return self._version

    def load(self, reference: str, *, runtime: str = "native") -> LoadedModel:
        if runtime != self._runtime:
            raise NotFoundError(f"this bundle was opened for the {self._runtime} runtime")
        return self._model


class _NoLineage:
    """A bundle has no lineage store: the metadata shows the source run id it recorded."""

    def graph(self, root: Node, *, depth: int = 20) -> LineageGraph:
        return LineageGraph(root, (), ())


def create_bundle_app(bundle: Bundle, *, batching: BatchOptions | None = None) -> ServingApp:
    """The serving app for an opened bundle.

    Args:
        bundle: from ``open_bundle`` (verified, model loaded).
        batching: micro-batching of single-row requests; default on.
    """
    metrics = ServingMetrics()
    versions: Any = _BundleVersions(bundle)
    server = ModelServer(
        versions,
        versions,
        bundle.ref,
        runtime=bundle.runtime,
        batching=batching or BatchOptions(),
        on_batch=metrics.batch_size.observe,
    )
    server.load()
    session = ServingSession(server, cast(Any, _NoLineage()))
    return create_serving_app(session, metrics=metrics)


def main(argv: Sequence[str] | None = None) -> int:
    """Serve a bundle until interrupted: ``BUNDLE [--host H] [--port P] [--runtime R]``.

    Returns:
        The exit code: 0 after a clean stop, 2 for a bundle that is refused, 5 without
        uvicorn.
    """
    parser = argparse.ArgumentParser(
        prog="serve.py", description="Serve a model bundle written by `shipyard package`."
    )
    parser.add_argument("bundle", type=Path, help="the bundle's folder")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=PORT, help="port to listen on")
    parser.add_argument("--runtime", choices=("onnx", "native"), default=None)
    parser.add_argument("--no-batching", action="store_true", help="predict each request alone")
    parser.add_argument("--log-level", default="warning", help="uvicorn's log level")
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        try:
            import uvicorn
        except ModuleNotFoundError:
            raise MissingDependencyError("uvicorn", "server") from None
        bundle = open_bundle(args.bundle, runtime=args.runtime)
        batching = BatchOptions(enabled=not args.no_batching)
        app = create_bundle_app(bundle, batching=batching)
    except ShipyardError as error:
        print(f"error: {error}", file=sys.stderr)
        return 5 if isinstance(error, MissingDependencyError) else 2
    print(f"serving {bundle.ref} ({bundle.runtime}) on http://{args.host}:{args.port}", flush=True)
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        lifespan="on",
        access_log=False,
        log_level=args.log_level,
        timeout_graceful_shutdown=30,
    )
    uvicorn.Server(config).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
