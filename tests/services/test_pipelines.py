"""Pipelines: the DAG, parameters, retries, caching, results, logs, reports and lineage."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import cloudpickle
import pyarrow as pa
import pytest
from sqlalchemy import select

import shipyard as sy
from shipyard.app import Shipyard
from shipyard.errors import InvalidArgumentError, PipelineFailedError
from shipyard.services.pipeline_gates import gate
from shipyard.stores.metadata.schema import lineage_edges, pipeline_runs

cloudpickle.register_pickle_by_value(sys.modules[__name__])

CALLS: dict[str, int] = {}


def _count(name: str) -> None:
    CALLS[name] = CALLS.get(name, 0) + 1


@sy.task
def nap(seconds: float, label: str) -> str:
    time.sleep(seconds)
    return label


@sy.task
def join(*parts: str) -> str:
    return "+".join(parts)


@sy.pipeline(name="diamond")
def diamond(seconds: float = 0.3) -> Any:
    left = nap(seconds, "left")
    right = nap(seconds, "right")
    return join(left, right)


@sy.task
def numbers(n: int) -> list[int]:
    return list(range(n))


@sy.task
def square(x: int) -> int:
    return x * x


@sy.task
def total(values: list[int]) -> int:
    return sum(values)


@sy.pipeline(name="fan")
def fan(n: int = 5, scale: float = 1.0, verbose: bool = False) -> float:
    parts = square.map(numbers(n))
    return total(parts)  # type: ignore[no-any-return]


def test_independent_tasks_run_in_parallel_and_dependents_wait(project: Shipyard) -> None:
    started = time.monotonic()
    run = project.pipelines.run(diamond, {"seconds": 0.4})
    elapsed = time.monotonic() - started
    assert run.status == "succeeded" and run.result == "left+right"
    assert elapsed < 0.75  # two 0.4 s naps at once, not one after the other
    tasks = {t.key: t for t in project.pipelines.tasks(run.id)}
    assert set(tasks) == {"nap-0", "nap-1", "join-0"}
    assert tasks["join-0"].upstream == ("nap-0", "nap-1")
    ends = [tasks["nap-0"].ended_at, tasks["nap-1"].ended_at]
    assert tasks["join-0"].started_at is not None and None not in ends
    assert tasks["join-0"].started_at >= max(e for e in ends if e is not None)
    assert all(t.status == "succeeded" and t.attempt == 1 for t in tasks.values())


def test_map_fans_out_and_a_list_of_handles_fans_in(project: Shipyard) -> None:
    run = project.pipelines.run(fan, {"n": 4})
    assert run.result == 0 + 1 + 4 + 9
    tasks = {t.key: t for t in project.pipelines.tasks(run.id)}
    assert set(tasks) == {"numbers-0", "square-0", "square-1", "square-2", "square-3", "total-0"}
    assert tasks["total-0"].upstream == ("square-0", "square-1", "square-2", "square-3")
    assert tasks["square-3"].upstream == ("numbers-0",)  # items from a task: drawn after it
    stored = project.pipelines.get(run.id)
    assert stored.status == "succeeded" and stored.result_digest is not None
    assert project.pipelines.result(run.id) == 14


def test_parameters_are_converted_to_their_annotated_types(project: Shipyard) -> None:
    run = project.pipelines.run(fan, {"n": "3", "scale": "2", "verbose": "true"})
    assert run.params == {"n": 3, "scale": 2.0, "verbose": True}
    assert run.result == 5


def test_an_unknown_parameter_lists_the_parameters_and_records_nothing(
    project: Shipyard,
) -> None:
    with pytest.raises(InvalidArgumentError, match=r"unknown parameter 'm'.*n \(int, default 5\)"):
        project.pipelines.run(fan, {"m": 3})
    assert project.pipelines.list() == []


@pytest.mark.parametrize("value", ["three", 2.5, [1]])
def test_a_wrong_parameter_type_is_rejected(project: Shipyard, value: Any) -> None:
    with pytest.raises(InvalidArgumentError, match="parameter 'n' must be int"):
        project.pipelines.run(fan, {"n": value})
    assert project.pipelines.list() == []


@sy.task(retries=2, retry_backoff=0.01)
def flaky(name: str) -> int:
    _count(name)
    print(f"attempt of {name}")
    raise ValueError(f"{name} is broken")


@sy.pipeline(name="breaks")
def breaks(name: str = "flaky") -> Any:
    first = flaky(name)
    return square(first)


def test_a_task_that_raises_is_retried_then_fails_with_its_traceback_in_the_logs(
    project: Shipyard,
) -> None:
    name = f"flaky-{project.metadata.dialect}"
    run = project.pipelines.run(breaks, {"name": name})
    assert run.status == "failed" and CALLS[name] == 3
    with pytest.raises(PipelineFailedError, match=run.id):
        _ = run.result
    tasks = {t.key: t for t in project.pipelines.tasks(run.id)}
    assert tasks["flaky-0"].status == "failed" and tasks["flaky-0"].attempt == 3
    assert "ValueError" in (tasks["flaky-0"].error or "")
    assert tasks["square-0"].status == "cancelled" and tasks["square-0"].attempt == 0
    logs = dict(project.pipelines.logs(run.id, "flaky-0"))["flaky-0"]
    assert logs.count(f"attempt of {name}") == 3 and "--- attempt 3 ---" in logs
    assert f"ValueError: {name} is broken" in logs and "Traceback" in logs


@sy.task(cache=True)
def costly(x: int) -> int:
    _count(f"costly-{x}")
    return x + 1


@sy.pipeline(name="cached")
def cached(x: int = 1) -> int:
    return square(costly(x))  # type: ignore[no-any-return]


def test_a_cached_task_is_reused_until_its_inputs_change(project: Shipyard) -> None:
    x = 1000 + len(CALLS)  # a value no other test used
    first = project.pipelines.run(cached, {"x": x})
    second = project.pipelines.run(cached, {"x": x})
    assert first.result == second.result == (x + 1) ** 2
    assert CALLS[f"costly-{x}"] == 1
    statuses = {t.key: t.status for t in project.pipelines.tasks(second.id)}
    assert statuses == {"costly-0": "cached", "square-0": "succeeded"}
    project.pipelines.run(cached, {"x": x}, cache=False)
    assert CALLS[f"costly-{x}"] == 2
    project.pipelines.run(cached, {"x": x + 1})
    assert CALLS[f"costly-{x + 1}"] == 1


@sy.task(cache=True)
def lock_maker() -> Any:
    return threading.Lock()


@sy.pipeline(name="unpicklable")
def unpicklable() -> None:
    lock_maker()


def test_an_unpicklable_result_fails_with_an_error_naming_the_task(project: Shipyard) -> None:
    run = project.pipelines.run(unpicklable, {})
    assert run.status == "failed"
    (task,) = project.pipelines.tasks(run.id)
    assert task.status == "failed" and task.attempt == 1  # not retried
    assert "task 'lock_maker-0' returned a value that cannot be pickled" in (task.error or "")


def test_a_pipeline_whose_body_raises_fails_with_the_traceback(project: Shipyard) -> None:
    @sy.pipeline(name="bad-body")
    def bad_body() -> None:
        square(2)
        raise RuntimeError("the body broke")

    run = project.pipelines.run(bad_body, {})
    assert run.status == "failed" and "RuntimeError: the body broke" in (run.error or "")
    assert [t.status for t in project.pipelines.tasks(run.id)] == ["succeeded"]


@sy.task
def traced(project: Shipyard) -> str:
    with project.runs.start_run("lineage", capture=False) as tracked:
        return tracked.id


def test_a_run_created_inside_a_task_links_to_the_pipeline_run(project: Shipyard) -> None:
    @sy.pipeline(name="linked")
    def linked() -> Any:
        return traced(project)

    run = project.pipelines.run(linked, {})
    run_id = run.result
    with project.metadata.read() as conn:
        edges = conn.execute(select(lineage_edges)).mappings().all()
    assert [(e["from_kind"], e["relation"], e["to_kind"], e["to_id"]) for e in edges] == [
        ("pipeline_run", "created", "run", run_id)
    ]
    assert edges[0]["from_id"] == run.id


def test_a_data_gate_stops_the_pipeline_with_the_report(project: Shipyard) -> None:
    project.datasets.add("people", pa.table({"id": [1, 2, 2], "age": [30, None, 40]}))
    checks = [{"name": "ids unique", "kind": "unique", "column": "id"}]

    @sy.task
    def prepare() -> int:
        gate(project.datasets, "people@latest", checks)
        return 1

    @sy.pipeline(name="gated")
    def gated() -> Any:
        return square(prepare())

    run = project.pipelines.run(gated, {})
    assert run.status == "failed"
    tasks = {t.key: t for t in project.pipelines.tasks(run.id)}
    assert "DataGateError" in (tasks["prepare-0"].error or "")
    assert "ids unique" in (tasks["prepare-0"].error or "")
    assert tasks["square-0"].status == "cancelled"


def test_show_html_writes_a_self_contained_timeline(project: Shipyard) -> None:
    run = project.pipelines.run(diamond, {"seconds": 0.01})
    page = project.pipelines.report_html(run.id)
    assert page.startswith("<!DOCTYPE html>") and "<svg" in page and "<script" not in page
    assert page.count("<rect") == 3 and "join-0" in page and "http" not in page.split("<body>")[1]


def test_a_running_run_without_a_heartbeat_is_marked_crashed_when_read(
    project: Shipyard,
) -> None:
    run = project.pipelines.run(diamond, {"seconds": 0.01})
    with project.metadata.write() as conn:
        conn.execute(
            pipeline_runs.update()
            .where(pipeline_runs.c.id == run.id)
            .values(
                status="running",
                host="elsewhere",
                heartbeat_at=run.created_at - timedelta(minutes=5),
                ended_at=None,
            )
        )
    (listed,) = project.pipelines.list()
    assert listed.status == "crashed" and "no heartbeat" in (listed.error or "")


def test_runs_are_listed_newest_first_and_found_by_id_prefix(project: Shipyard) -> None:
    first = project.pipelines.run(diamond, {"seconds": 0.01})
    second = project.pipelines.run(fan, {"n": 2})
    assert [r.id for r in project.pipelines.list()] == [second.id, first.id]
    assert [r.id for r in project.pipelines.list(pipeline="fan")] == [second.id]
    assert project.pipelines.get(second.id[:12]).id == second.id
    assert json.loads(json.dumps(second.to_dict()))["status"] == "succeeded"


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A real HTTP server on 127.0.0.1 that keeps the JSON bodies posted to it."""
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            received.append(json.loads(self.rfile.read(length))["shipyard"])
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            return

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook", received
    server.shutdown()
    server.server_close()


