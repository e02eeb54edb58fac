"""The engine of one pipeline run: builds the DAG from the body's task calls and runs it.

The body runs on the caller's thread with this runner as the current ``TaskRunner``: each
task call becomes a node, started as soon as its upstream nodes have succeeded. Completion
callbacks (on the executor's threads) finish a node, retry it after an exponential backoff
with jitter, or cancel its dependents when it failed; all state sits behind one lock and
every state change is queued to the ``RunRecorder``, which writes in batches.
"""

from __future__ import annotations

import json
import random
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import CancelledError, Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from shipyard.domain.pipelines import TERMINAL
from shipyard.errors import PipelineFailedError, TaskCancelledError, TaskResultError
from shipyard.executors.base import Executor, TaskOutcome, TaskSpec
from shipyard.services.pipeline_caching import (
    DATASET_INPUTS,
    ResultStore,
    code_digest,
    dataset_key,
    input_digest,
    load_task_result,
    store_result,
)
from shipyard.services.pipeline_records import RunRecorder
from shipyard.services.pipeline_tasks import RUNNER, Task, TaskHandle

__all__ = ["CacheLookup", "Event", "Runner", "task_row"]

CacheLookup = Callable[[str], str | None]  # cache key -> stored result digest
Event = Callable[[str, str, str], None]  # (kind, task key, message): retry notifications
_NO_RETRY = {"TaskCancelledError", "PicklingError", "TaskResultError"}


@dataclass(eq=False)
class _Node:
    key: str
    task: Task
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    upstream: list[_Node]
    waiting: int = 0
    dependents: list[_Node] = field(default_factory=list)
    status: str = "pending"
    attempt: int = 0
    value: Any = None
    error: str | None = None
    logs: list[bytes] = field(default_factory=list)
    started: float | None = None
    ended: float | None = None
    pid: int | None = None
    cache_key: str | None = None
    result_digest: str | None = None
    dataset_reads: tuple[tuple[str, str], ...] = ()
    future: Future[TaskOutcome] | None = None
    done: threading.Event | None = None


