"""Running pipelines in local mode and in remote mode (records on a real server on loopback).

In remote mode the pipeline runs here; the server gets the run, the task rows, results and
logs by digest, and answers cache lookups. The same assertions hold in both modes.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cloudpickle
import httpx
import pytest
from sqlalchemy import select

import shipyard as sy
from shipyard.client import RemoteProject
from shipyard.domain.pipelines import PIPELINE_RUN_HEADER
from shipyard.errors import ConflictError
from shipyard.stores.metadata.schema import lineage_edges

from .conftest import Team

cloudpickle.register_pickle_by_value(sys.modules[__name__])

CALLS: list[str] = []  # task bodies that really ran (thread tasks, this process)
RELEASE = threading.Event()


@dataclass
class Mode:
    """One way to reach the project: its pipeline and run services, and who runs."""

    name: str
    pipelines: Any
    runs: Any
    user: str
    datasets: Any


@pytest.fixture(params=["local", "remote"])
def mode(request: pytest.FixtureRequest, team: Team) -> Iterator[Mode]:
    """The project's own services, or a remote project's as the editor eddie."""
    CALLS.clear()
    if request.param == "local":
        project = team.project
        yield Mode("local", project.pipelines, project.runs, project.user, project.datasets)
        return
    with RemoteProject(team.url, team.tokens["editor"], team.project.settings) as remote:
        yield Mode("remote", remote.pipelines, remote.runs, "eddie", remote.datasets)


@sy.task(cache=True)
def load(n: int) -> list[int]:
    CALLS.append("load")
    print(f"loading {n} numbers")
    return list(range(n))


@sy.task(cache=True)
def total(numbers: list[int]) -> int:
    CALLS.append("total")
    return sum(numbers)


@sy.pipeline(name="summing")
def summing(n: int = 10) -> int:
    return total(load(n))  # type: ignore[no-any-return]


def test_a_pipeline_runs_and_its_records_land_in_the_project(mode: Mode, team: Team) -> None:
    run = mode.pipelines.run(summing, {"n": 100})
    assert run.status == "succeeded" and run.result == 4950
    stored = team.project.pipelines.get(run.id)  # what the project itself holds
    assert stored.status == "succeeded" and stored.created_by == mode.user
    assert stored.ended_at is not None and stored.params == {"n": 100}
    tasks = mode.pipelines.tasks(run.id)
    assert [(t.key, t.status) for t in tasks] == [("load-0", "succeeded"), ("total-0", "succeeded")]
    assert tasks[1].upstream == ("load-0",)
    assert mode.pipelines.logs(run.id, "load") == [("load-0", "loading 100 numbers\n")]
    assert mode.pipelines.result(run.id) == 4950  # the stored result, read back
    assert team.project.pipelines.result(run.id) == 4950


def test_cached_tasks_are_reused_from_the_project(mode: Mode) -> None:
    first = mode.pipelines.run(summing, {"n": 7})
    again = mode.pipelines.run(summing, {"n": 7})
    assert again.result == first.result == 21
    assert [t.status for t in mode.pipelines.tasks(again.id)] == ["cached", "cached"]
    assert CALLS == ["load", "total"]  # the second run computed nothing
    fresh = mode.pipelines.run(summing, {"n": 7}, cache=False)
    assert [t.status for t in mode.pipelines.tasks(fresh.id)] == ["succeeded", "succeeded"]


def test_another_users_cached_results_are_never_loaded(team: Team) -> None:
    # A result is a pickle: eddie must not load one alice recorded, even for the same key.
    with RemoteProject(team.url, team.tokens["admin"], team.project.settings) as alice:
        assert alice.pipelines.run(summing, {"n": 5}).result == 10
    CALLS.clear()
    with RemoteProject(team.url, team.tokens["editor"], team.project.settings) as eddie:
        run = eddie.pipelines.run(summing, {"n": 5})
        assert [t.status for t in eddie.pipelines.tasks(run.id)] == ["succeeded", "succeeded"]
    assert CALLS == ["load", "total"]


@sy.task(cache=True)
def flaky(marker: str) -> int:
    CALLS.append("flaky")
    if not Path(marker).exists():
        raise RuntimeError("the marker is missing")
    return 1


@sy.pipeline(name="resumable")
def resumable(marker: str) -> list[int]:
    return [total(load(3)), flaky(marker)]  # type: ignore[list-item]


def test_a_failed_run_resumes_from_its_failed_task(mode: Mode, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    failed = mode.pipelines.run(resumable, {"marker": str(marker)})
    assert failed.status == "failed" and "flaky-0 failed" in (failed.error or "")
    ((_, why),) = mode.pipelines.logs(failed.id, "flaky")
    assert "RuntimeError: the marker is missing" in why
    marker.touch()
    CALLS.clear()
    resumed = mode.pipelines.resume(failed.id)
    assert resumed.status == "succeeded" and resumed.resumed_from == failed.id
    statuses = {t.key: t.status for t in mode.pipelines.tasks(resumed.id)}
    assert statuses == {"load-0": "cached", "total-0": "cached", "flaky-0": "succeeded"}
    assert CALLS == ["flaky"]
    assert mode.pipelines.result(resumed.id) == [3, 1]


@sy.task
def hold(seconds: float) -> bool:
    return RELEASE.wait(seconds)


@sy.pipeline(name="holding")
def holding() -> bool:
    return hold(20.0)  # type: ignore[no-any-return]


def test_a_run_driven_here_is_cancelled_from_the_project(mode: Mode, team: Team) -> None:
    RELEASE.clear()
    ended: list[Any] = []
    driver = threading.Thread(target=lambda: ended.append(mode.pipelines.run(holding, {})))
    driver.start()
    try:
        deadline = time.monotonic() + 20
        while not team.project.pipelines.list(pipeline="holding", status="running"):
            assert time.monotonic() < deadline, "the run never started"
            time.sleep(0.05)
        running = team.project.pipelines.list(pipeline="holding")[0]
        mode.pipelines.cancel(running.id)
        driver.join(timeout=20)
        assert not driver.is_alive(), "the driver did not see the cancel"
    finally:
        RELEASE.set()
        driver.join(timeout=20)
    assert ended[0].status == "cancelled"
    assert team.project.pipelines.get(running.id).status == "cancelled"
    with pytest.raises(ConflictError, match="has ended"):
        mode.pipelines.cancel(running.id)


@sy.task(isolate=True)
def make_run() -> str:
    # In its own process: the project (or the server) comes from the environment.
    with sy.start_run(experiment="inside", capture=False) as tracked:
        tracked.log_metric("m", 1.0)
        return str(tracked.id)


@sy.pipeline(name="tracked")
def tracked() -> str:
    return make_run()  # type: ignore[no-any-return]


def test_a_run_created_in_a_task_process_links_to_the_pipeline_run(
    mode: Mode, team: Team, monkeypatch: pytest.MonkeyPatch
) -> None:
    if mode.name == "remote":
        monkeypatch.setenv("SHIPYARD_URI", team.url)
        monkeypatch.setenv("SHIPYARD_TOKEN", team.tokens["editor"])
    else:
        monkeypatch.setenv("SHIPYARD_PROJECT", str(team.project.settings.root))
        monkeypatch.setenv("SHIPYARD_METADATA_URI", team.project.settings.metadata_uri)
        monkeypatch.setenv("SHIPYARD_USER", team.project.user)
    run = mode.pipelines.run(tracked, {})
    assert run.status == "succeeded", run.error
    made = team.project.runs.get(run.result)
    assert made.experiment == "inside" and made.user == mode.user
    with team.project.metadata.read() as conn:
        edges = conn.execute(select(lineage_edges)).mappings().all()
    assert [(e["from_id"], e["relation"], e["to_kind"], e["to_id"]) for e in edges] == [
        (run.id, "created", "run", run.result)
    ]


def test_the_cli_runs_a_pipeline_file_through_the_server(team: Team, tmp_path: Path) -> None:
    flow = tmp_path / "flow.py"
    flow.write_text(
        "import shipyard as sy\n\n"
        "@sy.task\ndef double(x: int) -> int:\n    print('doubling', x)\n    return 2 * x\n\n"
        "@sy.pipeline(name='cli-flow')\ndef main(x: int = 2) -> int:\n    return double(x)\n",
        encoding="utf-8",
    )
    env = {
        **os.environ,
        "SHIPYARD_URI": team.url,
        "SHIPYARD_TOKEN": team.tokens["editor"],
        "SHIPYARD_PROJECT": str(tmp_path),
    }
    done = subprocess.run(
        [sys.executable, "-m", "shipyard", "run", f"{flow}:main", "--param", "x=21", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    runs = team.project.pipelines.list(pipeline="cli-flow")
    assert len(runs) == 1 and runs[0].created_by == "eddie" and runs[0].status == "succeeded"
    assert team.project.pipelines.result(runs[0].id) == 42
    assert not (tmp_path / ".shipyard").exists()  # nothing went to a local project
    shown = subprocess.run(
        [sys.executable, "-m", "shipyard", "pipelines", "logs", runs[0].id],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert shown.returncode == 0 and "doubling 21" in shown.stdout


# -- what the server refuses ------------------------------------------------------------


def _start(client: httpx.Client, **fields: Any) -> httpx.Response:
    body = {
        "pipeline": "hand-made",
        "target": "flow.py:main",
        "params": {},
        "executor": "local",
        "host": "laptop",
        **fields,
    }
    return client.post("/api/v1/pipelines/runs", json=body)


def test_records_go_only_to_ones_own_open_run(team: Team) -> None:
    with team.client("editor") as eddie, team.client("admin") as alice:
        started = _start(eddie)
        assert started.status_code == 201 and started.json()["created_by"] == "eddie"
        run_id = started.json()["id"]
        records = f"/api/v1/pipelines/runs/{run_id}/records"
        row = {"key": "a-0", "task": "a", "status": "running", "attempt": 1}
        assert eddie.post(records, json={"tasks": [row], "beat": True}).json() == {
            "cancel_requested": False
        }
        other = alice.post(records, json={"tasks": [row]})
        assert other.status_code == 403 and "started by eddie" in other.text
        lacking = "blake3:" + "0" * 64
        bad = eddie.post(records, json={"tasks": [{**row, "result_digest": lacking}]})
        assert bad.status_code == 404 and "upload them first" in bad.text
        assert [t.status for t in team.project.pipelines.tasks(run_id)] == ["running"]
        end = {"tasks": [{**row, "status": "succeeded"}], "run": {"status": "succeeded"}}
        assert eddie.post(records, json=end).status_code == 200
        ended = team.project.pipelines.get(run_id)
        assert ended.status == "succeeded" and ended.ended_at is not None
        late = eddie.post(records, json={"tasks": [{**row, "status": "failed"}]})
        assert late.status_code == 409 and "has ended" in late.text
        assert [t.status for t in team.project.pipelines.tasks(run_id)] == ["succeeded"]


@pytest.mark.parametrize(
    "fields",
    [
        {"pipeline": "../../etc/passwd"},
        {"host": "evil/../host"},
        {"executor": "local; rm -rf /"},
        {"pid": -1},
        {"resumed_from": "../" * 10},
        {"target": "a\x00b"},
        {"unknown": 1},
    ],
)
def test_a_malformed_run_start_is_refused_and_nothing_is_recorded(
    team: Team, fields: dict[str, Any]
) -> None:
    with team.client("editor") as eddie:
        answer = _start(eddie, **fields)
    assert answer.status_code == 422, answer.text
    assert team.project.pipelines.list() == []


def test_viewers_cannot_drive_and_a_vanished_driver_is_marked_crashed(team: Team) -> None:
    with team.client("viewer") as vic:
        assert _start(vic).status_code == 403
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    with team.client("editor") as eddie:
        run_id = _start(eddie, host=socket.gethostname(), pid=dead.pid).json()["id"]
        shown = eddie.get(f"/api/v1/pipelines/runs/{run_id}").json()
    assert shown["status"] == "crashed" and f"pid {dead.pid}" in shown["error"]


def test_the_pipeline_run_header_only_names_ones_own_running_run(team: Team) -> None:
    with team.client("editor") as eddie, team.client("admin") as alice:
        run_id = _start(eddie).json()["id"]
        body = {"experiment": "scoped"}
        foreign = alice.post("/api/v1/runs", json=body, headers={PIPELINE_RUN_HEADER: run_id})
        assert foreign.status_code == 403 and "started by eddie" in foreign.text
        junk = eddie.post("/api/v1/runs", json=body, headers={PIPELINE_RUN_HEADER: "../x"})
        assert junk.status_code == 422
        assert list(team.project.runs.search("scoped")) == []  # nothing was created
        made = eddie.post("/api/v1/runs", json=body, headers={PIPELINE_RUN_HEADER: run_id})
        assert made.status_code == 201
    with team.project.metadata.read() as conn:
        edges = conn.execute(select(lineage_edges)).mappings().all()
    assert [(e["from_id"], e["to_id"]) for e in edges] == [(run_id, made.json()["id"])]


READING: list[Any] = []  # the datasets service a thread task reads through, in this mode


@sy.task(cache=True)
def rows_of(reference: str) -> int:
    CALLS.append("rows_of")
    return int(READING[0].get(reference).to_arrow().num_rows)


@sy.pipeline(name="rows-of-latest")
def rows_of_latest(reference: str = "") -> int:
    return rows_of(reference)  # type: ignore[no-any-return]


def test_a_task_reading_name_at_latest_runs_again_after_a_new_version(
    mode: Mode, team: Team
) -> None:
    import pyarrow as pa

    READING[:] = [mode.datasets]
    params = {"reference": f"beans-{mode.name}@latest"}
    team.project.datasets.add(f"beans-{mode.name}", pa.table({"x": [1, 2]}))
    assert mode.pipelines.run(rows_of_latest, params).result == 2
    cached = mode.pipelines.run(rows_of_latest, params)
    assert [t.status for t in mode.pipelines.tasks(cached.id)] == ["cached"]
    team.project.datasets.add(f"beans-{mode.name}", pa.table({"x": [1, 2, 3]}))
    newer = mode.pipelines.run(rows_of_latest, params)
    assert newer.result == 3, newer.error  # not the 2 of the version first read
    assert [t.status for t in mode.pipelines.tasks(newer.id)] == ["succeeded"]
    assert CALLS == ["rows_of", "rows_of"]
