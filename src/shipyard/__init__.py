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
    "connect",
    "datasets",
    "models",
    "registry",
    "runs",
    "start_run",
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
    return _default_project().runs.start_run(experiment, **options)


def _default_project() -> Shipyard:
    """The project of the working directory, opened on first use and kept for the process."""
    global _default
    if _default is None:
        import atexit

        _default = connect()
        atexit.register(_default.close)
    return _default


def __getattr__(name: str) -> Any:
    # Heavy modules load on first use so that `import shipyard` stays fast; `sy.datasets`
    # and friends are the services of the working directory's project.
    if name in ("datasets", "models", "registry", "runs"):
        return getattr(_default_project(), name)
    if name == "autolog":
        from shipyard.services.autolog import Autolog, enable_autolog

        def autolog(
            *,
            log_models: bool = True,
            registered_model_name: str | None = None,
            max_params: int = 100,
        ) -> Autolog:
            """Record scikit-learn fits in the working directory's project.

            Takes the options of ``shipyard.services.autolog.enable_autolog``.

            Example:
                >>> sy.autolog()  # doctest: +SKIP
                >>> LogisticRegression(max_iter=1000).fit(X, y)  # a run in "autolog"
            """
            return enable_autolog(
                _default_project().runs,
                log_models=log_models,
                registered_model_name=registered_model_name,
                max_params=max_params,
            )

        return autolog
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