class Runner:
    """Runs one pipeline run's body and DAG on an executor.

    Args:
        run_id: the pipeline run.
        executor: where attempts run.
        content: where cached results and the run's results are stored.
        recorder: queues row changes (started by the caller).
        use_cache: whether ``cache=True`` tasks may reuse earlier results.
        lookup: finds a stored result by cache key.
        content_of: the content digest a dataset reference resolves to now (None when it
            no longer resolves): a stored result made from a moving reference is reused
            only while it resolves to the same content.
        reuse: results of the run being resumed, ``{task key: (cache key, digest)}``.
        on_event: told of retries.
    """

    def __init__(
        self,
        run_id: str,
        executor: Executor,
        content: ResultStore,
        recorder: RunRecorder,
        *,
        use_cache: bool,
        lookup: CacheLookup,
        reuse: dict[str, tuple[str, str]],
        on_event: Event,
        content_of: Callable[[str], str | None],
    ) -> None:
        self.run_id = run_id
        self._executor = executor
        self._content = content
        self._recorder = recorder
        self._use_cache = use_cache
        self._lookup = lookup
        self._reuse = reuse
        self._content_of = content_of
        self._on_event = on_event
        self._lock = threading.RLock()
        self._nodes: dict[str, _Node] = {}
        self._counts: dict[str, int] = {}
        self._open = 0
        self._idle = threading.Event()
        self._idle.set()
        self.cancelled = False

    # -- the body's side --------------------------------------------------------------

    def execute(self, fn: Callable[..., Any], params: dict[str, Any]) -> tuple[Any, str | None]:
        """Run the body, wait for every task; the resolved result and the body's error."""
        token = RUNNER.set(self)
        error: str | None = None
        returned: Any = None
        try:
            returned = fn(**params)
        except Exception:
            error = traceback.format_exc()
        finally:
            RUNNER.reset(token)
        self._idle.wait()
        if error is None:
            try:
                returned = self._resolve(returned)
            except (PipelineFailedError, TaskCancelledError) as exc:
                error = str(exc)
        return returned, error

    def call(
        self,
        task: Task,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        after: Sequence[TaskHandle] = (),
    ) -> TaskHandle:
        """Add a call to the DAG; start it now if its inputs (and ``after``) are done."""
        upstream: list[_Node] = []
        _walk(args, upstream, self._nodes)
        _walk(kwargs, upstream, self._nodes)
        _walk(list(after), upstream, self._nodes)
        with self._lock:
            number = self._counts.get(task.name, 0)
            self._counts[task.name] = number + 1
            node = _Node(f"{task.name}-{number}", task, args, kwargs, upstream)
            self._nodes[node.key] = node
            self._open += 1
            if self._open == 1:  # only the idle -> busy step needs the event's lock
                self._idle.clear()
            failed = [u for u in upstream if u.status in TERMINAL and not _ok(u)]
            if self.cancelled or failed:
                reason = "the run was cancelled" if self.cancelled else f"{failed[0].key} failed"
                self._finish(node, "cancelled", f"not run: {reason}")
                return TaskHandle(node.key, self)
            for parent in upstream:
                if parent.status not in TERMINAL:
                    node.waiting += 1
                    parent.dependents.append(node)
            self._record(node)
            ready = node.waiting == 0
        if ready:
            self._launch([node])
        return TaskHandle(node.key, self)

    def wait(self, key: str, timeout: float | None = None) -> Any:
        """Block until ``key`` ends; its value."""
        node = self._nodes[key]
        with self._lock:
            if node.status not in TERMINAL and node.done is None:
                node.done = threading.Event()
            done = node.done
        if done is not None:
            done.wait(timeout)
        if node.status in ("succeeded", "cached"):
            return node.value
        if node.status == "cancelled":
            raise TaskCancelledError(key)
        raise PipelineFailedError(self.run_id, [key])

    def cancel(self) -> None:
        """Stop the run: kill running process tasks, mark the rest cancelled."""
        with self._lock:
            self.cancelled = True
            live = [n for n in self._nodes.values() if n.status not in TERMINAL]
        for node in live:
            if node.future is not None:
                self._executor.cancel(node.future)
            with self._lock:
                if node.status not in TERMINAL:
                    self._finish(node, "cancelled", "cancelled")

    # -- results ---------------------------------------------------------------------

    def nodes(self) -> list[_Node]:
        """Every task call so far, in call order."""
        return list(self._nodes.values())

    def failed_keys(self) -> list[str]:
        """Keys of the tasks that failed."""
        return [n.key for n in self._nodes.values() if n.status == "failed"]

    def keep_results(self) -> None:
        """Store every succeeded task's value that is not stored yet (for resume)."""
        for node in self.nodes():
            if node.status == "succeeded" and node.result_digest is None:
                try:
                    node.result_digest = store_result(
                        self._content, node.key, node.value, node.dataset_reads
                    )
                except TaskResultError:
                    continue  # a resume reruns this task
                self._record(node)

    # -- the DAG's side ---------------------------------------------------------------

    def _launch(self, ready: list[_Node]) -> None:
        stack = list(ready)
        while stack:
            node = stack.pop()
            stack.extend(self._start(node))

    def _start(self, node: _Node) -> list[_Node]:
        """Start a node whose inputs are ready; the nodes that became ready at once."""
        args = _resolve_inputs(node.args)
        kwargs = _resolve_inputs(node.kwargs)
        node.cache_key = input_digest(
            code_digest(node.task.fn), (_keyed(node.args), _keyed(node.kwargs))
        )
        digest = self._stored(node)
        if digest is not None:
            try:
                stored = load_task_result(self._content, digest)
            except Exception:  # a lost or unreadable result: run the task instead
                stored = None
            moved = self._moved(stored.dataset_reads) if stored is not None else None
            if moved:
                node.logs.append(f"cached result not used: {moved}\n".encode())
            elif stored is not None:
                node.value = stored.value
                node.dataset_reads = stored.dataset_reads
                node.result_digest = digest
                node.started = node.ended = time.time()
                with self._lock:
                    return self._finish(node, "cached", None)
        node.args, node.kwargs = args, kwargs
        self._submit(node)
        return []

    def _moved(self, reads: tuple[tuple[str, str], ...]) -> str | None:
        """Which dataset reference a stored result was made from resolves otherwise now."""
        for reference, digest in reads:
            now = self._content_of(reference)
            if now != digest:
                return f"dataset {reference} " + (
                    "no longer resolves" if now is None else "now has other content"
                )
        return None

    def _stored(self, node: _Node) -> str | None:
        if node.cache_key is None:
            return None
        previous = self._reuse.get(node.key)
        if previous is not None and previous[0] == node.cache_key:
            return previous[1]
        if self._use_cache and node.task.options.cache:
            return self._lookup(node.cache_key)
        return None

    def _submit(self, node: _Node) -> None:
        options = node.task.options
        with self._lock:
            if node.status in TERMINAL:
                return
            node.attempt += 1
            node.status = "running"
            node.started = time.time()
            self._record(node)
        spec = TaskSpec(
            self.run_id,
            node.key,
            node.task.fn,
            node.args,
            node.kwargs,
            options.timeout,
            options.resources,
            options.isolate,
        )
        future = self._executor.submit(spec)
        node.future = future
        future.add_done_callback(lambda f: self._on_done(node, f))

    def _on_done(self, node: _Node, future: Future[TaskOutcome]) -> None:
        error: str | None
        error_type: str | None
        try:
            outcome = future.result()
        except CancelledError:
            error, error_type = str(TaskCancelledError(node.key)), "TaskCancelledError"
        except Exception as exc:
            error, error_type = str(exc), type(exc).__name__
        else:
            error, error_type = outcome.error, outcome.error_type
            node.pid = outcome.pid
            node.started, node.ended = outcome.started, outcome.ended
            if outcome.logs:
                header = f"--- attempt {node.attempt} ---\n".encode() if node.attempt > 1 else b""
                node.logs.append(header + outcome.logs)
            if error is None:
                node.value = outcome.value
                node.dataset_reads = outcome.dataset_reads
                if node.task.options.cache and node.cache_key is not None:
                    try:
                        node.result_digest = store_result(
                            self._content, node.key, node.value, node.dataset_reads
                        )
                    except TaskResultError as exc:
                        error, error_type = str(exc), "TaskResultError"
                        node.logs.append(f"{exc}\n".encode())
        if error is None:
            self._done(node, "succeeded", None)
            return
        options = node.task.options
        if self.cancelled or error_type == "TaskCancelledError":
            self._done(node, "cancelled", error)
        elif node.attempt <= options.retries and error_type not in _NO_RETRY:
            delay = options.retry_backoff * 2 ** (node.attempt - 1)
            delay *= 1 + random.uniform(-options.retry_jitter, options.retry_jitter)
            with self._lock:
                node.status = "retrying"
                node.error = error
                self._record(node)
            self._on_event("retry", node.key, f"attempt {node.attempt} failed: {error_type}")
            timer = threading.Timer(max(0.0, delay), self._submit, (node,))
            timer.daemon = True
            timer.start()
        else:
            self._done(node, "failed", error)

    def _done(self, node: _Node, status: str, error: str | None) -> None:
        with self._lock:
            if node.status in TERMINAL:  # cancelled while it ran
                return
            ready = self._finish(node, status, error)
        self._launch(ready)

    def _finish(self, node: _Node, status: str, error: str | None) -> list[_Node]:
        """Mark ``node`` ended (lock held); the dependents that became ready."""
        node.status = status
        node.error = error
        node.ended = node.ended or time.time()
        node.args, node.kwargs = (), {}  # free the inputs
        self._record(node)
        self._open -= 1
        if node.done is not None:
            node.done.set()
        ready: list[_Node] = []
        for child in node.dependents:
            if child.status in TERMINAL:
                continue
            if _ok(node):
                child.waiting -= 1
                if child.waiting == 0 and not self.cancelled:
                    ready.append(child)
            else:
                ready += self._finish(child, "cancelled", f"not run: {node.key} {status}")
        node.dependents = []
        if self._open == 0:
            self._idle.set()
        return ready

    def _record(self, node: _Node) -> None:
        self._recorder.task_changed(node)

    def _resolve(self, value: Any) -> Any:
        if isinstance(value, TaskHandle):
            return self.wait(value.key)
        if isinstance(value, list):
            return [self._resolve(v) for v in value]
        if isinstance(value, tuple):
            return tuple(self._resolve(v) for v in value)
        if isinstance(value, dict):
            return {k: self._resolve(v) for k, v in value.items()}
        return value


