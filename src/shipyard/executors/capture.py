"""Run one task with its stdout, stderr and logging records captured for that task only.

In a process running many tasks on threads, ``sys.stdout`` and ``sys.stderr`` are replaced
once by routers that send a write to the buffer of the task running on the writing thread,
and to the real stream otherwise; one handler on the root logger does the same for logging
records. Output from threads a task starts itself, and output written straight to file
descriptor 1 or 2 by C code, is not routed to the task.
"""

from __future__ import annotations

import io
import logging
import os
import sys
import threading
import time
import traceback
from typing import Any, TextIO

from shipyard.domain.pipelines import CURRENT_PIPELINE_RUN, TASK_DATASET_READS
from shipyard.executors.base import TaskOutcome, TaskSpec

__all__ = ["run_captured"]

_local = threading.local()
_install_lock = threading.Lock()
_FORMAT = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")


def _buffer() -> list[str] | None:
    return getattr(_local, "buffer", None)


class _Router(io.TextIOBase):
    """A text stream that writes to the running task's buffer, else to ``target``."""

    def __init__(self, target: TextIO) -> None:
        super().__init__()
        self.target = target

    def write(self, text: str) -> int:
        buffer = _buffer()
        if buffer is None:
            return self.target.write(text)
        buffer.append(text)
        return len(text)

    def flush(self) -> None:
        if _buffer() is None:
            self.target.flush()

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return self.target.isatty()

    def fileno(self) -> int:
        return self.target.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.target, "encoding", "utf-8")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.target, name)


class _LogRouter(logging.Handler):
    """Sends records logged on a task's thread to its buffer; others where they went."""

    def emit(self, record: logging.LogRecord) -> None:
        buffer = _buffer()
        if buffer is not None:
            try:
                buffer.append(_FORMAT.format(record) + "\n")
            except Exception:  # a bad format string must not fail the task
                self.handleError(record)
            return
        root = logging.getLogger()
        if (
            len(root.handlers) == 1
            and logging.lastResort is not None
            and record.levelno >= logging.lastResort.level
        ):
            # Outside tasks, keep Python's default of printing warnings when nothing else
            # is configured (this handler would otherwise silence logging.lastResort).
            logging.lastResort.handle(record)


_handler = _LogRouter()


def _install() -> None:
    if (
        isinstance(sys.stdout, _Router)
        and isinstance(sys.stderr, _Router)
        and _handler in logging.getLogger().handlers
    ):
        return
    with _install_lock:
        if not isinstance(sys.stdout, _Router):
            sys.stdout = _Router(sys.stdout)
        if not isinstance(sys.stderr, _Router):
            sys.stderr = _Router(sys.stderr)
        root = logging.getLogger()
        if _handler not in root.handlers:
            root.addHandler(_handler)


def run_captured(spec: TaskSpec) -> TaskOutcome:
    """Run ``spec.fn`` here with its output captured; an exception becomes the outcome's error.

    Args:
        spec: the task attempt to run.

    Returns:
        The outcome: value, or error and traceback (which also ends the logs).
    """
    _install()
    buffer: list[str] = []
    previous = _buffer()
    _local.buffer = buffer
    token = CURRENT_PIPELINE_RUN.set(spec.run_id)
    reads: list[tuple[str, str]] = []
    reads_token = TASK_DATASET_READS.set(reads)
    value: Any = None
    error: str | None = None
    error_type: str | None = None
    started = time.time()
    try:
        value = spec.fn(*spec.args, **spec.kwargs)
    except (Exception, SystemExit) as exc:
        error = traceback.format_exc()
        error_type = type(exc).__name__
        buffer.append(error)
    finally:
        ended = time.time()
        _local.buffer = previous
        CURRENT_PIPELINE_RUN.reset(token)
        TASK_DATASET_READS.reset(reads_token)
    logs = "".join(buffer).encode("utf-8", "replace") if buffer else b""
    return TaskOutcome(value, error, error_type, logs, started, ended, os.getpid(), tuple(reads))
