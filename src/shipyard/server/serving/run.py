"""Start the model server: load the version, record the deployment, run uvicorn.

``serve`` is what ``shipyard serve`` runs; ``build_app`` gives the ASGI app alone (tests,
embedding). One process serves by default; ``workers > 1`` binds the socket here and
starts that many ``shipyard serve`` child processes that accept on it.
"""

from __future__ import annotations

import gc
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, cast

from shipyard.app import Shipyard
from shipyard.errors import InvalidArgumentError, MissingDependencyError
from shipyard.server.serving.app import ServingApp, create_serving_app
from shipyard.server.serving.metrics import ServingMetrics
from shipyard.services.serving import BatchOptions, ModelServer, ServingSession

__all__ = ["ServeOptions", "ServingProject", "build_app", "serve", "serve_workers"]

_SWITCH_INTERVAL = 0.0005  # seconds a thread holds the GIL before another may take it
_GC_THRESHOLDS = (50_000, 20, 100)  # CPython's defaults are (700, 10, 10)


@dataclass(frozen=True)
class ServeOptions:
    """How ``shipyard serve`` runs (the CLI options)."""

    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    runtime: str = "auto"
    follow: bool = False
    follow_every: float = 10.0
    batching: BatchOptions = field(default_factory=BatchOptions)
    body_limit: int = 10 * 1024 * 1024
    sample_rate: float = 1.0
    heartbeat_every: float = 15.0
    log_level: str = "warning"
    record: bool = True  # write the deployment record and the prediction log
    fd: int | None = None  # a listening socket inherited from ``serve_workers``


class ServingProject(Protocol):
    """What serving needs of a project: a local ``Shipyard`` or a ``RemoteProject``.

    Pointed at a server, the model comes from the server's registry, and the deployment
    record, the prediction log and feedback labels go to the server.
    """

    registry: Any
    models: Any
    monitoring: Any
    predictions: Any
    lineage: Any
    deployments: Any


def build_app(
    project: ServingProject, reference: str, options: ServeOptions, *, url: str
) -> ServingApp:
    """Load the version ``reference`` names and wrap it in the serving app.

    Raises:
        NotFoundError: for an unknown model, version or alias.
        CorruptBlobError: if a stored model file no longer matches its digest.
        NotSupportedError: for ``runtime="onnx"`` without an attached ONNX export.
        InvalidArgumentError: for bad options (``--follow`` on a fixed version…).
    """
    if options.follow and "@" in reference and reference.rsplit("@", 1)[1].isdigit():
        raise InvalidArgumentError(
            f"--follow watches an alias, a stage or latest; {reference} is a fixed version"
        )
    if not 0.0 <= options.sample_rate <= 1.0:
        raise InvalidArgumentError(f"--sample-rate is between 0 and 1, not {options.sample_rate}")
    if options.body_limit < 1:
        raise InvalidArgumentError("--body-limit must be at least 1 byte")
    metrics = ServingMetrics()
    server = ModelServer(
        project.registry,
        project.models,
        reference,
        runtime=options.runtime,
        batching=options.batching,
        on_batch=metrics.batch_size.observe,
    )
    server.load()
    monitoring = project.monitoring  # its latest runs of this model join /metrics
    metrics.monitoring_source = lambda: monitoring.metrics_text([server.current.version.name])
    predictions = project.predictions
    session = ServingSession(
        server,
        project.lineage,
        deployments=project.deployments if options.record else None,
        make_log=(
            (
                lambda deployment_id: predictions.log(
                    deployment_id=deployment_id,
                    name=server.current.version.name,
                    sample_rate=options.sample_rate,
                )
            )
            if options.record
            else None
        ),
        feedback_sink=lambda name, labels, deployment_id: predictions.feedback(
            name, labels, deployment_id=deployment_id
        ),
        url=url,
    )
    return create_serving_app(
        session,
        body_limit=options.body_limit,
        follow_every=options.follow_every if options.follow else None,
        heartbeat_every=options.heartbeat_every,
        metrics=metrics,
    )


