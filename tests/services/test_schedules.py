from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from shipyard.app import Shipyard, build
from shipyard.domain.ids import new_id
from shipyard.domain.schedules import Schedule
from shipyard.errors import (
    AlreadyExistsError,
    InvalidArgumentError,
    InvalidScheduleError,
    PipelineNotFoundError,
    ScheduleNotFoundError,
    SettingsError,
)
from shipyard.services.schedules import ScheduleService
from shipyard.settings import Settings

FLOWS = """
import shipyard as sy


@sy.task
def double(x: int) -> int:
    return 2 * x


@sy.pipeline(name="nightly", schedule="0 3 * * *")
def nightly(n: int = 1) -> int:
    return double(n)


@sy.pipeline(schedule="15m")
def quarterly(n: int = 1) -> int:
    return n


@sy.pipeline
def plain(n: int, label: str = "x") -> int:
    return n


not_a_pipeline = 3
"""

T0 = datetime(2026, 1, 1, 0, 0, tzinfo=UTC)


@pytest.fixture
def flows(tmp_path: Path) -> str:
    path = tmp_path / "flows.py"
    path.write_text(FLOWS)
    return str(path)


@pytest.fixture
def sqlite_settings(tmp_path: Path) -> Settings:
    """Settings on SQLite only: for input checks that fail before any SQL runs."""
    root = tmp_path / "project"
    root.mkdir()
    return Settings.load(
        root, env={}, metadata_uri=f"sqlite:///{tmp_path / 'shipyard.db'}", user="alice"
    )


@pytest.fixture
def sqlite_project(sqlite_settings: Settings) -> Iterator[Shipyard]:
    with build(sqlite_settings) as opened:
        yield opened


class Launcher:
    """Records every launch; the scheduler's injected ``launch``."""

    def __init__(self, fail_for: str | None = None) -> None:
        self.launched: list[tuple[str, datetime, str]] = []
        self.fail_for = fail_for
        self.lock = threading.Lock()

    def __call__(self, schedule: Schedule, due: datetime) -> str:
        if schedule.name == self.fail_for:
            raise RuntimeError("the executor is down")
        run_id = new_id()
        with self.lock:
            self.launched.append((schedule.name, due, run_id))
        return run_id


def service(project: Shipyard, launcher: Launcher, **options: object) -> ScheduleService:
    return ScheduleService(
        project.metadata,
        project.audit,
        user="alice",
        launch=launcher,
        **options,  # type: ignore[arg-type]
    )


def test_add_get_list_round_trip_with_parameters_converted(project: Shipyard, flows: str) -> None:
    schedules = service(project, Launcher())
    added = schedules.add(
        "daily", f"{flows}:plain", cron="0 3 * * *", params={"n": "5"}, missed="catchup", now=T0
    )
    assert added.pipeline == "plain"
    assert added.params == {"n": 5}
    assert added.next_run_at == T0 + timedelta(hours=3)
    assert added.missed.kind == "catchup" and added.missed.max_catchup == 10
    assert schedules.get("daily") == added
    assert [s.name for s in schedules.list()] == ["daily"]
    data = added.to_dict()
    assert data["trigger"] == "0 3 * * *" and data["created_by"] == "alice"
    json.dumps(data)
    entry = project.audit.list(entity_kind="schedule")[-1]
    assert (entry.action, entry.entity_id, entry.actor) == ("schedule.create", "daily", "alice")


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"cron": "61 3 * * *"}, InvalidScheduleError, "minute field '61'"),
        ({"cron": "0 3 * *"}, InvalidScheduleError, "'0 3 \\* \\*'.*4 field"),
        ({"cron": "0 3 * * *", "every": "1h"}, InvalidScheduleError, "exactly one"),
        ({}, InvalidScheduleError, "exactly one"),
        ({"every": "soon"}, InvalidScheduleError, "soon"),
        ({"every": "1h", "missed": "later"}, InvalidArgumentError, "skip' or 'catchup"),
        ({"every": "1h", "params": {"bogus": 1}}, InvalidArgumentError, "unknown parameter"),
        ({"every": "1h", "params": {"n": "many"}}, InvalidArgumentError, "n"),
    ],
)
def test_bad_schedules_are_refused_and_nothing_is_stored(
    sqlite_project: Shipyard,
    flows: str,
    options: dict[str, object],
    error: type[Exception],
    match: str,
) -> None:
    schedules = service(sqlite_project, Launcher())
    with pytest.raises(error, match=match):
        schedules.add("s", f"{flows}:plain", **options)  # type: ignore[arg-type]
    assert schedules.list() == []


