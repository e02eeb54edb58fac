"""The executor contract, run over every back end (P2 adds "ray" to EXECUTORS)."""

from __future__ import annotations

import ctypes
import logging
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import cloudpickle
import pytest

from shipyard.errors import TaskResultError
from shipyard.executors import Executor, TaskSpec, open_executor

# Task processes unpickle these functions: send them by value (pytest's importlib mode
# gives this module a name a child process cannot import).
cloudpickle.register_pickle_by_value(sys.modules[__name__])

EXECUTORS = [
    "local",
    # One test process runs every Ray test, on one Ray instance (ray.init costs ~6 s, ~1 GB).
    pytest.param("ray", marks=[pytest.mark.ray, pytest.mark.xdist_group("ray")]),
]


@pytest.fixture(params=EXECUTORS)
def executor(request: pytest.FixtureRequest) -> Iterator[Executor]:
    with open_executor(request.param, max_workers=2) as opened:
        yield opened


def _double(x: int) -> int:
    print(f"doubling {x}")
    logging.getLogger("shipyard.test").warning("logged %s", x)
    return 2 * x


def _boom() -> None:
    print("about to fail")
    raise ValueError("no good")


def _c_sleep(seconds: float) -> int:
    libc = ctypes.CDLL(None)
    libc.sleep(int(seconds))  # sleeps in C: only killing the process stops it
    return os.getpid()


def _pid_then_sleep(path: str, seconds: float) -> None:
    Path(path).write_text(str(os.getpid()))
    _c_sleep(seconds)


def _lock() -> object:
    import threading

    return threading.Lock()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("isolate", [False, True])
def test_a_task_returns_its_value_and_its_captured_output(
    executor: Executor, isolate: bool
) -> None:
    outcome = executor.submit(TaskSpec("r", "double-0", _double, (21,), isolate=isolate)).result(30)
    assert outcome.ok and outcome.value == 42
    assert b"doubling 21" in outcome.logs and b"logged 21" in outcome.logs
    assert outcome.ended >= outcome.started > 0
    if executor.name == "local":  # threads in this process unless isolated
        assert (outcome.pid == os.getpid()) is (not isolate)


@pytest.mark.parametrize("isolate", [False, True])
def test_a_task_that_raises_resolves_to_an_error_with_its_traceback(
    executor: Executor, isolate: bool
) -> None:
    outcome = executor.submit(TaskSpec("r", "boom-0", _boom, isolate=isolate)).result(30)
    assert not outcome.ok and outcome.error_type == "ValueError"
    assert outcome.error is not None and "no good" in outcome.error
    assert b"about to fail" in outcome.logs and b"Traceback" in outcome.logs


def test_a_timeout_kills_a_task_sleeping_in_c(executor: Executor, tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    started = time.monotonic()
    outcome = executor.submit(
        TaskSpec("r", "sleep-0", _pid_then_sleep, (str(pid_file), 30), timeout=1.0)
    ).result(30)
    assert outcome.error_type == "TaskTimeoutError"
    assert time.monotonic() - started < 10
    pid = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid)


def test_cancel_kills_a_running_isolated_task(executor: Executor, tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    future = executor.submit(
        TaskSpec("r", "sleep-0", _pid_then_sleep, (str(pid_file), 30), isolate=True)
    )
    deadline = time.monotonic() + 20
    while not pid_file.exists() or not pid_file.read_text():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    executor.cancel(future)
    outcome = future.result(10)
    assert outcome.error_type == "TaskCancelledError"
    pid = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid)


def test_an_unpicklable_result_from_a_process_names_the_task(executor: Executor) -> None:
    future = executor.submit(TaskSpec("r", "lock-3", _lock, isolate=True))
    with pytest.raises(TaskResultError, match="lock-3"):
        future.result(30)
