"""Schedules in local mode and in remote mode (definitions and claims on a real server).

In remote mode the client loads a target and checks its parameters; the server checks the
definition again and stores it, and remote schedulers claim due schedules on the server with
the same compare-and-set as local ones. The same assertions hold in both modes.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from typer.testing import CliRunner

from shipyard.cli.main import app
from shipyard.client import RemoteProject
from shipyard.client.schedules import RemoteScheduleService
from shipyard.domain.ids import new_id, utcnow
from shipyard.domain.schedules import Schedule
from shipyard.errors import (
    AlreadyExistsError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
)
from shipyard.services.schedules import ScheduleService

from .conftest import Team
from .test_traversal import corpus

FLOWS = """
import shipyard as sy


@sy.task
def double(x: int) -> int:
    return 2 * x


@sy.pipeline(name="nightly", schedule="0 3 * * *")
def nightly(n: int = 1) -> int:
    return double(n)


@sy.pipeline(name="plain")
def plain(n: int, label: str = "x") -> int:
    return n
"""


@dataclass
class Mode:
    """One way to reach the project's schedules, and who writes."""

    name: str
    schedules: Any
    user: str


@pytest.fixture
def flows(team: Team) -> str:
    path = team.project.settings.root / "flows.py"
    path.write_text(FLOWS)
    return str(path)


@pytest.fixture(params=["local", "remote"])
def mode(request: pytest.FixtureRequest, team: Team) -> Iterator[Mode]:
    """The project's own schedule service, or a remote project's as the editor eddie."""
    if request.param == "local":
        yield Mode("local", team.project.schedules, team.project.user)
        return
    with RemoteProject(team.url, team.tokens["editor"], team.project.settings) as remote:
        yield Mode("remote", remote.schedules, "eddie")


def _stored(team: Team) -> list[dict[str, Any]]:
    return [s.to_dict() for s in team.project.schedules.list()]


def test_definitions_round_trip_and_are_audited_as_the_caller(
    mode: Mode, team: Team, flows: str
) -> None:
    made = mode.schedules.add("hourly", f"{flows}:plain", every="1h", params={"n": "3"})
    assert made.pipeline == "plain" and made.params == {"n": 3}  # converted where loaded
    assert made.created_by == mode.user and made.trigger.interval_seconds == 3600
    assert [s.name for s in mode.schedules.list()] == ["hourly"]
    assert team.project.schedules.get("hourly") == mode.schedules.get("hourly")
    with pytest.raises(AlreadyExistsError):
        mode.schedules.add("hourly", f"{flows}:plain", every="1h", params={"n": 1})
    changed = mode.schedules.update("hourly", cron="0 4 * * *", missed="catchup:3")
    assert changed.trigger.cron == "0 4 * * *" and changed.missed.text == "catchup:3"
    assert changed.params == {"n": 3}  # what was not given stays
    switched = mode.schedules.update("hourly", target=f"{flows}:nightly", params={})
    assert switched.pipeline == "nightly" and switched.params == {}
    off = mode.schedules.update("hourly", enabled=False)
    assert not off.enabled
    removed = mode.schedules.remove("hourly")
    assert removed.name == "hourly" and _stored(team) == []
    entries = team.project.audit.list(entity_kind="schedule")
    assert [e.action for e in entries] == ["schedule.create"] + ["schedule.update"] * 3 + [
        "schedule.delete"
    ]
    assert {e.actor for e in entries} == {mode.user}


def test_sync_registers_the_decorator_schedule(mode: Mode, flows: str) -> None:
    [created] = mode.schedules.sync(f"{flows}:nightly")
    assert created.action == "created" and created.schedule.trigger.cron == "0 3 * * *"
    [again] = mode.schedules.sync(f"{flows}:nightly")
    assert again.action == "unchanged" and again.schedule == created.schedule
    with pytest.raises(InvalidArgumentError, match="declares no schedule"):
        mode.schedules.sync(f"{flows}:plain")


@pytest.mark.parametrize(
    "call",
    [
        {"name": "bad-cron", "cron": "61 * * * *"},
        {"name": "never", "cron": "0 0 31 2 *"},
        {"name": "both", "cron": "@daily", "every": "1h"},
        {"name": "a/b", "every": "1h"},
        {"name": "..", "every": "1h"},
        {"name": "a..b", "every": "1h"},
        {"name": "p", "every": "1h", "params": {"n": "not a number"}},
        {"name": "m", "every": "1h", "missed": "later"},
    ],
)
def test_bad_definitions_are_refused_and_nothing_is_stored(
    mode: Mode, team: Team, flows: str, call: dict[str, Any]
) -> None:
    options = {"params": {"n": 1}, **call}
    with pytest.raises(InvalidArgumentError):
        mode.schedules.add(target=f"{flows}:plain", **options)
    assert _stored(team) == []