@pytest.mark.parametrize("name", ["../../etc/passwd", "", "a b"])
def test_a_bad_schedule_name_is_refused(sqlite_project: Shipyard, flows: str, name: str) -> None:
    with pytest.raises(InvalidArgumentError, match="schedule name"):
        service(sqlite_project, Launcher()).add(name, f"{flows}:plain", every="1h", params={"n": 1})


@pytest.mark.parametrize(
    ("suffix", "match"),
    [
        ("missing.py:flow", "does not exist"),
        ("FLOWS:nowhere", "no attribute 'nowhere'"),
        ("FLOWS:not_a_pipeline", "not a @pipeline"),
        ("no_such_package_xyz.mod:flow", "no module"),
    ],
)
def test_an_unknown_target_is_refused(
    sqlite_project: Shipyard, flows: str, tmp_path: Path, suffix: str, match: str
) -> None:
    target = suffix.replace("FLOWS", flows)
    if target.startswith("missing.py"):
        target = str(tmp_path / target)
    schedules = service(sqlite_project, Launcher())
    with pytest.raises(PipelineNotFoundError, match=match):
        schedules.add("s", target, every="1h")
    assert schedules.list() == []


def test_a_duplicate_name_is_refused_and_the_first_stays(project: Shipyard, flows: str) -> None:
    schedules = service(project, Launcher())
    first = schedules.add("s", f"{flows}:nightly", cron="0 3 * * *", now=T0)
    with pytest.raises(AlreadyExistsError, match="'s' exists already"):
        schedules.add("s", f"{flows}:quarterly", every="1h", now=T0)
    assert schedules.list() == [first]


def test_update_changes_only_what_is_given(project: Shipyard, flows: str) -> None:
    schedules = service(project, Launcher())
    schedules.add("s", f"{flows}:plain", cron="0 3 * * *", params={"n": 1}, now=T0)
    changed = schedules.update("s", every="1h", now=T0 + timedelta(minutes=10))
    assert changed.trigger.interval_seconds == 3600 and changed.trigger.cron is None
    assert changed.next_run_at == T0 + timedelta(minutes=70)
    assert changed.params == {"n": 1}
    assert schedules.update("s", params={"n": "7"}).params == {"n": 7}
    assert schedules.update("s", missed="catchup:3").missed.max_catchup == 3
    with pytest.raises(InvalidScheduleError):
        schedules.update("s", cron="every day")
    with pytest.raises(InvalidArgumentError, match="required"):
        schedules.update("s", params={})
    assert schedules.get("s").params == {"n": 7}
    with pytest.raises(ScheduleNotFoundError, match="'nope' does not exist"):
        schedules.update("nope", enabled=False)


def test_remove_deletes_and_a_second_remove_says_not_found(project: Shipyard, flows: str) -> None:
    schedules = service(project, Launcher())
    schedules.add("s", f"{flows}:nightly", cron="0 3 * * *")
    assert schedules.remove("s").name == "s"
    assert schedules.list() == []
    with pytest.raises(ScheduleNotFoundError):
        schedules.remove("s")
    with pytest.raises(ScheduleNotFoundError):
        schedules.get("s")


def test_tick_launches_due_runs_once_by_policy(project: Shipyard, flows: str) -> None:
    launcher = Launcher()
    schedules = service(project, launcher)
    schedules.add("skip", f"{flows}:quarterly", every="15m", now=T0)
    schedules.add("catch", f"{flows}:quarterly", every="15m", missed="catchup", now=T0)
    schedules.add("later", f"{flows}:nightly", cron="0 3 * * *", now=T0)
    now = T0 + timedelta(hours=1, minutes=1)
    ids = schedules.tick(now)
    assert len(ids) == 5
    launched = sorted((name, due) for name, due, _ in launcher.launched)
    assert launched == sorted(
        [("skip", T0 + timedelta(hours=1))]
        + [("catch", T0 + timedelta(minutes=15 * k)) for k in (1, 2, 3, 4)]
    )
    assert schedules.tick(now) == []  # nothing is launched twice
    catch = schedules.get("catch")
    assert catch.next_run_at == T0 + timedelta(minutes=75)
    assert catch.last_run_at == T0 + timedelta(hours=1)
    assert catch.last_run_id == ids[-1] or catch.last_run_id in ids
    assert catch.lease_owner is None and catch.lease_until is None
    assert schedules.get("later").last_run_id is None


