"""The Ray executor: each task attempt is a Ray task, on this machine or on a Ray cluster.

``RayExecutor()`` starts a private Ray instance on this machine the first time it is needed
(``num_cpus`` from ``max_workers``, else the machine's CPUs; no dashboard; Ray's logging
quiet); ``RayExecutor(address="host:port")`` connects to a cluster's Ray client server
(``ray://host:port``). Ray starts once per process and stays up until the process exits,
because starting it costs seconds and about a gigabyte: executors come and go, Ray stays.

A task runs in a Ray worker through ``run_captured``, so its output is captured there. Its
spec goes over as a cloudpickle payload; functions from modules the workers cannot import
(a test module, a ``path/file.py`` pipeline) are pickled by value. Resources map to Ray's:
``cpu`` -> ``num_cpus`` (1 by default), ``gpu`` -> ``num_gpus``, ``memory`` (bytes) ->
``memory``, anything else to a custom resource. Ray's own retries are off (the pipeline
retries).

A timeout counts from the moment the task starts in a worker, not from its submission (it
may wait for a free CPU first): such a task runs as a streaming generator whose first item
says when and where it started. Past the timeout, or on ``cancel``, the worker is killed
(``ray.cancel(force=True)``), which stops it also while it sleeps in C code. Through a Ray
client (``ray://``) the timeout counts from the submission: streaming tasks are used only on
a directly connected Ray.

A cluster with Ray's token authentication (the default for clusters started by Ray 2.59 and
later) needs ``RAY_AUTH_MODE=token`` and its token (``RAY_AUTH_TOKEN``, or the token file)
in the environment of the process that connects; shipyard must be installed on the cluster.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import queue
import sys
import sysconfig
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from functools import cache, partial
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

from shipyard.errors import (
    BackendError,
    ConflictError,
    TaskCancelledError,
    TaskResultError,
    TaskTimeoutError,
)
from shipyard.executors.base import Executor, TaskOutcome, TaskSpec
from shipyard.executors.capture import run_captured

__all__ = ["RayExecutor", "connect"]

_LOCAL = "local"
_connect_lock = threading.Lock()
_connected: str | None = None  # the address this module connected Ray to, if it did
_local_totals: dict[str, float] = {}  # resources of the Ray instance this module started
_by_value: set[str] = set()  # modules registered with cloudpickle to be pickled by value
_SHIPPED_WITH_PYTHON = tuple(
    str(Path(sysconfig.get_paths()[name]).resolve()) for name in ("stdlib", "purelib", "platlib")
)


def connect(address: str | None = None, *, num_cpus: int | None = None) -> str:
    """Start Ray on this machine, or connect to a cluster, once per process.

    Args:
        address: ``"host:port"`` of a cluster's Ray client server, or None for a private
            Ray instance on this machine.
        num_cpus: CPUs of the private instance (the machine's CPUs when None); ignored
            when Ray is already running in this process.

    Returns:
        ``"local"`` or ``"ray://host:port"``: what this process is connected to.

    Raises:
        ConflictError: when this process is already connected to another Ray.
        BackendError: when the cluster cannot be reached.
    """
    global _connected
    import ray

    wanted = _LOCAL if address is None else f"ray://{address}"
    with _connect_lock:
        if ray.is_initialized():
            if _connected is not None and _connected != wanted:
                raise ConflictError(
                    f"this process already runs tasks on Ray at {_connected}; it cannot also "
                    f"use {wanted}: use one Ray address per process (the executor setting)"
                )
            return _connected or wanted
        quiet: dict[str, Any] = {"logging_level": logging.ERROR, "log_to_driver": False}
        try:
            if address is None:
                ray.init(
                    address=_LOCAL,  # never attach to someone else's instance by accident
                    num_cpus=num_cpus or os.cpu_count() or 1,
                    include_dashboard=False,
                    **quiet,
                )
                totals: dict[str, float] = ray.cluster_resources()  # type: ignore[no-untyped-call]
                _local_totals.update(totals)
            else:
                ray.init(address=wanted, **quiet)
        except (ConnectionError, TimeoutError, RuntimeError) as exc:
            raise BackendError(
                f"cannot connect to Ray at {wanted}: {exc}; check the address and that the "
                "cluster's head runs a client server (`ray start --head`, port 10001)"
            ) from exc
        _connected = wanted
        return wanted


def _client_mode() -> bool:
    from ray.util.client import ray as client

    return bool(client.is_connected())  # type: ignore[no-untyped-call]


class RayExecutor(Executor):
    """Runs each task attempt as a Ray task.

    Args:
        max_workers: CPUs of the private Ray instance this executor may start; tasks run
            at once as far as their ``cpu`` resources fit (ignored on a cluster).
        address: ``"host:port"`` of a Ray cluster's client server; None for this machine.
        num_cpus: same as ``max_workers``, by Ray's name; wins when both are given.
    """

    name: ClassVar[str] = "ray"

    def __init__(
        self,
        max_workers: int | None = None,
        address: str | None = None,
        *,
        num_cpus: int | None = None,
    ) -> None:
        self.address = connect(address, num_cpus=num_cpus or max_workers)
        self._streaming = not _client_mode()  # Ray client has no streaming tasks
        self._attempts: dict[Future[TaskOutcome], _Attempt] = {}
        self._lock = threading.Lock()
        self._closed = False
        self._events: queue.SimpleQueue[_Event] = queue.SimpleQueue()
        self._watcher = threading.Thread(target=self._watch, name="shipyard-ray", daemon=True)
        self._watcher.start()

    def submit(self, spec: TaskSpec) -> Future[TaskOutcome]:
        """Start one attempt as a Ray task; the future resolves to its outcome.

        Raises:
            RuntimeError: after ``shutdown``.
        """
        if self._closed:
            raise RuntimeError("cannot submit tasks to a Ray executor after shutdown")
        future: Future[TaskOutcome] = Future()
        future.set_running_or_notify_cancel()  # cancel through the executor, which kills
        submitted = time.time()
        problem = _infeasible(spec.resources)
        if problem is not None:
            future.set_result(_failed(spec, problem, "InvalidArgumentError", submitted))
            return future
        try:
            payload = _dumps(spec)
        except Exception as exc:
            message = f"its inputs cannot be pickled: {exc!r}"
            future.set_result(_failed(spec, message, "PicklingError", submitted))
            return future
        plain, streaming = _remote_functions()
        stream = spec.timeout is not None and self._streaming
        try:
            remote = (streaming if stream else plain).options(**_ray_options(spec.resources))
        except (TypeError, ValueError) as exc:  # Ray's checks of the resource amounts
            message = f"Ray refuses the task's resources {spec.resources}: {exc}"
            future.set_result(_failed(spec, message, "InvalidArgumentError", submitted))
            return future
        attempt = _Attempt(spec, future, submitted)
        with self._lock:
            self._attempts[future] = attempt
        if stream:
            attempt.ref = attempt.generator = remote.remote(payload)
            done = attempt.generator.completed().future()
        else:
            attempt.ref = remote.remote(payload)
            done = attempt.ref.future()
        attempt.done = done
        if spec.timeout is not None:
            self._events.put(("deadline", attempt, submitted + spec.timeout))
        done.add_done_callback(partial(self._report, attempt))
        return future

    def cancel(self, future: Future[TaskOutcome]) -> None:
        """Kill the worker running the attempt (or drop it if it has not started)."""
        with self._lock:
            attempt = self._attempts.get(future)
        if attempt is not None:
            self._stop(attempt, "TaskCancelledError")

    def shutdown(self, wait: bool = True) -> None:
        """Stop taking tasks; wait for running attempts, or kill them unless ``wait``.

        Ray itself keeps running until the process exits (see ``connect``).
        """
        self._closed = True
        with self._lock:
            attempts = list(self._attempts.values())
        for attempt in attempts:
            if wait:
                attempt.future.exception()  # blocks until it resolves, never raises
            else:
                self._stop(attempt, "TaskCancelledError")
        self._events.put(("stop", None, 0.0))
        if wait and self._watcher is not threading.current_thread():
            self._watcher.join()

    # -- internals -------------------------------------------------------------------------

    def _report(self, attempt: _Attempt, done: Future[Any]) -> None:
        # Runs on a Ray thread: hand over, never call Ray or user callbacks from here.
        self._events.put(("done", attempt, 0.0))

    def _watch(self) -> None:
        """One thread settles finished attempts and enforces deadlines, in time order."""
        deadlines: list[tuple[float, int, _Attempt]] = []
        order = itertools.count()
        while True:
            wait = None if not deadlines else max(0.0, deadlines[0][0] - time.time())
            try:
                kind, attempt, when = self._events.get(timeout=wait)
            except queue.Empty:
                kind, attempt, when = "tick", None, 0.0
            if kind == "stop":
                return
            if kind == "done" and attempt is not None:
                self._settle(attempt)
            elif kind == "deadline" and attempt is not None:
                heapq.heappush(deadlines, (when, next(order), attempt))
            now = time.time()
            while deadlines and deadlines[0][0] <= now:
                _, _, due = heapq.heappop(deadlines)
                later = self._check_deadline(due, now)
                if later is not None:
                    heapq.heappush(deadlines, (later, next(order), due))

    def _check_deadline(self, attempt: _Attempt, now: float) -> float | None:
        """Kill an attempt past its timeout; or when to look again if it may not have started."""
        if attempt.future.done() or (attempt.done is not None and attempt.done.done()):
            return None  # finished in time; its result is on its way
        timeout = attempt.spec.timeout or 0.0
        if attempt.generator is not None:
            started = attempt.learn_start()
            if started is None:
                return now + min(timeout, 1.0)  # still queued for resources
            if started + timeout > now:
                return started + timeout
        self._stop(attempt, "TaskTimeoutError")
        return None

    def _stop(self, attempt: _Attempt, error_type: str) -> None:
        import ray

        if attempt.generator is not None:
            attempt.learn_start()  # for the outcome's pid
        if not attempt.claim():
            return
        if attempt.ref is not None:
            ray.cancel(attempt.ref, force=True)
        spec = attempt.spec
        if error_type == "TaskTimeoutError":
            message = str(TaskTimeoutError(spec.key, spec.timeout or 0.0))
        else:
            message = str(TaskCancelledError(spec.key))
        started = attempt.started or attempt.submitted
        self._resolve(attempt, _failed(spec, message, error_type, started, attempt.pid))

    def _settle(self, attempt: _Attempt) -> None:
        """Resolve a finished attempt's future from its Ray result."""
        import ray
        from ray.exceptions import (
            OutOfMemoryError,
            RayTaskError,
            WorkerCrashedError,
        )
        from ray.exceptions import (
            TaskCancelledError as RayCancelled,
        )

        if not attempt.claim():
            return
        spec = attempt.spec
        try:
            if attempt.generator is not None:
                ray.get(attempt.generator.completed())
                attempt.learn_start()
                data = ray.get(next(attempt.generator))
            else:
                data = ray.get(attempt.ref)
            outcome = _loads(spec, data)
        except (WorkerCrashedError, OutOfMemoryError) as exc:
            message = (
                f"the Ray worker of task {spec.key!r} died "
                f"(killed by the system? out of memory?): {exc}"
            )
            outcome = _failed(spec, message, "WorkerCrashedError", attempt.submitted, attempt.pid)
        except RayCancelled:  # by someone else than this executor
            message = str(TaskCancelledError(spec.key))
            outcome = _failed(spec, message, "TaskCancelledError", attempt.submitted, attempt.pid)
        except RayTaskError as exc:  # an error outside the task's function
            outcome = _failed(spec, str(exc), type(exc.cause).__name__, attempt.submitted)
        except BaseException as exc:
            self._resolve(attempt, exc)
            return
        self._resolve(attempt, outcome)

    def _resolve(self, attempt: _Attempt, result: TaskOutcome | BaseException) -> None:
        with self._lock:
            self._attempts.pop(attempt.future, None)
        if isinstance(result, TaskOutcome):
            attempt.future.set_result(result)
        elif isinstance(result, TaskResultError | BackendError):
            attempt.future.set_exception(result)
        else:
            error = BackendError(f"Ray failed to run task {attempt.spec.key!r}: {result!r}")
            attempt.future.set_exception(error)


_Event = tuple[str, "_Attempt | None", float]


class _Attempt:
    """One submitted attempt: its Ray handle, and who settled it first."""

    def __init__(self, spec: TaskSpec, future: Future[TaskOutcome], submitted: float) -> None:
        self.spec = spec
        self.future = future
        self.submitted = submitted
        self.ref: Any = None
        self.generator: Any = None
        self.done: Future[Any] | None = None
        self.started: float | None = None
        self.pid = 0
        self._claimed = False
        self._lock = threading.Lock()
        self._start_lock = threading.Lock()

    def learn_start(self) -> float | None:
        """When a streaming attempt started (and where), once its worker said so; else None."""
        import ray

        with self._start_lock:
            if self.started is None and self.generator.next_ready():
                pid, started = ray.get(next(self.generator))
                self.pid, self.started = pid, min(started, time.time())
            return self.started

    def claim(self) -> bool:
        """True once: for whoever (result, timeout, cancel) settles the attempt."""
        with self._lock:
            if self._claimed:
                return False
            self._claimed = True
            return True


# -- what runs in the Ray worker ---------------------------------------------------------------


def _execute(payload: bytes) -> bytes:
    """Run a pickled spec with its output captured; the outcome comes back pickled."""
    import cloudpickle

    try:
        spec = cloudpickle.loads(payload)
    except Exception as exc:
        message = f"the task's inputs cannot be unpickled in the Ray worker: {exc!r}"
        outcome = TaskOutcome(None, message, "PicklingError", b"", time.time(), time.time(), 0)
        return bytes(cloudpickle.dumps(("outcome", outcome)))
    outcome = run_captured(spec)
    try:
        return bytes(cloudpickle.dumps(("outcome", outcome)))
    except Exception as exc:
        return bytes(cloudpickle.dumps(("unpicklable", f"{type(exc).__name__}: {exc}")))


def _execute_streaming(payload: bytes) -> Any:
    """Say where and when the task started, then run it (for tasks with a timeout)."""
    yield os.getpid(), time.time()
    yield _execute(payload)


@cache
def _remote_functions() -> tuple[Any, Any]:
    import ray

    plain = ray.remote(max_retries=0)(_execute)
    streaming = ray.remote(max_retries=0, num_returns="streaming")(_execute_streaming)
    return plain, streaming


# -- driver-side helpers -----------------------------------------------------------------------


def _dumps(spec: TaskSpec) -> bytes:
    import cloudpickle

    for fn in _callables(spec.fn):
        name = getattr(fn, "__module__", None)
        module = sys.modules.get(name) if isinstance(name, str) else None
        if module is not None and name not in _by_value and not _importable_anywhere(module):
            cloudpickle.register_pickle_by_value(module)
            _by_value.add(module.__name__)
    return bytes(cloudpickle.dumps(spec))


def _callables(fn: Callable[..., Any]) -> list[Callable[..., Any]]:
    """The function and what it wraps (``functools.wraps``, ``partial``)."""
    found: list[Callable[..., Any]] = []
    current: Any = fn
    while callable(current) and current not in found and len(found) < 8:
        found.append(current)
        current = getattr(current, "__wrapped__", None) or getattr(current, "func", None)
    return found


def _importable_anywhere(module: ModuleType) -> bool:
    """Whether a Ray worker imports this module too: shipyard, installed packages, stdlib."""
    if module.__name__ == "__main__":
        return False
    if module.__name__.partition(".")[0] == "shipyard":
        return True
    origin = getattr(module, "__file__", None)
    if origin is None:
        return True  # built in
    return str(Path(str(origin)).resolve()).startswith(_SHIPPED_WITH_PYTHON)


def _loads(spec: TaskSpec, data: bytes) -> TaskOutcome:
    import cloudpickle

    kind, body = cloudpickle.loads(data)
    if kind == "unpicklable":
        raise TaskResultError(spec.key, body)
    if not isinstance(body, TaskOutcome):
        raise BackendError(f"the Ray worker of task {spec.key!r} sent back {type(body)!r}")
    return body


def _ray_options(resources: dict[str, float]) -> dict[str, Any]:
    options: dict[str, Any] = {"num_cpus": float(resources.get("cpu", 1.0))}
    custom: dict[str, float] = {}
    for name, amount in resources.items():
        if name == "gpu":
            options["num_gpus"] = float(amount)
        elif name == "memory":
            options["memory"] = int(amount)
        elif name != "cpu":
            custom[name] = float(amount)
    if custom:
        options["resources"] = custom
    return options


def _infeasible(resources: dict[str, float]) -> str | None:
    """Why this machine's private Ray can never fit the request, or None (a cluster may scale)."""
    if not _local_totals:
        return None
    names = {"cpu": "CPU", "gpu": "GPU", "memory": "memory"}
    asked = {"cpu": 1.0, **resources}
    for name, amount in asked.items():
        if amount < 0:
            return f"resource {name!r} must not be negative, got {amount:g}"
        have = _local_totals.get(names.get(name, name), 0.0)
        if amount > have:
            return (
                f"the task asks for {amount:g} {name} but the local Ray instance has {have:g}; "
                "lower the task's resources or run on a Ray cluster (executor ray://host:port)"
            )
    return None


def _failed(
    spec: TaskSpec, message: str, error_type: str, started: float, pid: int = 0
) -> TaskOutcome:
    return TaskOutcome(
        None, message, error_type, (message + "\n").encode(), started, time.time(), pid
    )