def _wait_for(check: Any, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


@pytest.mark.parametrize("metadata_uri", ["sqlite"], indirect=True)
def test_runs_notify_their_sinks_of_success_failure_and_retries(
    project: Shipyard, webhook: tuple[str, list[dict[str, Any]]]
) -> None:
    url, received = webhook

    @sy.pipeline(name="told", notify=[f"webhook+all:{url}"])
    def told(name: str = "x") -> Any:
        return flaky(name)

    @sy.pipeline(name="fine", notify=[f"webhook:{url}"])
    def fine() -> Any:
        return square(3)

    failed = project.pipelines.run(told, {"name": "told"})
    ok = project.pipelines.run(fine, {})
    _wait_for(lambda: len(received) >= 4)
    kinds = sorted((e["kind"], e["run_id"]) for e in received)
    assert kinds == sorted(
        [("retry", failed.id), ("retry", failed.id), ("failure", failed.id), ("success", ok.id)]
    )
    failure = next(e for e in received if e["kind"] == "failure")
    assert failure["task_key"] == "flaky-0" and failure["pipeline"] == "told"


def test_a_task_outside_a_pipeline_is_its_function(project: Shipyard) -> None:
    assert square(4) == 16
    assert square.map([1, 2, 3]) == [1, 4, 9]
    assert fan.run({"n": 3}, project=project).result == 5


@pytest.mark.parametrize("metadata_uri", ["sqlite"], indirect=True)
def test_a_running_run_beats_its_heart(project: Shipyard) -> None:
    driver = threading.Thread(target=project.pipelines.run, args=(diamond, {"seconds": 3.0}))
    driver.start()
    _wait_for(lambda: project.pipelines.list())
    (run,) = project.pipelines.list()
    assert run.started_at is not None

    def beat_while_running() -> bool:
        now = project.pipelines.get(run.id)
        assert now.status == "running"
        assert now.heartbeat_at is not None
        return (now.heartbeat_at - run.started_at).total_seconds() >= 1.5  # type: ignore[operator]

    _wait_for(beat_while_running, 2.9)
    driver.join(10)
    assert project.pipelines.get(run.id).status == "succeeded"
