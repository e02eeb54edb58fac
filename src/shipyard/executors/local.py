"""The local executor: a thread pool for plain tasks, one process per isolated task.

Plain tasks run on threads of the driver's process: no pickling, no process start, so a
task costs microseconds and values pass between tasks in memory. A task with
``isolate=True`` or a timeout runs in a process of its own, so that a timeout or a cancel
really stops it (the process is killed, also while it sleeps in C code) and CPU work does
not hold the driver's GIL.

Processes come from a fork server (``multiprocessing`` "forkserver"): a clean server
process, started once, forks each task's process. Forking the driver itself is unsafe (it
has threads and open database connections that a fork would copy mid-use), and spawning a
fresh interpreter per task costs a full Python start and re-import; forking from the server
costs a few milliseconds and copies nothing of the driver. The driver's ``__main__`` (the
``shipyard`` command, pytest, a notebook) is not imported again in each task's process, as
``multiprocessing`` would do: a task's function travels by cloudpickle, by value or by an
importable module, and needs nothing from it.
"""

from __future__ import annotations

import contextlib
import io
import multiprocessing
import os
import sys
import threading
import time
import traceback
from concurrent.futures import Future, ThreadPoolExecutor
from multiprocessing import context as mp_context
from multiprocessing import forkserver, popen_forkserver, reduction, spawn, util
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any, ClassVar

from shipyard.errors import TaskCancelledError, TaskResultError, TaskTimeoutError
from shipyard.executors.base import Executor, TaskOutcome, TaskSpec
from shipyard.executors.capture import run_captured
from shipyard.settings import adopt_environment, process_environment

__all__ = ["LocalExecutor"]

_PRELOAD = ["cloudpickle", "shipyard.executors.capture"]


def default_workers() -> int:
    """Threads (and, separately, processes) a local executor runs at once by default."""
    return min(32, (os.cpu_count() or 1) + 4)


class LocalExecutor(Executor):
    """Runs tasks on this machine: threads for plain tasks, processes for isolated ones.

    Args:
        max_workers: tasks that run at once on threads, and separately in processes.
    """

    name: ClassVar[str] = "local"

    def __init__(self, max_workers: int | None = None) -> None:
        self.max_workers = max_workers or default_workers()
        self._threads = ThreadPoolExecutor(self.max_workers, thread_name_prefix="shipyard-task")
        self._monitors = ThreadPoolExecutor(self.max_workers, thread_name_prefix="shipyard-proc")
        self._children: dict[Future[TaskOutcome], _Child] = {}
        self._lock = threading.Lock()

    def submit(self, spec: TaskSpec) -> Future[TaskOutcome]:
        """Start one attempt on a thread, or in its own process when isolated or timed."""
        if not (spec.isolate or spec.timeout is not None):
            return self._threads.submit(run_captured, spec)
        future: Future[TaskOutcome] = Future()
        child = _Child(spec)
        with self._lock:
            self._children[future] = child
        future.add_done_callback(self._forget)
        self._monitors.submit(child.run, future)
        return future

    def cancel(self, future: Future[TaskOutcome]) -> None:
        """Kill the attempt's process; a thread attempt is cancelled only if not started."""
        with self._lock:
            child = self._children.get(future)
        if child is not None:
            child.cancel()
        else:
            future.cancel()

    def shutdown(self, wait: bool = True) -> None:
        """Stop taking tasks; kill running processes unless ``wait``."""
        if not wait:
            with self._lock:
                children = list(self._children.values())
            for child in children:
                child.cancel()
        self._threads.shutdown(wait=wait, cancel_futures=not wait)
        self._monitors.shutdown(wait=wait, cancel_futures=not wait)

    def _forget(self, future: Future[TaskOutcome]) -> None:
        with self._lock:
            self._children.pop(future, None)