def test_catchup_is_capped(project: Shipyard, flows: str) -> None:
    launcher = Launcher()
    schedules = service(project, launcher)
    schedules.add("s", f"{flows}:quarterly", every="1m", missed="catchup", max_catchup=3, now=T0)
    assert len(schedules.tick(T0 + timedelta(days=2))) == 3
    assert [due for _, due, _ in launcher.launched] == [
        T0 + timedelta(days=2, minutes=-2),
        T0 + timedelta(days=2, minutes=-1),
        T0 + timedelta(days=2),
    ]


def test_disabled_schedules_wait_and_enabling_does_not_catch_up(
    project: Shipyard, flows: str
) -> None:
    launcher = Launcher()
    schedules = service(project, launcher)
    schedules.add("s", f"{flows}:quarterly", every="15m", missed="catchup", enabled=False, now=T0)
    assert schedules.tick(T0 + timedelta(hours=5)) == []
    enabled = schedules.update("s", enabled=True, now=T0 + timedelta(hours=5))
    assert enabled.next_run_at == T0 + timedelta(hours=5, minutes=15)
    assert len(schedules.tick(T0 + timedelta(hours=5, minutes=15))) == 1


def test_a_failing_launch_is_logged_and_others_still_run(
    project: Shipyard, flows: str, caplog: pytest.LogCaptureFixture
) -> None:
    launcher = Launcher(fail_for="broken")
    schedules = service(project, launcher)
    schedules.add("broken", f"{flows}:quarterly", every="15m", now=T0)
    schedules.add("fine", f"{flows}:quarterly", every="15m", now=T0)
    ids = schedules.tick(T0 + timedelta(minutes=15))
    assert [name for name, _, _ in launcher.launched] == ["fine"] and len(ids) == 1
    assert "broken" in caplog.text and "failed to launch" in caplog.text
    broken = schedules.get("broken")
    assert broken.lease_owner is None and broken.next_run_at == T0 + timedelta(minutes=30)


def test_a_held_lease_keeps_a_second_scheduler_off_until_released(
    project: Shipyard, flows: str
) -> None:
    started, release = threading.Event(), threading.Event()

    def slow(schedule: Schedule, due: datetime) -> str:
        started.set()
        assert release.wait(10)
        return "run-a"

    first = ScheduleService(project.metadata, project.audit, user="a", launch=slow)
    second_launcher = Launcher()
    second = service(project, second_launcher)
    first.add("s", f"{flows}:quarterly", every="1m", now=T0)
    result: list[list[str]] = []
    worker = threading.Thread(target=lambda: result.append(first.tick(T0 + timedelta(minutes=1))))
    worker.start()
    assert started.wait(10)
    held = first.get("s")
    assert held.lease_owner == first.owner and held.lease_until is not None
    # the first scheduler still holds the schedule (its lease runs to 00:02)
    assert second.tick(T0 + timedelta(minutes=1, seconds=59)) == []
    release.set()
    worker.join(10)
    assert result == [["run-a"]]
    assert first.get("s").last_run_id == "run-a" and first.get("s").lease_owner is None
    assert len(second.tick(T0 + timedelta(minutes=2))) == 1


def test_the_lease_of_a_dead_scheduler_runs_out(project: Shipyard, flows: str) -> None:
    dead = ScheduleService(project.metadata, project.audit, user="a", lease_seconds=90)
    dead.add("s", f"{flows}:quarterly", every="1m", now=T0)
    claims = dead.claim_due(T0 + timedelta(minutes=1))  # claims, then "dies"
    assert [c.due for c in claims] == [(T0 + timedelta(minutes=1),)]
    launcher = Launcher()
    alive = service(project, launcher)
    assert alive.tick(T0 + timedelta(minutes=2)) == []  # the lease still holds
    assert len(alive.tick(T0 + timedelta(minutes=2, seconds=31))) == 1
    assert [due for _, due, _ in launcher.launched] == [T0 + timedelta(minutes=2)]


