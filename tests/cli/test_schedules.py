from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import Result

from shipyard.app import Shipyard
from shipyard.stores.metadata.schema import pipeline_runs

Invoke = Callable[..., Result]

FLOWS = """
import shipyard as sy


@sy.task
def double(x: int) -> int:
    return 2 * x


@sy.pipeline(name="nightly", schedule="0 3 * * *")
def nightly(n: int = 1) -> int:
    return double(n)


@sy.pipeline
def plain(n: int, label: str = "x") -> int:
    return double(n)
"""


@pytest.fixture
def flows(tmp_path: Path) -> Path:
    path = tmp_path / "flows.py"
    path.write_text(FLOWS)
    return path


def ok(result: Result) -> object:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_add_list_show_update_remove_round_trip(cli: Invoke, flows: Path) -> None:
    added = ok(
        cli(
            "schedules", "add", "daily", "flows.py:plain", "--cron", "0 3 * * *",
            "--param", "n=5", "--missed", "catchup", "--max-catchup", "3", "--json",
        )
    )  # fmt: skip
    assert isinstance(added, dict)
    assert added["params"] == {"n": 5} and added["missed"] == "catchup"
    assert added["max_catchup"] == 3 and added["next_run_at"].endswith("03:00:00+00:00")
    listed = ok(cli("schedules", "list", "--json"))
    assert [s["name"] for s in listed] == ["daily"]  # type: ignore[attr-defined]
    shown = ok(cli("schedules", "show", "daily", "--json"))
    assert shown == added
    updated = ok(cli("schedules", "update", "daily", "--every", "1h", "--disable", "--json"))
    assert updated["trigger"] == "every 1h" and updated["enabled"] is False  # type: ignore[index]
    text = cli("schedules", "list")
    assert "daily" in text.output and "disabled" in text.output
    assert "every 1h" in cli("schedules", "show", "daily").output
    ok(cli("schedules", "remove", "daily", "--json"))
    assert ok(cli("schedules", "list", "--json")) == []
    gone = cli("schedules", "show", "daily")
    assert gone.exit_code == 2 and "'daily' does not exist" in gone.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cron", "0 3 * * 8"], "day-of-week field '8'"),
        (["--cron", "0 3 * *"], "'0 3 * *' is not valid: it has 4 field(s)"),
        (["--cron", "0 3 * * *", "--every", "1h"], "exactly one"),
        ([], "exactly one"),
        (["--every", "1h", "--param", "n"], "KEY=VALUE"),
        (["--every", "1h", "--param", "bogus=1"], "unknown parameter 'bogus'"),
        (["--every", "1h", "--missed", "sometimes"], "'skip' or 'catchup'"),
    ],
)
def test_bad_input_exits_2_naming_the_problem_and_stores_nothing(
    cli: Invoke, flows: Path, args: list[str], message: str
) -> None:
    result = cli("schedules", "add", "s", "flows.py:plain", *args)
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())
    assert ok(cli("schedules", "list", "--json")) == []


def test_an_unknown_target_and_a_duplicate_name_exit_2(cli: Invoke, flows: Path) -> None:
    missing = cli("schedules", "add", "s", "nowhere.py:flow", "--every", "1h")
    assert missing.exit_code == 2 and "nowhere.py does not exist" in missing.output
    ok(cli("schedules", "add", "s", "flows.py:nightly", "--every", "1h", "--json"))
    again = cli("schedules", "add", "s", "flows.py:nightly", "--cron", "@daily")
    assert again.exit_code == 2 and "exists already" in again.output
    assert ok(cli("schedules", "show", "s", "--json"))["trigger"] == "every 1h"  # type: ignore[index]


def test_sync_registers_decorator_and_config_schedules(
    cli: Invoke, flows: Path, tmp_path: Path
) -> None:
    [created] = ok(cli("schedules", "sync", "flows.py:nightly", "--json"))  # type: ignore[misc]
    assert created["action"] == "created" and created["schedule"]["name"] == "nightly"
    no_schedule = cli("schedules", "sync", "flows.py:plain")
    assert no_schedule.exit_code == 2 and "declares no schedule" in no_schedule.output
    (tmp_path / "shipyard.toml").write_text(
        '[schedules.hourly]\ntarget = "flows.py:plain"\nevery = "1h"\nparams = { n = 2 }\n'
    )
    result = cli("schedules", "sync")
    assert result.exit_code == 0 and "created hourly" in result.output
    assert "unchanged hourly" in cli("schedules", "sync").output


def test_scheduler_once_runs_due_pipelines(cli: Invoke, flows: Path) -> None:
    ok(cli("schedules", "add", "fast", "flows.py:plain", "--every", "1s", "-p", "n=4", "--json"))
    time.sleep(1.1)
    launched = ok(cli("scheduler", "--once", "--json"))
    assert isinstance(launched, dict) and len(launched["launched"]) == 1
    again = cli("scheduler", "--once")
    assert again.exit_code == 0 and "Nothing was due" in again.output
    shown = ok(cli("schedules", "show", "fast", "--json"))
    assert shown["last_run_id"] == launched["launched"][0]  # type: ignore[index]


@pytest.mark.slow
def test_two_scheduler_processes_launch_each_due_pipeline_run_once(
    project: Shipyard, tmp_path: Path
) -> None:
    flows = tmp_path / "flows.py"
    flows.write_text(FLOWS)
    created = datetime.now(UTC) - timedelta(hours=2, minutes=1)
    names = [f"s{i}" for i in range(6)]
    for name in names:
        # due 61 and 1 minutes ago: two runs each with catch-up
        project.schedules.add(
            name, f"{flows}:plain", every="1h", params={"n": 1}, missed="catchup", now=created
        )
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
    env["SHIPYARD_METADATA_URI"] = project.settings.metadata_uri
    env["SHIPYARD_ARTIFACT_URI"] = project.settings.artifact_uri
    command = [sys.executable, "-m", "shipyard", "-C", str(project.settings.root)]
    racers = [
        subprocess.Popen(
            [*command, "scheduler", "--once", "--json"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [racer.communicate(timeout=240) for racer in racers]
    for racer, (_, err) in zip(racers, outputs, strict=True):
        assert racer.returncode == 0, err
    reported = [json.loads(out)["launched"] for out, _ in outputs]
    with project.metadata.read() as conn:
        rows = conn.execute(select(pipeline_runs.c.id, pipeline_runs.c.schedule)).all()
    assert Counter(r.schedule for r in rows) == dict.fromkeys(names, 2)
    assert sorted(reported[0] + reported[1]) == sorted(r.id for r in rows)
    print(f"runs launched by each process: {[len(r) for r in reported]}")


@pytest.mark.slow
def test_the_scheduler_loop_stops_on_sigterm_and_reports_its_runs(
    cli: Invoke, flows: Path, tmp_path: Path
) -> None:
    ok(cli("schedules", "add", "fast", "flows.py:plain", "--every", "1s", "-p", "n=2", "--json"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
    loop = subprocess.Popen(
        [sys.executable, "-m", "shipyard", "scheduler", "--tick", "0.2", "--json"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # until the first scheduled run is recorded
        shown = ok(cli("schedules", "show", "fast", "--json"))
        if shown["last_run_id"]:  # type: ignore[index]
            break
        time.sleep(0.2)
    loop.send_signal(signal.SIGTERM)
    out, err = loop.communicate(timeout=60)
    assert loop.returncode == 0, err
    launched = json.loads(out)["launched"]
    assert launched and shown["last_run_id"] in launched  # type: ignore[index]
