"""Pipeline runs through the server: read back remotely, equal to the local service's answer."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator

import cloudpickle
import pytest

import shipyard as sy
from shipyard.client.blobs import RemoteBlobs
from shipyard.client.http import ApiClient
from shipyard.client.pipelines import RemotePipelineService
from shipyard.domain.pipelines import PipelineRun
from shipyard.errors import (
    ConflictError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
)

from .conftest import Team

cloudpickle.register_pickle_by_value(sys.modules[__name__])

RELEASE = threading.Event()  # lets the waiting task of the cancel test end


@sy.task
def greet(name: str) -> str:
    print(f"hello {name} — ünïcode and a tab\there")
    print("to stderr", file=sys.stderr)
    return f"hello {name}"


@sy.task
def shout(text: str) -> str:
    print(text.upper())
    return text.upper()


@sy.pipeline(name="greeting")
def greeting(name: str = "team") -> str:
    return shout(greet(name))  # type: ignore[no-any-return]


@sy.task
def wait_for_release(seconds: float) -> bool:
    return RELEASE.wait(seconds)


@sy.pipeline(name="waiting")
def waiting(seconds: float = 20.0) -> bool:
    return wait_for_release(seconds)  # type: ignore[no-any-return]


@pytest.fixture
def finished(team: Team) -> PipelineRun:
    """A succeeded run of the two-task pipeline, made with the local service."""
    run = team.project.pipelines.run(greeting, {"name": "crew"})
    assert run.status == "succeeded"
    return run


def _remote(team: Team, role: str) -> Iterator[RemotePipelineService]:
    client = ApiClient(team.url, team.tokens[role])
    try:
        yield RemotePipelineService(client, RemoteBlobs(client))
    finally:
        client.close()


@pytest.fixture
def viewer(team: Team) -> Iterator[RemotePipelineService]:
    """The pipeline service of a remote project, as a viewer."""
    yield from _remote(team, "viewer")


@pytest.fixture
def editor(team: Team) -> Iterator[RemotePipelineService]:
    """The pipeline service of a remote project, as an editor."""
    yield from _remote(team, "editor")


def test_a_run_and_its_tasks_read_remotely_equal_the_local_answer(
    team: Team, finished: PipelineRun, viewer: RemotePipelineService
) -> None:
    local = team.project.pipelines
    assert viewer.get(finished.id) == local.get(finished.id)
    assert viewer.get(finished.id[:8]) == local.get(finished.id)  # a prefix, as the CLI takes
    tasks = viewer.tasks(finished.id)
    assert tasks == local.tasks(finished.id)
    assert [t.key for t in tasks] == ["greet-0", "shout-0"]
    assert tasks[1].upstream == ("greet-0",)
    assert viewer.describe(finished.id) == local.describe(finished.id)
    assert viewer.list() == local.list() == [local.get(finished.id)]
    assert viewer.list(pipeline="greeting", status="succeeded") == [local.get(finished.id)]
    assert viewer.list(pipeline="other") == []
    assert viewer.list(status="failed") == []
    assert "greet-0" in viewer.report_html(finished.id)


def test_logs_of_a_task_come_back_byte_identical(
    team: Team, finished: PipelineRun, viewer: RemotePipelineService
) -> None:
    local = team.project.pipelines
    assert viewer.logs(finished.id) == local.logs(finished.id)
    assert viewer.logs(finished.id, "greet") == local.logs(finished.id, "greet")
    tasks = {t.key: t for t in local.tasks(finished.id)}
    with team.client("viewer") as http:
        for key in ("greet-0", "shout-0"):
            digest = tasks[key].log_digest
            assert digest is not None
            answer = http.get(f"/api/v1/pipelines/runs/{finished.id}/logs", params={"task": key})
            assert answer.status_code == 200
            assert answer.headers["content-type"].startswith("text/plain")
            assert answer.content == team.project.content.read_bytes(digest)
    assert "hello crew — ünïcode and a tab\there" in dict(viewer.logs(finished.id))["greet-0"]
    assert "to stderr" in dict(viewer.logs(finished.id))["greet-0"]


def test_an_unknown_task_is_refused_naming_it(
    team: Team, finished: PipelineRun, viewer: RemotePipelineService
) -> None:
    with pytest.raises(InvalidArgumentError, match="has no task 'nope'"):
        team.project.pipelines.logs(finished.id, "nope")
    with pytest.raises(InvalidArgumentError, match="has no task 'nope'"):
        viewer.logs(finished.id, "nope")
    logs = f"/api/v1/pipelines/runs/{finished.id}/logs"
    with team.client("viewer") as http:
        answer = http.get(logs, params={"task": "nope-0"})
        assert answer.status_code == 404
        assert "'nope-0'" in answer.json()["error"]["message"]
        for bad in ("../greet-0", "/etc/passwd", "greet-0/../x", "..\\x", "a\x00b", "a\nb"):
            assert http.get(logs, params={"task": bad}).status_code == 422
        assert http.get(logs, params={"task": ".hidden"}).status_code == 404  # no such task
        assert http.get(logs).status_code == 422  # which task: required


def test_cancel_of_a_finished_run_is_a_conflict(
    team: Team, finished: PipelineRun, editor: RemotePipelineService
) -> None:
    with pytest.raises(ConflictError, match=rf"{finished.id} has ended \(succeeded\)"):
        editor.cancel(finished.id)
    with team.client("editor") as http:
        answer = http.post(f"/api/v1/pipelines/runs/{finished.id}/cancel")
    assert answer.status_code == 409
    assert answer.json()["error"]["type"] == "ConflictError"
    assert team.project.pipelines.get(finished.id).cancel_requested is False


def test_a_viewer_cannot_cancel(
    team: Team, finished: PipelineRun, viewer: RemotePipelineService
) -> None:
    with pytest.raises(PermissionDeniedError, match="needs one of admin, editor"):
        viewer.cancel(finished.id)
    with team.client("viewer") as http:
        assert http.post(f"/api/v1/pipelines/runs/{finished.id}/cancel").status_code == 403


def test_an_unknown_run_is_404_naming_the_id(team: Team, viewer: RemotePipelineService) -> None:
    missing = "0" * 32
    with pytest.raises(NotFoundError, match=missing):
        viewer.get(missing)
    with pytest.raises(NotFoundError, match=missing):
        viewer.logs(missing)
    with team.client("editor") as http:
        for method, tail, params in (
            ("GET", "", None),
            ("GET", "/tasks", None),
            ("GET", "/logs", {"task": "greet-0"}),
            ("POST", "/cancel", None),
        ):
            answer = http.request(method, f"/api/v1/pipelines/runs/{missing}{tail}", params=params)
            assert answer.status_code == 404, (method, tail, answer.text)
            assert missing in answer.json()["error"]["message"]
        for bad in ("abc", "0" * 33, "ZZZZZZ", "0123456%25"):
            assert http.get(f"/api/v1/pipelines/runs/{bad}").status_code == 422, bad
        # An encoded "/" makes another path, which no route has.
        assert http.get("/api/v1/pipelines/runs/0123456%2F..%2Ftasks").status_code == 404


def test_a_running_run_is_cancelled_through_the_server(
    team: Team, editor: RemotePipelineService
) -> None:
    RELEASE.clear()
    ended: list[PipelineRun] = []
    driver = threading.Thread(
        target=lambda: ended.append(team.project.pipelines.run(waiting, {"seconds": 20.0}))
    )
    driver.start()
    try:
        deadline = time.monotonic() + 10
        while not (running := editor.list(pipeline="waiting", status="running")):
            assert time.monotonic() < deadline, "the run did not start"
            time.sleep(0.05)
        asked = editor.cancel(running[0].id)
        assert asked.cancel_requested is True
        driver.join(timeout=10)
        assert not driver.is_alive()
    finally:
        RELEASE.set()
        driver.join(timeout=30)
    assert ended[0].status == "cancelled"
    assert editor.get(asked.id) == team.project.pipelines.get(asked.id)
    assert editor.get(asked.id).status == "cancelled"
    entries = team.project.audit.list(entity_kind="pipeline_run")
    assert [(e.action, e.actor, e.entity_id) for e in entries] == [
        ("pipeline_run.cancel", "eddie", asked.id)
    ]