def test_the_lease_is_renewed_while_a_slow_run_goes_on(project: Shipyard, flows: str) -> None:
    def slow(schedule: Schedule, due: datetime) -> str:
        time.sleep(1.2)
        return "run"

    schedules = ScheduleService(
        project.metadata, project.audit, user="a", launch=slow, lease_seconds=0.6
    )
    schedules.add("s", f"{flows}:quarterly", every="1m", now=T0)
    seen: list[datetime | None] = []

    def watch() -> None:
        for _ in range(10):
            time.sleep(0.1)
            seen.append(schedules.get("s").lease_until)

    watcher = threading.Thread(target=watch)
    watcher.start()
    assert schedules.tick(T0 + timedelta(minutes=1)) == ["run"]
    watcher.join()
    leases = [u for u in seen if u is not None]
    assert max(leases) > T0 + timedelta(minutes=1, seconds=0.6)  # moved past the first lease


def test_sync_registers_the_decorator_schedule(project: Shipyard, flows: str) -> None:
    schedules = service(project, Launcher())
    [created] = schedules.sync(f"{flows}:nightly", now=T0)
    assert created.action == "created"
    assert created.schedule.name == "nightly" and created.schedule.trigger.cron == "0 3 * * *"
    assert created.schedule.next_run_at == T0 + timedelta(hours=3)
    [again] = schedules.sync(f"{flows}:nightly", now=T0 + timedelta(hours=5))
    assert again.action == "unchanged" and again.schedule == created.schedule
    [interval] = schedules.sync(f"{flows}:quarterly", now=T0)
    assert interval.schedule.trigger.interval_seconds == 900
    with pytest.raises(InvalidArgumentError, match="declares no schedule"):
        schedules.sync(f"{flows}:plain")
    with pytest.raises(PipelineNotFoundError):
        schedules.sync(f"{flows}:nowhere")


def test_schedules_declared_in_shipyard_toml_are_synced(
    settings: Settings, flows: str, tmp_path: Path
) -> None:
    settings.config_file.write_text(
        textwrap.dedent(
            f"""
            [schedules.nightly-plain]
            target = "{flows}:plain"
            cron = "0 3 * * *"
            params = {{ n = 4 }}
            missed = "catchup"
            """
        )
    )
    declared = Settings.load(settings.root, env={}, metadata_uri=settings.metadata_uri)
    with build(declared) as project:
        [result] = project.schedules.sync()
        assert result.action == "created"
        assert result.schedule.params == {"n": 4} and result.schedule.missed.kind == "catchup"
        assert [r.action for r in project.schedules.sync()] == ["unchanged"]
    settings.config_file.write_text(
        settings.config_file.read_text().replace('cron = "0 3 * * *"', 'every = "2h"')
    )
    changed = Settings.load(settings.root, env={}, metadata_uri=settings.metadata_uri)
    with build(changed) as project:
        [result] = project.schedules.sync()
        assert result.action == "updated" and result.schedule.trigger.interval_seconds == 7200


@pytest.mark.parametrize(
    ("table", "error", "match"),
    [
        ('[schedules]\nnightly = "0 3 * * *"\n', SettingsError, "schedules.nightly"),
        ('[schedules.n]\ncron = "0 3 * * *"\n', SettingsError, "needs target"),
        (
            "[schedules.n]\ntarget = 'FLOWS:plain'\nevery = 1979-05-27\n",
            SettingsError,
            "wrong type",
        ),
        (
            '[schedules.n]\ntarget = "FLOWS:plain"\ncron = "0 3 * * *"\nbogus = 1\n',
            SettingsError,
            "bogus",
        ),
        (
            '[schedules.n]\ntarget = "FLOWS:plain"\ncron = "0 99 * * *"\n',
            InvalidScheduleError,
            "hour",
        ),
    ],
)
def test_a_bad_declared_schedule_names_the_problem(
    sqlite_settings: Settings, flows: str, table: str, error: type[Exception], match: str
) -> None:
    sqlite_settings.config_file.write_text(table.replace("FLOWS", flows))
    with pytest.raises(error, match=match):
        declared = Settings.load(
            sqlite_settings.root, env={}, metadata_uri=sqlite_settings.metadata_uri
        )
        with build(declared) as project:
            project.schedules.sync()