def test_unknown_schedules_and_viewers_are_refused(mode: Mode, team: Team, flows: str) -> None:
    with pytest.raises(NotFoundError):
        mode.schedules.get("nope")
    with pytest.raises(NotFoundError):
        mode.schedules.remove("nope")
    with pytest.raises(NotFoundError):
        mode.schedules.update("nope", enabled=False)
    with RemoteProject(team.url, team.tokens["viewer"], team.project.settings) as vic:
        with pytest.raises(PermissionDeniedError):
            vic.schedules.add("mine", f"{flows}:plain", every="1h", params={"n": 1})
        assert vic.schedules.list() == []  # viewers read
        with pytest.raises(PermissionDeniedError):
            vic.schedules.tick()
        with pytest.raises(PermissionDeniedError):  # not logged and tried again forever
            vic.schedules.serve(threading.Event(), 0.05)
    assert _stored(team) == []


def test_the_scheduler_launches_due_runs_with_their_records_in_the_project(
    mode: Mode, team: Team, flows: str
) -> None:
    mode.schedules.add(
        "soon", f"{flows}:nightly", every="1m", params={"n": 4}, now=utcnow() - timedelta(minutes=2)
    )
    seen: list[tuple[str, str]] = []
    [run_id] = mode.schedules.tick(on_launch=lambda name, rid: seen.append((name, rid)))
    assert seen == [("soon", run_id)]
    run = team.project.pipelines.get(run_id)
    assert run.status == "succeeded" and run.schedule == "soon" and run.created_by == mode.user
    assert team.project.pipelines.result(run_id) == 8
    after = team.project.schedules.get("soon")
    assert after.last_run_id == run_id and after.lease_owner is None
    assert after.next_run_at > utcnow()
    assert mode.schedules.tick() == []  # nothing due any more


# -- many schedulers, each due run launched once ------------------------------------------


class Launcher:
    """Records every launch (and holds each one a moment, so racing schedulers overlap)."""

    def __init__(self) -> None:
        self.launched: list[tuple[str, datetime]] = []
        self.lock = threading.Lock()

    def __call__(self, schedule: Schedule, due: datetime) -> str:
        with self.lock:
            self.launched.append((schedule.name, due))
        threading.Event().wait(0.05)
        return new_id()


def _remote(team: Team, role: str, launcher: Launcher) -> tuple[RemoteProject, ScheduleService]:
    remote = RemoteProject(team.url, team.tokens[role], team.project.settings)
    service = RemoteScheduleService(
        remote.client, remote.pipelines, team.project.settings, launch=launcher
    )
    return remote, service


@pytest.mark.parametrize("pair", [("editor", "admin"), ("editor", "local")])
def test_racing_schedulers_launch_each_due_run_exactly_once(
    team: Team, flows: str, pair: tuple[str, str]
) -> None:
    launcher = Launcher()
    opened: list[RemoteProject] = []
    services: list[ScheduleService] = []
    for role in pair:
        if role == "local":
            services.append(
                ScheduleService(
                    team.project.metadata, team.project.audit, user="local", launch=launcher
                )
            )
        else:
            remote, service = _remote(team, role, launcher)
            opened.append(remote)
            services.append(service)
    created = utcnow() - timedelta(minutes=10)
    names = [f"s{i}" for i in range(6)]
    for name in names:  # six missed occurrences each (catch-up), then one per tick
        services[0].add(
            name, f"{flows}:plain", every="1m", params={"n": 1}, missed="catchup", now=created
        )
    ticks = [created + timedelta(minutes=6, seconds=30 + 60 * k) for k in range(3)]
    try:
        for moment in ticks:
            start = threading.Barrier(len(services))
            workers = [
                threading.Thread(target=lambda s=s, t=moment, b=start: (b.wait(), s.tick(t)))
                for s in services
            ]
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join(60)
    finally:
        for remote in opened:
            remote.close()
    expected = {(n, created + timedelta(minutes=m)) for n in names for m in range(1, 9)}
    assert len(launcher.launched) == len(expected)  # none twice
    assert set(launcher.launched) == expected  # none missing
    assert all(s.lease_owner is None for s in team.project.schedules.list())


