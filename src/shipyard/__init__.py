"""shipyard: the whole MLOps loop in one package.

Example:
    >>> import shipyard as sy
    >>> with sy.connect("/path/to/project") as project:  # doctest: +SKIP
    ...     info = project.blobs.put(b"hello")
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shipyard._version import __version__
from shipyard.errors import (
    AlreadyExistsError,
    BackendError,
    ConflictError,
    InvalidArgumentError,
    MissingDependencyError,
    NotFoundError,
    NotSupportedError,
    PermissionDeniedError,
    ShipyardError,
)

if TYPE_CHECKING:
    from pathlib import Path

    from shipyard.app import Shipyard
    from shipyard.services.pipeline_tasks import pipeline, task
    from shipyard.services.runs import ActiveRun
    from shipyard.settings import Settings

__all__ = [
    "AlreadyExistsError",
    "BackendError",
    "ConflictError",
    "InvalidArgumentError",
    "MissingDependencyError",
    "NotFoundError",
    "NotSupportedError",
    "PermissionDeniedError",
    "PythonModel",
    "Settings",
    "Shipyard",
    "ShipyardError",
    "__version__",
    "autolog",
    "check",
    "connect",
    "datasets",
    "models",
    "pipeline",
    "pipelines",
    "predictions",
    "registry",
    "runs",
    "schedules",
    "start_run",
    "task",
]

_default: Shipyard | None = None


def connect(project: Path | str | None = None, **overrides: Any) -> Shipyard:
    """Open the shipyard project at or above ``project`` (default: the working directory).

    Args:
        project: a folder inside the project.
        **overrides: settings that win over shipyard.toml and the environment, such as
            ``metadata_uri="postgresql+psycopg://…"``.

    Returns:
        The project's services; use it as a context manager or call ``close()``.
    """
    from shipyard.app import build
    from shipyard.settings import Settings

    return build(Settings.load(project, **overrides))


def start_run(experiment: str = "default", **options: Any) -> ActiveRun:
    """Start a run in the working directory's project (see ``RunService.start_run``).

    Example:
        >>> with sy.start_run(experiment="churn") as run:  # doctest: +SKIP
        ...     run.log_param("max_depth", 5)
        ...     run.log_metric("auc", 0.91)
    """
    return _runs().start_run(experiment, **options)  # type: ignore[no-any-return]


_remote: Any = None


def _remote_project() -> Any:
    """The server ``SHIPYARD_URI`` names (opened once a process), or None in local mode."""
    global _remote
    if _remote is None:
        import atexit

        from shipyard.client import open_remote
        from shipyard.settings import Settings

        _remote = open_remote(Settings.load()) or False
        if _remote:
            atexit.register(_remote.close)
    return _remote or None


def _runs() -> Any:
    """The working directory's run service: over HTTP when ``SHIPYARD_URI`` names a server."""
    return _service("runs")


def _service(name: str) -> Any:
    # In remote mode a service the client does not cover yet is refused: writing to a
    # local project nobody meant would be worse than an error.
    remote = _remote_project()
    if remote is None:
        return getattr(_default_project(), name)
    if not hasattr(remote, name):
        raise NotSupportedError(
            f"remote mode (SHIPYARD_URI={remote.uri})", f"sy.{name} yet: unset SHIPYARD_URI"
        )
    return getattr(remote, name)


def _default_project() -> Shipyard:
    """The project of the working directory, opened on first use and kept for the process."""
    global _default
    if _default is None:
        import atexit

        _default = connect()
        atexit.register(_default.close)
    return _default


def check(reference: str, checks: Any) -> Any:
    """A data gate for pipeline tasks: validate a dataset version, raise if a check fails.

    Example:
        >>> @sy.task
        ... def prepare():
        ...     sy.check("customers@latest", "checks.toml")  # doctest: +SKIP

    Raises:
        DataGateError: with ``.report``, the whole validation report, when a check fails.
    """
    from shipyard.services.pipeline_gates import gate

    return gate(_service("datasets"), reference, checks)


def _run_pipeline(flow: Any, params: dict[str, Any], **options: Any) -> Any:
    # How `flow(...)` runs outside a given project: in the working directory's project, or
    # here with its records on the server that SHIPYARD_URI names.
    return _service("pipelines").run(flow, params, **options)


def __getattr__(name: str) -> Any:
    # Heavy modules load on first use so that `import shipyard` stays fast; `sy.datasets`
    # and friends are the services of the working directory's project.
    if name in ("datasets", "models", "pipelines", "predictions", "registry", "runs", "schedules"):
        return _service(name)
    if name == "autolog":
        from shipyard.services.autolog import Autolog, enable_autolog

        def autolog(
            *,
            log_models: bool = True,
            registered_model_name: str | None = None,
            max_params: int = 100,
        ) -> Autolog:
            """Record scikit-learn fits and Lightning ``Trainer.fit`` in the working project.

            Takes the options of ``shipyard.services.autolog.enable_autolog``.

            Example:
                >>> sy.autolog()  # doctest: +SKIP
                >>> LogisticRegression(max_iter=1000).fit(X, y)  # a run in "autolog"
            """
            return enable_autolog(
                _service("runs"),
                log_models=log_models,
                registered_model_name=registered_model_name,
                max_params=max_params,
            )

        return autolog
    if name in ("task", "pipeline"):
        # The decorators import `inspect` and the pipeline records: ~25 ms, on first use only.
        from shipyard.services import pipeline_tasks

        pipeline_tasks.set_default_runner(_run_pipeline)
        return getattr(pipeline_tasks, name)
    if name == "PythonModel":
        from shipyard.services.flavors.python import PythonModel

        return PythonModel
    if name == "Settings":
        from shipyard.settings import Settings

        return Settings
    if name == "Shipyard":
        from shipyard.app import Shipyard

        return Shipyard
    raise AttributeError(f"module 'shipyard' has no attribute {name!r}")