def serve(
    project: ServingProject,
    reference: str,
    options: ServeOptions,
    on_ready: Callable[[dict[str, Any]], None] | None = None,
) -> None:
    """Serve ``reference`` until SIGINT or SIGTERM; then drain, flush the log, stop.

    Args:
        project: the project whose registry holds the model.
        reference: the version to serve (``churn@champion``).
        options: how to serve.
        on_ready: called once the model is loaded, just before listening.

    Raises:
        NotFoundError: for an unknown model or alias (before anything listens).
        CorruptBlobError: if a model file no longer matches its digest.
        MissingDependencyError: if uvicorn is not installed.
    """
    try:
        import uvicorn
    except ModuleNotFoundError:
        raise MissingDependencyError("uvicorn", "server") from None
    url = _url(options)
    app = build_app(project, reference, options, url=url)
    if on_ready is not None:
        served = app.session.server.current
        on_ready(
            {
                "reference": served.version.ref,
                "model": served.version.name,
                "version": served.version.version,
                "alias": app.session.server.parsed.label,
                "runtime": served.runtime,
                "url": url,
            }
        )
    sockets = [socket.socket(fileno=options.fd)] if options.fd is not None else None
    # The prediction log's writer thread holds the GIL for the Python parts of storing a
    # batch; by default the event loop would wait up to 5 ms for it at a wake-up. Hand over
    # sooner.
    sys.setswitchinterval(_SWITCH_INTERVAL)
    # Everything loaded so far (the model, libraries) lives as long as the process: keep the
    # cyclic GC from walking it again and again, and collect young objects less often, so
    # that a full collection does not stall requests for tens of milliseconds.
    gc.collect()
    gc.freeze()
    gc.set_threshold(*_GC_THRESHOLDS)
    config = uvicorn.Config(
        app,
        host=options.host,
        port=options.port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        proxy_headers=False,  # a proxy-header middleware per request costs; off unless asked
        server_header=False,
        log_level=options.log_level,
        timeout_graceful_shutdown=30,
    )
    uvicorn.Server(config).run(sockets=sockets)


def serve_workers(
    project: ServingProject,
    reference: str,
    options: ServeOptions,
    on_ready: Callable[[dict[str, Any]], None] | None = None,
    *,
    root: Path | None = None,
) -> int:
    """Bind once and run ``options.workers`` ``shipyard serve`` processes on the socket.

    Each worker loads the model and records its own deployment (one per process); workers
    inherit the environment, so they reach the same project or server. ``root`` is the
    project folder the workers open (default: the local project's).
    Returns the worst exit code of the workers.

    Raises:
        NotFoundError: for an unknown model or alias (before anything starts).
    """
    version = project.registry.resolve(reference)
    sock = socket.socket(socket.AF_INET6 if ":" in options.host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((options.host, options.port))
    sock.listen(2048)
    sock.set_inheritable(True)
    fd = sock.fileno()
    argv = [
        "--project", str(root or cast(Shipyard, project).settings.root), "serve", reference,
        "--host", options.host, "--port", str(options.port), "--runtime", options.runtime,
        "--follow-every", str(options.follow_every),
        "--max-batch", str(options.batching.max_batch),
        "--max-wait-us", str(options.batching.max_wait_us),
        "--body-limit", str(options.body_limit), "--sample-rate", str(options.sample_rate),
        "--log-level", options.log_level, "--fd", str(fd),
        *(["--follow"] if options.follow else []),
        *([] if options.batching.enabled else ["--no-batching"]),
    ]  # fmt: skip
    if on_ready is not None:
        on_ready(
            {
                "reference": version.ref,
                "model": version.name,
                "version": version.version,
                "alias": None,
                "runtime": options.runtime,
                "url": _url(options),
                "workers": options.workers,
            }
        )
    children = [
        subprocess.Popen([sys.executable, "-m", "shipyard", *argv], pass_fds=(fd,))
        for _ in range(options.workers)
    ]

    def forward(signum: int, frame: object) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    # SIGTERM goes to the parent alone: pass it on. Ctrl-C reaches the whole process group
    # already; passing SIGINT on too would be a second signal, which uvicorn takes as
    # "exit now, do not drain".
    previous = {
        signal.SIGTERM: signal.signal(signal.SIGTERM, forward),
        signal.SIGINT: signal.signal(signal.SIGINT, signal.SIG_IGN),
    }
    try:
        codes = [child.wait() for child in children]
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        sock.close()
    # uvicorn re-raises the signal it drained on: a worker stopped that way ended well
    stopped = {-signal.SIGTERM, -signal.SIGINT}
    return max(0 if code in stopped else code for code in codes)


def _url(options: ServeOptions) -> str:
    host = f"[{options.host}]" if ":" in options.host else options.host  # IPv6 literal
    return f"http://{host}:{options.port}"
