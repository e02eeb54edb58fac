"""The executor contract: run one task spec somewhere, get a future of its outcome.

Every back end (local threads and processes, Ray) takes a ``TaskSpec`` and returns a
``concurrent.futures.Future`` that resolves to a ``TaskOutcome``, also when the task
raised, timed out or was cancelled; the future raises only when the executor itself
failed (for example a result that cannot be pickled back: ``TaskResultError``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, ClassVar

__all__ = ["Executor", "TaskOutcome", "TaskSpec"]


@dataclass(frozen=True)
class TaskSpec:
    """One attempt of one task, picklable with cloudpickle.

    Attributes:
        run_id: the pipeline run's id.
        key: the task's key in the run, e.g. ``"train-0"``.
        fn: the task's function.
        args: positional arguments, upstream values already resolved.
        kwargs: keyword arguments, likewise resolved.
        timeout: seconds; past it the executor really stops the work.
        resources: e.g. ``{"cpu": 1.0, "memory": 2e9}`` (memory in bytes).
        isolate: run in its own process.
    """

    run_id: str
    key: str
    fn: Callable[..., Any]
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    timeout: float | None = None
    resources: dict[str, float] = field(default_factory=dict)
    isolate: bool = False


@dataclass(frozen=True)
class TaskOutcome:
    """How one attempt ended.

    Attributes:
        value: the return value when ``error`` is None.
        error: a formatted traceback or a message.
        error_type: the exception's class name, e.g. ``"ValueError"``,
            ``"TaskTimeoutError"``, ``"TaskCancelledError"``.
        logs: the attempt's stdout, stderr and logging records, in order.
        started: when it started (``time.time()``).
        ended: when it ended.
        pid: the process it ran in.
        dataset_reads: (reference, content digest) of each dataset reference that may move
            the attempt resolved (``domain.pipelines.TASK_DATASET_READS``).
    """

    value: Any
    error: str | None
    error_type: str | None
    logs: bytes
    started: float
    ended: float
    pid: int
    dataset_reads: tuple[tuple[str, str], ...] = ()

    @property
    def ok(self) -> bool:
        """Whether the attempt returned a value."""
        return self.error is None


class Executor(ABC):
    """Runs task specs and returns futures of their outcomes."""

    name: ClassVar[str]

    @abstractmethod
    def submit(self, spec: TaskSpec) -> Future[TaskOutcome]:
        """Start one attempt; the future resolves to its outcome."""

    @abstractmethod
    def cancel(self, future: Future[TaskOutcome]) -> None:
        """Stop the attempt behind ``future`` for real (kill its process) if it can."""

    @abstractmethod
    def shutdown(self, wait: bool = True) -> None:
        """Release workers; with ``wait`` first let running attempts end."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
