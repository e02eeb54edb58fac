"""``@task`` and ``@pipeline``: plain functions that build a DAG when a pipeline runs them.

Outside a pipeline a task is its function. Inside a running pipeline's body a task call
returns a ``TaskHandle`` at once; handles passed to other tasks are the DAG's edges. This
module stays light (standard library and domain only): ``import shipyard`` loads it.
"""

from __future__ import annotations

import functools
import inspect
import json
import sys
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Protocol, overload

from shipyard.domain.pipelines import TaskOptions
from shipyard.errors import InvalidArgumentError

if TYPE_CHECKING:
    from shipyard.domain.pipelines import PipelineRun

__all__ = [
    "Pipeline",
    "Task",
    "TaskHandle",
    "TaskRunner",
    "current_runner",
    "pipeline",
    "set_default_runner",
    "task",
]


class TaskRunner(Protocol):
    """What a running pipeline offers its body: start a task call, wait for a result."""

    def call(
        self,
        task: Task,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        after: Sequence[TaskHandle] = (),
    ) -> TaskHandle:
        """Add a task call to the DAG; it starts when its inputs (and ``after``) are done."""

    def wait(self, key: str, timeout: float | None = None) -> Any:
        """Block until the task ``key`` ends; its value, or raise why it has none."""


RUNNER: ContextVar[TaskRunner | None] = ContextVar("shipyard_task_runner", default=None)
_default_runner: list[Callable[..., PipelineRun]] = []


def current_runner() -> TaskRunner | None:
    """The pipeline run whose body is running on this thread, if any."""
    return RUNNER.get()


def set_default_runner(run: Callable[..., PipelineRun]) -> None:
    """Set how ``Pipeline.run`` without a project runs (wired by ``shipyard/__init__``)."""
    _default_runner[:] = [run]


class TaskHandle:
    """A task call inside a running pipeline: pass it to other tasks, or wait for it."""

    __slots__ = ("_runner", "key")

    def __init__(self, key: str, runner: TaskRunner) -> None:
        self.key = key
        self._runner = runner

    def result(self, timeout: float | None = None) -> Any:
        """Block until the task ends and return its value (for dynamic DAGs).

        Raises:
            PipelineFailedError: if the task failed; TaskCancelledError if cancelled.
        """
        return self._runner.wait(self.key, timeout)

    def __repr__(self) -> str:
        return f"TaskHandle({self.key!r})"