class _Child:
    """One attempt in its own process, watched for its result, timeout and cancel."""

    def __init__(self, spec: TaskSpec) -> None:
        self.spec = spec
        self.process: Any = None
        self._cancelled = threading.Event()
        self._lock = threading.Lock()

    def cancel(self) -> None:
        self._cancelled.set()
        with self._lock:
            if self.process is not None and self.process.is_alive():
                self.process.kill()

    def run(self, future: Future[TaskOutcome]) -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            result = self._run()
        except BaseException as exc:
            future.set_exception(exc)
        else:
            future.set_result(result)

    def _run(self) -> TaskOutcome:
        import cloudpickle

        spec = self.spec
        started = time.time()
        try:
            payload = cloudpickle.dumps(spec)
        except Exception as exc:
            return _failed(spec, f"its inputs cannot be pickled: {exc!r}", "PicklingError", started)
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(_PRELOAD)
        reader, writer = context.Pipe(duplex=False)
        with self._lock:
            if self._cancelled.is_set():
                return _cancelled(spec, started, 0)
            self.process = _LeanProcess(
                target=_child_main,
                args=(payload, list(sys.path), process_environment(), str(Path.cwd()), writer),
                name=f"shipyard-{spec.key}",
                daemon=True,
            )
            self.process.start()
        writer.close()
        process = self.process
        try:
            deadline = None if spec.timeout is None else started + spec.timeout
            data: bytes | None = None
            while True:
                remaining = None if deadline is None else max(0.0, deadline - time.time())
                ready = wait([reader, process.sentinel], timeout=remaining)
                if reader in ready:
                    try:
                        data = reader.recv_bytes()
                    except EOFError:
                        data = None
                    break
                if process.sentinel in ready:
                    break
                if deadline is not None and time.time() >= deadline:
                    process.kill()
                    process.join()
                    return _failed(
                        spec,
                        str(TaskTimeoutError(spec.key, spec.timeout or 0.0)),
                        "TaskTimeoutError",
                        started,
                        process.pid,
                    )
            process.join()
        finally:
            reader.close()
            if process.is_alive():
                process.kill()
                process.join()
        if self._cancelled.is_set() and data is None:
            return _cancelled(spec, started, process.pid)
        if data is None:
            return _failed(
                spec,
                f"the process of task {spec.key!r} died with exit code {process.exitcode} "
                "(killed by the system? out of memory?)",
                "WorkerCrashedError",
                started,
                process.pid,
            )
        kind, body = cloudpickle.loads(data)
        if kind == "unpicklable":
            raise TaskResultError(spec.key, body)
        assert isinstance(body, TaskOutcome)
        return body


def _child_main(
    payload: bytes, path: list[str], env: dict[str, str], cwd: str, writer: Connection
) -> None:
    import cloudpickle

    # The task's function may be pickled by reference to a module the driver found on
    # its path (a test module, a project package): give the child the same path. The fork
    # server started with the driver's environment and directory of that moment; the task
    # sees those of now (SHIPYARD_URI set since, a chdir), as a child process would.
    sys.path[:0] = [entry for entry in path if entry not in sys.path]
    adopt_environment(env)
    with contextlib.suppress(OSError):
        os.chdir(cwd)
    try:
        spec = cloudpickle.loads(payload)
    except Exception:
        outcome = TaskOutcome(
            None, traceback.format_exc(), "PicklingError", b"", time.time(), time.time(), 0
        )
        writer.send_bytes(cloudpickle.dumps(("outcome", outcome)))
        return
    outcome = run_captured(spec)
    try:
        data = cloudpickle.dumps(("outcome", outcome))
    except Exception as exc:
        data = cloudpickle.dumps(("unpicklable", f"{type(exc).__name__}: {exc}"))
    writer.send_bytes(data)
    writer.close()


def _failed(
    spec: TaskSpec, message: str, error_type: str, started: float, pid: int | None = None
) -> TaskOutcome:
    return TaskOutcome(
        None, message, error_type, (message + "\n").encode(), started, time.time(), pid or 0
    )


def _cancelled(spec: TaskSpec, started: float, pid: int | None) -> TaskOutcome:
    return _failed(spec, str(TaskCancelledError(spec.key)), "TaskCancelledError", started, pid)


class _LeanPopen(popen_forkserver.Popen):
    """A fork-server start that leaves out the driver's ``__main__``.

    ``popen_forkserver.Popen._launch`` with one change: the preparation data sent to the
    child loses ``init_main_from_path`` / ``init_main_from_name``, which would make every
    task process import the driver's main script again (for ``shipyard run``, the whole
    CLI: hundreds of milliseconds a task).
    """

    def _launch(self, process_obj: Any) -> None:
        prep = spawn.get_preparation_data(process_obj._name)
        prep.pop("init_main_from_path", None)
        prep.pop("init_main_from_name", None)
        buf = io.BytesIO()
        mp_context.set_spawning_popen(self)
        try:
            reduction.dump(prep, buf)
            reduction.dump(process_obj, buf)
        finally:
            mp_context.set_spawning_popen(None)
        self.sentinel, w = forkserver.connect_to_new_process(self._fds)  # type: ignore[attr-defined]
        parent_w = os.dup(w)
        close = util.close_fds  # type: ignore[attr-defined]
        self.finalizer = util.Finalize(self, close, (parent_w, self.sentinel))
        with open(w, "wb", closefd=True) as out:  # noqa: PTH123 - a file descriptor
            out.write(buf.getbuffer())
        self.pid = forkserver.read_signed(self.sentinel)


class _LeanProcess(mp_context.ForkServerProcess):
    """A fork-server process started by ``_LeanPopen``."""

    @staticmethod
    def _Popen(process_obj: Any) -> Any:
        return _LeanPopen(process_obj)
