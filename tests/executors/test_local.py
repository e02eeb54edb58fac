"""The local executor: threads for plain tasks, processes for isolated and timed ones."""

from __future__ import annotations

import os
import sys
import threading
import time

import cloudpickle
import pytest

from shipyard.errors import InvalidArgumentError
from shipyard.executors import TaskSpec, open_executor
from shipyard.executors.local import LocalExecutor

cloudpickle.register_pickle_by_value(sys.modules[__name__])


def _talk(name: str, barrier: threading.Barrier) -> str:
    for i in range(50):
        print(f"{name} line {i}")
        if i == 10:
            barrier.wait(5)  # both tasks print at the same time
    return name


def _sleep(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def _pid() -> int:
    return os.getpid()


def test_output_of_concurrent_tasks_goes_to_each_task_only() -> None:
    barrier = threading.Barrier(2)
    with LocalExecutor(max_workers=2) as executor:
        a = executor.submit(TaskSpec("r", "a-0", _talk, ("a", barrier)))
        b = executor.submit(TaskSpec("r", "b-0", _talk, ("b", barrier)))
        logs_a, logs_b = a.result(10).logs.decode(), b.result(10).logs.decode()
    assert logs_a.count("a line") == 50 and "b line" not in logs_a
    assert logs_b.count("b line") == 50 and "a line" not in logs_b


def test_output_outside_tasks_still_reaches_the_real_stream(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with LocalExecutor(max_workers=1) as executor:
        executor.submit(TaskSpec("r", "a-0", _sleep, (0.0,))).result(10)
        print("after the task")
    assert "after the task" in capsys.readouterr().out


def test_plain_tasks_run_in_parallel_threads_of_the_driver() -> None:
    with LocalExecutor(max_workers=2) as executor:
        started = time.monotonic()
        futures = [executor.submit(TaskSpec("r", f"s-{i}", _sleep, (0.3,))) for i in range(4)]
        assert all(f.result(10).ok for f in futures)
        elapsed = time.monotonic() - started
        assert executor.submit(TaskSpec("r", "p-0", _pid)).result(10).value == os.getpid()
    assert 0.55 < elapsed < 1.0  # 4 x 0.3 s on 2 workers: two rounds


def test_a_timed_task_runs_in_a_process_of_its_own() -> None:
    with LocalExecutor(max_workers=1) as executor:
        outcome = executor.submit(TaskSpec("r", "p-0", _pid, timeout=30)).result(30)
    assert outcome.ok and outcome.value != os.getpid() and outcome.pid == outcome.value


def test_an_unknown_executor_lists_the_known_ones() -> None:
    with pytest.raises(InvalidArgumentError, match="known: local, ray"):
        open_executor("spark://x")