class Task:
    """A function made a pipeline task by ``@task``."""

    def __init__(self, fn: Callable[..., Any], options: TaskOptions, name: str) -> None:
        self.fn = fn
        self.options = options
        self.name = name
        functools.update_wrapper(self, fn)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the function now, or inside a running pipeline add the call to its DAG."""
        runner = RUNNER.get()
        if runner is None:
            return self.fn(*args, **kwargs)
        return runner.call(self, args, kwargs)

    def map(self, items: Iterable[Any] | TaskHandle, **kwargs: Any) -> list[Any]:
        """Fan out: one call per item (a handle to a list is waited for first).

        Returns:
            One handle per item inside a pipeline, the values outside.
        """
        runner = RUNNER.get()
        if not isinstance(items, TaskHandle):
            return [self(item, **kwargs) for item in items]
        values = items.result()
        if runner is None:
            return [self(item, **kwargs) for item in values]
        # The items came from a task: each call is drawn after it in the DAG.
        return [runner.call(self, (item,), kwargs, (items,)) for item in values]

    def __repr__(self) -> str:
        return f"<task {self.name}>"


@overload
def task(fn: Callable[..., Any], /) -> Task: ...


@overload
def task(
    *,
    name: str | None = None,
    retries: int = 0,
    retry_backoff: float = 1.0,
    retry_jitter: float = 0.1,
    timeout: str | float | None = None,
    cache: bool = False,
    resources: dict[str, Any] | None = None,
    isolate: bool | None = None,
) -> Callable[[Callable[..., Any]], Task]: ...


def task(
    fn: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    retries: int = 0,
    retry_backoff: float = 1.0,
    retry_jitter: float = 0.1,
    timeout: str | float | None = None,
    cache: bool = False,
    resources: dict[str, Any] | None = None,
    isolate: bool | None = None,
) -> Any:
    """Make a function a pipeline task; use as ``@task`` or ``@task(retries=3, ...)``.

    Args:
        fn: the function (when used without parentheses).
        name: the task's name (default: the function's name); keys are ``name-N``.
        retries: attempts after the first one fails.
        retry_backoff: seconds before the first retry; each retry waits twice as long.
        retry_jitter: each wait is scaled by a random factor in ``1 +/- retry_jitter``.
        timeout: stop the task after this long (``"30s"``, ``"10m"``, seconds); a task
            with a timeout runs in its own process, which is killed at the timeout.
        cache: reuse the stored result of an earlier run with the same code and inputs.
        resources: e.g. ``{"cpu": 2, "memory": "2GB"}`` (used by the Ray executor).
        isolate: run in its own process (default: only when it has a timeout).

    Example:
        >>> @task(retries=2, timeout="1m")
        ... def load(path: str) -> list[int]:
        ...     return [1, 2, 3]
    """
    options = TaskOptions.parse(
        retries=retries,
        retry_backoff=retry_backoff,
        retry_jitter=retry_jitter,
        timeout=timeout,
        cache=cache,
        resources=resources,
        isolate=isolate,
    )

    def wrap(function: Callable[..., Any]) -> Task:
        return Task(function, options, name or function.__name__)

    return wrap(fn) if fn is not None else wrap


class Pipeline:
    """A function made a pipeline by ``@pipeline``; call it (or ``.run``) to run it."""

    def __init__(
        self,
        fn: Callable[..., Any],
        name: str,
        schedule: str | None,
        notify: tuple[str, ...],
    ) -> None:
        self.fn = fn
        self.name = name
        self.schedule = schedule
        self.notify = notify
        self.target = _default_target(fn)
        functools.update_wrapper(self, fn)

    def __call__(self, **params: Any) -> PipelineRun:
        """Run the pipeline now in the working directory's project (see ``run``)."""
        return self.run(params)

    def run(self, params: Mapping[str, Any] | None = None, **options: Any) -> PipelineRun:
        """Run now in the working directory's project (or ``project=`` one).

        Args:
            params: the pipeline's parameters.
            **options: ``executor``, ``cache``, ``max_workers``, ``project`` (a Shipyard).

        Returns:
            The finished run; ``run.result`` is the pipeline's return value.
        """
        project = options.pop("project", None)
        if project is not None:
            result: PipelineRun = project.pipelines.run(self, dict(params or {}), **options)
            return result
        if not _default_runner:
            raise InvalidArgumentError("no project to run in: pass project=shipyard.connect()")
        return _default_runner[0](self, dict(params or {}), **options)

    def parameters(self) -> dict[str, inspect.Parameter]:
        """The pipeline's parameters by name."""
        return dict(inspect.signature(self.fn).parameters)

    def validate(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Parameters checked against the signature and converted to the annotated types.

        Strings (from the command line) become ``int``, ``float``, ``bool``, ``list`` or
        ``dict`` as annotated; missing parameters take their defaults.

        Raises:
            InvalidArgumentError: for an unknown or missing parameter (listing the
                known ones) or a value that is not of the parameter's type.
        """
        known = self.parameters()
        hints = _hints(self.fn)
        unknown = sorted(set(params) - set(known))
        if unknown:
            raise InvalidArgumentError(
                f"unknown parameter {', '.join(repr(u) for u in unknown)} for pipeline "
                f"{self.name!r}; its parameters: {self.describe_parameters()}"
            )
        out: dict[str, Any] = {}
        for name, parameter in known.items():
            if name in params:
                out[name] = _coerce(name, params[name], hints.get(name))
            elif parameter.default is inspect.Parameter.empty:
                raise InvalidArgumentError(
                    f"parameter {name!r} of pipeline {self.name!r} is required; its "
                    f"parameters: {self.describe_parameters()}"
                )
            else:
                out[name] = parameter.default
        return out

    def describe_parameters(self) -> str:
        """``"n (int, default 3), path (str)"``: the parameters for messages."""
        hints = _hints(self.fn)
        parts = []
        for name, parameter in self.parameters().items():
            kind = hints.get(name)
            text = f"{name} ({getattr(kind, '__name__', str(kind)) if kind else 'any'}"
            if parameter.default is not inspect.Parameter.empty:
                text += f", default {parameter.default!r}"
            parts.append(text + ")")
        return ", ".join(parts) or "none"

    def __repr__(self) -> str:
        return f"<pipeline {self.name}>"


@overload
def pipeline(fn: Callable[..., Any], /) -> Pipeline: ...


@overload
def pipeline(
    *,
    name: str | None = None,
    schedule: str | None = None,
    notify: Iterable[str] = (),
) -> Callable[[Callable[..., Any]], Pipeline]: ...


def pipeline(
    fn: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    schedule: str | None = None,
    notify: Iterable[str] = (),
) -> Any:
    """Make a function a pipeline; use as ``@pipeline`` or ``@pipeline(name=..., ...)``.

    Args:
        fn: the function (when used without parentheses).
        name: the pipeline's name (default: the function's name).
        schedule: a cron expression or interval the scheduler uses (``shipyard schedules``).
        notify: sinks told when a run succeeds or fails, e.g. ``"webhook:https://…"``.
    """

    def wrap(function: Callable[..., Any]) -> Pipeline:
        return Pipeline(function, name or function.__name__, schedule, tuple(notify))

    return wrap(fn) if fn is not None else wrap


def _default_target(fn: Callable[..., Any]) -> str:
    module = getattr(fn, "__module__", None) or "__main__"
    loaded = sys.modules.get(module)
    file = getattr(loaded, "__file__", None)
    if module == "__main__" or module.startswith("_shipyard_target_") or module not in sys.modules:
        file = file or inspect.getsourcefile(fn)
        return f"{file}:{fn.__name__}"
    return f"{module}:{fn.__qualname__}"


def _hints(fn: Callable[..., Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(fn)
    except Exception:  # unresolvable annotations: validate nothing rather than fail
        return {}


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _coerce(name: str, value: Any, kind: Any) -> Any:
    if kind is None or kind is Any:
        return value
    origin = typing.get_origin(kind) or kind
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        options = typing.get_args(kind)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(name, value, option)
            except InvalidArgumentError as exc:
                errors.append(exc)
        raise errors[0] if errors else InvalidArgumentError(f"parameter {name!r}: bad value")
    if not isinstance(origin, type):
        return value
    if isinstance(value, origin) and not (origin is int and isinstance(value, bool)):
        return value
    try:
        if isinstance(value, str):
            if origin is bool:
                if value.lower() in _TRUE | _FALSE:
                    return value.lower() in _TRUE
                raise ValueError(value)
            if origin in (list, dict, tuple):
                parsed = json.loads(value)
                if not isinstance(parsed, list if origin is tuple else origin):
                    raise ValueError(value)
                return origin(parsed)
            if origin in (int, float):
                return origin(value)
        if origin is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
    except (ValueError, json.JSONDecodeError):
        pass
    raise InvalidArgumentError(
        f"parameter {name!r} must be {origin.__name__}, not {value!r} ({type(value).__name__})"
    )
