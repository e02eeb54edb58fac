"""What the Ray executor does beyond the executor contract: real kills, resources, pickling.

All Ray tests of a test process share one local Ray instance (``ray.init`` costs seconds and
a gigabyte), so they carry the ``xdist_group("ray")`` mark: one xdist worker runs them all.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cloudpickle
import pytest

import shipyard as sy
from shipyard.app import build
from shipyard.errors import ConflictError, TaskResultError
from shipyard.executors import TaskSpec, open_executor
from shipyard.executors.ray import RayExecutor, connect
from shipyard.settings import Settings

pytestmark = [pytest.mark.ray, pytest.mark.xdist_group("ray")]


@pytest.fixture(scope="module")
def ray_cpus() -> int:
    """The CPUs of this process's Ray instance, started once (2 unless started before)."""
    import ray

    connect(num_cpus=2)
    return int(ray.cluster_resources()["CPU"])


@pytest.fixture
def executor(ray_cpus: int) -> Iterator[RayExecutor]:
    """A Ray executor on the shared instance; its running tasks are killed afterwards."""
    opened = RayExecutor()
    yield opened
    opened.shutdown(wait=False)


def sleep_in_c(seconds: int) -> str:
    """Sleep inside libc, where no Python signal handler can interrupt it."""
    import ctypes

    ctypes.CDLL(None).sleep(seconds)
    return "woke"


def assigned_resources() -> dict[str, float]:
    import ray

    resources: dict[str, float] = ray.get_runtime_context().get_assigned_resources()
    return resources


def a_lock() -> threading.Lock:
    return threading.Lock()


def spec(key: str, fn: Any, *args: Any, **options: Any) -> TaskSpec:
    return TaskSpec("run-1", key, fn, args, **options)


def wait_until_gone(pid: int, within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def test_timeout_kills_a_worker_sleeping_in_c_code(executor: RayExecutor) -> None:
    started = time.monotonic()
    outcome = executor.submit(spec("sleepy-0", sleep_in_c, 120, timeout=1.0)).result(30)
    elapsed = time.monotonic() - started

    assert outcome.error_type == "TaskTimeoutError"
    assert "sleepy-0" in (outcome.error or "") and "1s" in (outcome.error or "")
    assert 1.0 <= elapsed < 10
    assert outcome.pid not in (0, os.getpid())
    assert wait_until_gone(outcome.pid), "the worker that ran past its timeout still lives"


def test_timeout_counts_from_the_start_not_from_the_wait_for_a_cpu(
    executor: RayExecutor, ray_cpus: int
) -> None:
    busy = [executor.submit(spec(f"busy-{n}", sleep_in_c, 2)) for n in range(ray_cpus)]
    queued = executor.submit(spec("queued-0", sleep_in_c, 1, timeout=1.8))

    outcome = queued.result(30)

    assert outcome.error is None and outcome.value == "woke"
    assert [future.result(30).value for future in busy] == ["woke"] * ray_cpus
    assert outcome.started >= min(future.result().ended for future in busy) - 0.5


def test_cancel_kills_the_running_worker(executor: RayExecutor) -> None:
    future = executor.submit(spec("long-0", sleep_in_c, 120, timeout=60))
    time.sleep(1.5)  # it runs (and has said so) by now

    began = time.monotonic()
    executor.cancel(future)
    outcome = future.result(10)

    assert outcome.error_type == "TaskCancelledError"
    assert time.monotonic() - began < 5
    assert outcome.pid not in (0, os.getpid())
    assert wait_until_gone(outcome.pid), "the cancelled worker still lives"


def test_a_function_from_a_module_workers_cannot_import_runs(
    executor: RayExecutor, tmp_path: Path
) -> None:
    source = tmp_path / "flows_somewhere.py"
    source.write_text(
        "FACTOR = 7\n\ndef scale(x):\n    print('scaling', x)\n    return x * FACTOR\n"
    )
    module_spec = importlib.util.spec_from_file_location("flows_somewhere_p2", source)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    sys.modules["flows_somewhere_p2"] = module
    try:
        module_spec.loader.exec_module(module)
        outcome = executor.submit(spec("scale-0", module.scale, 6)).result(30)
    finally:
        del sys.modules["flows_somewhere_p2"]

    assert outcome.error is None, outcome.error
    assert outcome.value == 42
    assert outcome.logs == b"scaling 6\n"


def test_resources_become_ray_resources(executor: RayExecutor, ray_cpus: int) -> None:
    outcome = executor.submit(
        spec("fat-0", assigned_resources, resources={"cpu": 2.0, "memory": 64 * 2**20})
    ).result(30)

    assert outcome.error is None, outcome.error
    assert outcome.value["CPU"] == 2.0
    assert outcome.value["memory"] == 64 * 2**20


def test_resources_the_local_instance_cannot_hold_fail_the_task_clearly(
    executor: RayExecutor, ray_cpus: int
) -> None:
    outcome = executor.submit(spec("huge-0", sleep_in_c, 0, resources={"cpu": 64.0})).result(5)

    assert outcome.error_type == "InvalidArgumentError"
    assert f"asks for 64 cpu but the local Ray instance has {ray_cpus}" in (outcome.error or "")


def test_an_unpicklable_result_raises_task_result_error_naming_the_task(
    executor: RayExecutor,
) -> None:
    future = executor.submit(spec("locky-0", a_lock))

    with pytest.raises(TaskResultError, match="locky-0"):
        future.result(30)


def test_unpicklable_inputs_fail_the_task_not_the_executor(executor: RayExecutor) -> None:
    outcome = executor.submit(spec("input-0", str, threading.Lock())).result(5)

    assert outcome.error_type == "PicklingError"
    assert "cannot be pickled" in (outcome.error or "")


def write_pid_then_sleep(path: str) -> None:
    Path(path).write_text(str(os.getpid()))
    sleep_in_c(120)


def test_shutdown_without_wait_kills_running_tasks(ray_cpus: int, tmp_path: Path) -> None:
    executor = RayExecutor()
    pid_file = tmp_path / "pid"
    future = executor.submit(spec("left-0", write_pid_then_sleep, str(pid_file)))
    deadline = time.monotonic() + 30
    while not pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.1)  # let the write finish

    executor.shutdown(wait=False)

    assert future.result(10).error_type == "TaskCancelledError"
    assert wait_until_gone(int(pid_file.read_text())), "the worker still lives after shutdown"
    with pytest.raises(RuntimeError, match="after shutdown"):
        executor.submit(spec("late-0", sleep_in_c, 0))


