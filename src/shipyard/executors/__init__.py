"""Executors run pipeline tasks: ``open_executor("local")`` or ``open_executor("ray://h:p")``.

Back ends are chosen by scheme from a table of ``"dotted.path:Factory"`` strings, imported
only when asked for, so that an executor's heavy dependencies load only when it is used.
"""

from __future__ import annotations

import importlib
from typing import Any

from shipyard.errors import InvalidArgumentError, MissingDependencyError
from shipyard.executors.base import Executor, TaskOutcome, TaskSpec

__all__ = ["EXECUTORS", "Executor", "TaskOutcome", "TaskSpec", "executor_scheme", "open_executor"]

EXECUTORS: dict[str, str] = {
    "local": "shipyard.executors.local:LocalExecutor",
    "ray": "shipyard.executors.ray:RayExecutor",
}
_EXTRAS = {"ray": "ray"}


def executor_scheme(spec: str) -> str:
    """The back-end name of an executor spec: ``"ray://h:p"`` -> ``"ray"``.

    Raises:
        InvalidArgumentError: if no back end has that name.
    """
    scheme = spec.split("://", 1)[0] if "://" in spec else spec
    if scheme not in EXECUTORS:
        raise InvalidArgumentError(
            f"unknown executor {spec!r}; known: {', '.join(sorted(EXECUTORS))} "
            "(ray also as ray://host:port)"
        )
    return scheme


def open_executor(spec: str, *, max_workers: int | None = None) -> Executor:
    """Open the executor ``spec`` names: ``"local"``, ``"ray"`` or ``"ray://host:port"``.

    Args:
        spec: the executor's name or address.
        max_workers: tasks run at once (the back end's default when None).

    Raises:
        InvalidArgumentError: for an unknown executor.
        MissingDependencyError: when the back end's extra is not installed.
    """
    scheme = executor_scheme(spec)
    module_name, _, factory_name = EXECUTORS[scheme].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and not exc.name.startswith("shipyard"):
            raise MissingDependencyError(exc.name, _EXTRAS.get(scheme, scheme)) from None
        raise
    factory: Any = getattr(module, factory_name)
    options: dict[str, Any] = {"max_workers": max_workers}
    if scheme != "local":
        options["address"] = spec.split("://", 1)[1] if "://" in spec else None
    executor: Executor = factory(**options)
    return executor