def test_a_lease_is_renewed_and_released_only_by_its_own_user(team: Team, flows: str) -> None:
    team.project.schedules.add(
        "held", f"{flows}:plain", every="1m", params={"n": 1}, now=utcnow() - timedelta(minutes=2)
    )
    owner = {"owner": "box:1:abc"}
    with team.client("editor") as eddie, team.client("admin") as alice:
        [claim] = eddie.post("/api/v1/schedules/claims", json=owner).json()
        assert claim["schedule"]["name"] == "held" and len(claim["due"]) == 1
        assert eddie.post("/api/v1/schedules/claims", json=owner).json() == []  # held now
        stored = team.project.schedules.get("held")
        assert stored.lease_owner == "eddie:box:1:abc"
        until = (utcnow() + timedelta(minutes=5)).isoformat()
        lease = {**owner, "until": until}
        assert alice.post("/api/v1/schedules/held/lease", json=lease).json() == {"held": False}
        assert alice.post("/api/v1/schedules/held/release", json=owner).json() == {"held": False}
        assert team.project.schedules.get("held").lease_until == stored.lease_until
        assert eddie.post("/api/v1/schedules/held/lease", json=lease).json() == {"held": True}
        run_id = new_id()
        done = eddie.post("/api/v1/schedules/held/release", json={**owner, "run_id": run_id})
        assert done.json() == {"held": True}
    after = team.project.schedules.get("held")
    assert after.lease_owner is None and after.last_run_id == run_id


# -- what the server refuses --------------------------------------------------------------


def _body(**fields: Any) -> dict[str, Any]:
    return {
        "name": "nightly",
        "pipeline": "nightly",
        "target": "flows.py:nightly",
        "cron": "0 3 * * *",
        "params": {"n": 1},
        **fields,
    }


@pytest.mark.parametrize(
    "fields",
    [
        {"cron": "61 * * * *"},
        {"cron": "0 3 * * * *"},
        {"cron": "0 0 31 2 *"},
        {"cron": None, "every": 0.5},
        {"cron": None, "every": 1e12},
        {"every": 3600},
        {"cron": None},
        {"name": "a/b"},
        {"name": ".."},
        {"name": "a..b"},
        {"name": "../../etc/passwd"},
        {"pipeline": "x/../y"},
        {"target": "a\x00b"},
        {"target": "a\nb"},
        {"target": "x" * 1025},
        {"target": ""},
        {"params": [1, 2]},
        {"params": {"not an identifier": 1}},
        {"params": {"n": "x" * 70_000}},
        {"missed": "later"},
        {"missed": "catchup:0"},
        {"now": "2099-01-01T00:00:00+00:00"},
        {"now": "2026-01-01T00:00:00"},
        {"unknown": 1},
    ],
)
def test_a_malformed_definition_is_refused_and_nothing_is_stored(
    team: Team, fields: dict[str, Any]
) -> None:
    with team.client("editor") as eddie:
        answer = eddie.post("/api/v1/schedules", json=_body(**fields))
    assert answer.status_code == 422, answer.text
    assert _stored(team) == []


def test_the_server_refuses_bad_changes_unknown_names_and_viewers(team: Team) -> None:
    with team.client("editor") as eddie, team.client("viewer") as vic:
        assert vic.post("/api/v1/schedules", json=_body()).status_code == 403
        assert _stored(team) == []
        assert eddie.post("/api/v1/schedules", json=_body()).status_code == 201
        before = _stored(team)
        for change in (
            {"cron": "61 * * * *"},
            {"target": "other.py:flow"},  # a target without its pipeline
            {"params": {"n": float("inf")}},
            {"every": -1},
            {"enabled": "maybe"},
        ):
            content = json.dumps(change).encode()  # Infinity travels as the json module writes
            answer = eddie.patch(
                "/api/v1/schedules/nightly",
                content=content,
                headers={"content-type": "application/json"},
            )
            assert answer.status_code in (400, 422), (change, answer.text)
        assert vic.patch("/api/v1/schedules/nightly", json={"enabled": False}).status_code == 403
        assert vic.delete("/api/v1/schedules/nightly").status_code == 403
        assert _stored(team) == before
        for method in ("GET", "DELETE"):
            assert eddie.request(method, "/api/v1/schedules/nope").status_code == 404
        assert eddie.patch("/api/v1/schedules/nope", json={"enabled": False}).status_code == 404
        for name in ("a%2Fb", "..", "%2E%2E", "a..b"):
            answer = eddie.get(f"/api/v1/schedules/{name}")
            assert answer.status_code in (404, 422), (name, answer.status_code)
        claim = eddie.post("/api/v1/schedules/claims", json={"owner": "../x"})
        assert claim.status_code == 422
        assert vic.post("/api/v1/schedules/claims", json={"owner": "box"}).status_code == 403
        assert _stored(team) == before