def test_serve_once_launches_real_pipeline_runs(project: Shipyard, flows: str) -> None:
    now = datetime.now(UTC)
    project.schedules.add(
        "q", f"{flows}:quarterly", every="1h", params={"n": 3}, now=now - timedelta(minutes=61)
    )
    seen: list[tuple[str, str]] = []
    ids = project.schedules.serve(once=True, on_launch=lambda name, rid: seen.append((name, rid)))
    assert len(ids) == 1 and seen == [("q", ids[0])]
    run = project.pipelines.get(ids[0])
    assert run.schedule == "q" and run.status == "succeeded" and run.params == {"n": 3}
    assert project.schedules.get("q").last_run_id == ids[0]


def test_a_relative_target_is_found_from_the_project_whatever_the_working_folder(
    project: Shipyard, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (project.settings.root / "pipelines").mkdir()
    (project.settings.root / "pipelines" / "flows.py").write_text(FLOWS)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the scheduler started from another folder
    now = datetime.now(UTC)

    project.schedules.add(
        "rel", "pipelines/flows.py:quarterly", every="1h", now=now - timedelta(minutes=61)
    )
    ids = project.schedules.serve(once=True)

    assert project.schedules.get("rel").target == "pipelines/flows.py:quarterly"  # as written
    assert len(ids) == 1 and project.pipelines.get(ids[0]).status == "succeeded"


def test_serve_ticks_until_stopped(project: Shipyard, flows: str) -> None:
    launcher = Launcher()
    schedules = service(project, launcher)
    schedules.add("s", f"{flows}:quarterly", every="1s", now=datetime.now(UTC))
    stop = threading.Event()
    threading.Timer(2.0, stop.set).start()
    started = time.monotonic()
    ids = schedules.serve(stop, tick_seconds=0.2)
    assert time.monotonic() - started < 5
    assert 1 <= len(ids) <= 3 and len(ids) == len(launcher.launched)


RACER = """
import sys, os, time, json
from datetime import datetime, timedelta, UTC
from shipyard.domain.ids import new_id
from shipyard.services.schedules import ScheduleService
from shipyard.services.audit import AuditService
from shipyard.stores.metadata import SqlMetadataStore

uri, out, go, t0 = sys.argv[1], sys.argv[2], sys.argv[3], datetime.fromisoformat(sys.argv[4])
store = SqlMetadataStore(uri, durability="normal")

def launch(schedule, due):
    run_id = new_id()
    with open(out, "a") as f:  # O_APPEND: whole lines from both processes
        f.write(json.dumps([schedule.name, due.isoformat(), os.getpid()]) + "\\n")
    return run_id

service = ScheduleService(store, AuditService(store), user="racer", launch=launch)
while not os.path.exists(go):
    time.sleep(0.005)
for minute in range(1, 21):
    service.tick(t0 + timedelta(minutes=minute))
store.close()
"""


@pytest.mark.slow
def test_two_scheduler_processes_launch_each_due_run_exactly_once(
    project: Shipyard, flows: str, tmp_path: Path
) -> None:
    schedules = service(project, Launcher())
    names = [f"s{i:02d}" for i in range(12)]
    for i, name in enumerate(names):
        schedules.add(
            name,
            f"{flows}:quarterly",
            every="1m",
            missed="catchup:100" if i % 2 else "skip",
            now=T0,
        )
    out, go = tmp_path / "launched.jsonl", tmp_path / "go"
    script = tmp_path / "racer.py"
    script.write_text(RACER)
    args = [sys.executable, str(script), project.metadata.uri, str(out), str(go), T0.isoformat()]
    racers = [subprocess.Popen(args) for _ in range(2)]
    time.sleep(1.5)  # both imported and waiting
    go.touch()
    for racer in racers:
        assert racer.wait(120) == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    launched = [(name, due) for name, due, _ in lines]
    assert len(launched) == len(set(launched)), "a run was launched twice"
    minutes = [(T0 + timedelta(minutes=m)).isoformat() for m in range(1, 21)]
    for i, name in enumerate(names):
        dues = [due for n, due in launched if n == name]
        assert dues[-1] == minutes[-1], name  # the last tick's run always goes out
        if i % 2:  # catch-up: every minute exactly once, whichever process won it
            assert sorted(dues) == minutes, name
    pids = {pid for _, _, pid in lines}
    print(f"launches by process: {[sum(1 for *_, p in lines if p == pid) for pid in pids]}")