def _ok(node: _Node) -> bool:
    return node.status in ("succeeded", "cached")


def _walk(value: Any, found: list[_Node], nodes: dict[str, _Node]) -> None:
    if isinstance(value, TaskHandle):
        found.append(nodes[value.key])
    elif isinstance(value, (list, tuple)):
        for item in value:
            _walk(item, found, nodes)
    elif isinstance(value, dict):
        for item in value.values():
            _walk(item, found, nodes)


def _resolve_inputs(value: Any) -> Any:
    # Upstream values replace handles (the upstream nodes have succeeded).
    if isinstance(value, TaskHandle):
        node: _Node = value._runner._nodes[value.key]  # type: ignore[attr-defined]
        return node.value
    if isinstance(value, list):
        return [_resolve_inputs(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_resolve_inputs(v) for v in value)
    if isinstance(value, dict):
        return {k: _resolve_inputs(v) for k, v in value.items()}
    return value


def _keyed(value: Any) -> Any:
    # What a cache key hashes for an input: an upstream's result digest when the upstream
    # is a cached task (its result is always stored), else the upstream call's cache key;
    # a dataset version's content digest for a dataset handle or version.
    if isinstance(value, TaskHandle):
        node: _Node = value._runner._nodes[value.key]  # type: ignore[attr-defined]
        if node.task.options.cache and node.result_digest:
            return ("__upstream__", node.result_digest)
        return ("__upstream__", node.cache_key)
    if isinstance(value, DATASET_INPUTS):  # by its content, not its reference
        return dataset_key(value)
    if isinstance(value, list):
        return [_keyed(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_keyed(v) for v in value)
    if isinstance(value, dict):
        return {k: _keyed(v) for k, v in value.items()}
    return value


def _upstream_json(node: _Node) -> str:
    if not node.upstream:
        return "[]"
    return json.dumps(list(dict.fromkeys(u.key for u in node.upstream)))


def _time(moment: float | None) -> datetime | None:
    return None if moment is None else datetime.fromtimestamp(moment, UTC)


def task_row(node: _Node) -> tuple[dict[str, Any], bytes | None]:
    """A node's ``task_runs`` row (every column but the run id), and its logs once ended."""
    ended = node.status in TERMINAL
    row = {
        "key": node.key,
        "task": node.task.name,
        "status": node.status,
        "attempt": node.attempt,
        "upstream": _upstream_json(node),
        "cache_key": node.cache_key,
        "result_digest": node.result_digest,
        "pid": node.pid,
        "started_at": _time(node.started),
        "ended_at": _time(node.ended) if ended else None,
        "heartbeat_at": None,
        "error": node.error,
    }
    return row, b"".join(node.logs) if ended and node.logs else None