def test_open_executor_gives_ray_and_one_process_keeps_one_ray(ray_cpus: int) -> None:
    with open_executor("ray") as opened:
        assert isinstance(opened, RayExecutor)
        assert opened.address == "local"
        assert opened.submit(spec("id-0", abs, -3)).result(30).value == 3

    with pytest.raises(ConflictError, match=r"ray://127\.0\.0\.1:1"):
        open_executor("ray://127.0.0.1:1")


# -- a real pipeline on Ray ------------------------------------------------------------------

cloudpickle.register_pickle_by_value(sys.modules[__name__])


@sy.task
def r_numbers(n: int) -> list[int]:
    return list(range(n))


@sy.task(timeout=60)
def r_square(x: int) -> int:
    print(f"squaring {x} in {os.getpid()}")
    return x * x


@sy.task(retries=1, retry_backoff=0.0)
def r_total(values: list[int], marker: str) -> int:
    if not Path(marker).exists():
        Path(marker).write_text("tried")
        raise RuntimeError("the first attempt fails")
    return sum(values)


@sy.pipeline(name="ray-fan")
def ray_fan(n: int = 5, marker: str = "") -> int:
    return r_total(r_square.map(r_numbers(n)), marker)  # type: ignore[no-any-return]


def test_a_pipeline_runs_on_ray_with_the_same_result_as_locally(
    ray_cpus: int, tmp_path: Path
) -> None:
    root = tmp_path / "project"
    root.mkdir()
    with build(Settings.load(root, env={})) as project:
        runs = {
            executor: project.pipelines.run(
                ray_fan, {"n": 6, "marker": str(tmp_path / executor)}, executor=executor
            )
            for executor in ("local", "ray")
        }
        tasks = {name: project.pipelines.tasks(run.id) for name, run in runs.items()}
        logs = dict(project.pipelines.logs(runs["ray"].id))

    assert runs["ray"].status == "succeeded", runs["ray"].error
    assert runs["ray"].result == runs["local"].result == 55
    assert runs["ray"].executor == "ray"
    done = {name: sorted((t.key, t.status) for t in found) for name, found in tasks.items()}
    assert done["ray"] == done["local"] and len(done["ray"]) == 8
    by_key = {t.key: t for t in tasks["ray"]}
    assert by_key["r_total-0"].attempt == 2  # the engine's retry ran on Ray too
    assert by_key["r_square-3"].pid not in (None, os.getpid())
    assert "squaring 3 in" in logs["r_square-3"]
    assert "the first attempt fails" in logs["r_total-0"]