def test_the_cli_manages_schedules_and_runs_the_scheduler_through_the_server(
    team: Team, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in list(os.environ):
        if name.startswith("SHIPYARD_"):
            monkeypatch.delenv(name)
    work = tmp_path / "laptop"
    work.mkdir()
    (work / "flows.py").write_text(FLOWS)
    monkeypatch.chdir(work)
    monkeypatch.setenv("SHIPYARD_URI", team.url)
    monkeypatch.setenv("SHIPYARD_TOKEN", team.tokens["editor"])
    runner = CliRunner()

    def cli(*args: str) -> Any:
        done = runner.invoke(app, [*args, "--json"], catch_exceptions=False)
        assert done.exit_code == 0, done.output
        return json.loads(done.output)

    added = cli("schedules", "add", "often", "flows.py:plain", "--every", "1s", "-p", "n=5")
    assert added["created_by"] == "eddie" and added["params"] == {"n": 5}
    assert [s["name"] for s in cli("schedules", "list")] == ["often"]
    assert cli("schedules", "sync", "flows.py:nightly")[0]["action"] == "created"
    assert cli("schedules", "update", "nightly", "--disable")["enabled"] is False
    threading.Event().wait(1.1)  # "often" is due
    launched = cli("scheduler", "--once")["launched"]
    assert len(launched) == 1
    run = team.project.pipelines.get(launched[0])
    assert run.schedule == "often" and run.created_by == "eddie"
    assert team.project.pipelines.result(launched[0]) == 5
    assert cli("schedules", "show", "often")["last_run_id"] == launched[0]
    assert cli("schedules", "remove", "often")["name"] == "often"
    assert [s.name for s in team.project.schedules.list()] == ["nightly"]
    assert not (work / ".shipyard").exists()  # nothing went to a local project


def test_the_claim_answer_is_what_the_client_reads(team: Team) -> None:
    # An empty claim list is valid JSON a client decodes; bad owners never reach the store.
    with httpx.Client(base_url=team.url, timeout=30) as anonymous:
        assert anonymous.post("/api/v1/schedules/claims", json={"owner": "x"}).status_code == 401
    with team.client("editor") as eddie:
        assert eddie.post("/api/v1/schedules/claims", json={"owner": "box:1"}).json() == []


def test_traversal_spellings_in_schedule_names_are_refused(team: Team, tmp_path: Path) -> None:
    canary = tmp_path / "canary.txt"
    secret = new_id()
    canary.write_text(secret)
    wrong: list[str] = []
    sent = 0
    lease = {"owner": "box:1", "until": "2026-01-01T00:00:00+00:00"}
    with team.client("admin") as alice:

        def send(method: str, path: str, body: dict[str, Any] | None = None) -> None:
            nonlocal sent
            answer = alice.request(method, path, json=body)
            sent += 1
            if not 400 <= answer.status_code < 500 or secret in answer.text:
                wrong.append(f"{method} {path!r} {body}: {answer.status_code}")

        for spelling in corpus(canary):
            name = quote(spelling, safe="")
            if spelling in (".", ".."):
                name = ".%2e"  # httpx would resolve a bare dot segment before sending
            send("GET", f"/api/v1/schedules/{name}")
            send("PATCH", f"/api/v1/schedules/{name}", {"enabled": False})
            send("DELETE", f"/api/v1/schedules/{name}")
            send("POST", f"/api/v1/schedules/{name}/lease", lease)
            send("POST", f"/api/v1/schedules/{name}/release", {"owner": "box:1"})
            send("POST", "/api/v1/schedules", _body(name=spelling))
            send("POST", "/api/v1/schedules", _body(pipeline=spelling))
            send("POST", "/api/v1/schedules/claims", {"owner": spelling})
    assert sent > 300 * 8
    assert not wrong, "\n".join(wrong[:30])
    assert _stored(team) == [] and canary.read_text() == secret
