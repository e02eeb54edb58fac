"""``shipyard run --no-cache`` and ``shipyard pipelines cancel`` on a run that really runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from typer.testing import Result

Invoke = Callable[..., Result]

CACHED = """
import pathlib
import shipyard as sy

HERE = pathlib.Path(__file__).parent

@sy.task(cache=True)
def square(x: int) -> int:
    with (HERE / "calls").open("a") as out:
        out.write("square\\n")
    return x * x

@sy.task
def plus_one(y: int) -> int:
    return y + 1

@sy.pipeline(name="squares")
def flow(x: int = 3) -> int:
    return plus_one(square(x))
"""


def _tasks(cli: Invoke, run_id: str) -> dict[str, str]:
    shown = json.loads(cli("pipelines", "show", run_id, "--json").stdout)
    return {t["key"]: t["status"] for t in shown["tasks"]}


def test_no_cache_reruns_a_cached_task(cli: Invoke, tmp_path: Path) -> None:
    assert cli("init").exit_code == 0
    (tmp_path / "flow.py").write_text(CACHED)
    calls = tmp_path / "calls"

    first = json.loads(cli("run", "flow.py:flow", "--json").stdout)
    cached = json.loads(cli("run", "flow.py:flow", "--json").stdout)
    assert first["result"] == cached["result"] == 10
    assert _tasks(cli, cached["id"]) == {"square-0": "cached", "plus_one-0": "succeeded"}
    assert "cached" in cli("pipelines", "show", cached["id"]).output
    assert calls.read_text().count("square") == 1

    forced = cli("run", "flow.py:flow", "--no-cache", "--json")
    assert forced.exit_code == 0, forced.output
    assert json.loads(forced.stdout)["result"] == 10
    forced_id = json.loads(forced.stdout)["id"]
    assert _tasks(cli, forced_id) == {"square-0": "succeeded", "plus_one-0": "succeeded"}
    assert calls.read_text().count("square") == 2

    after = json.loads(cli("run", "flow.py:flow", "--json").stdout)  # the cache is still used
    assert _tasks(cli, after["id"])["square-0"] == "cached"
    assert calls.read_text().count("square") == 2


SLEEPY = """
import ctypes, os, pathlib
import shipyard as sy

HERE = pathlib.Path(__file__).parent

@sy.task(timeout="120s")
def sleeper(seconds: int) -> int:
    (HERE / "pid").write_text(str(os.getpid()))
    ctypes.CDLL(None).sleep(seconds)  # in C: only a kill stops it
    return seconds

@sy.task
def after(x: int) -> int:
    return x + 1

@sy.pipeline(name="sleepy")
def flow(seconds: int = 60) -> int:
    return after(sleeper(seconds))
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"


def _wait_for(check: Callable[[], Any], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


def test_cancel_stops_a_run_whose_task_sleeps_in_a_process(cli: Invoke, tmp_path: Path) -> None:
    assert cli("init").exit_code == 0
    (tmp_path / "sleepy.py").write_text(SLEEPY)
    pid_file = tmp_path / "pid"
    # The driver is another process, as when `shipyard run` runs in another terminal.
    driver = subprocess.Popen(
        [sys.executable, "-m", "shipyard", "run", "sleepy.py:flow", "--json"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for(lambda: pid_file.exists() and pid_file.read_text())
        task_pid = int(pid_file.read_text())
        assert task_pid != driver.pid and _alive(task_pid)
        (running,) = json.loads(cli("pipelines", "list", "--json").stdout)["runs"]
        assert running["status"] == "running"

        cancelled = cli("pipelines", "cancel", running["id"][:12])
        assert cancelled.exit_code == 0, cancelled.output
        assert f"cancel requested for run {running['id']}" in cancelled.output
        out, err = driver.communicate(timeout=20)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait(10)

    assert driver.returncode == 1, err
    assert json.loads(out)["status"] == "cancelled"
    shown = json.loads(cli("pipelines", "show", running["id"], "--json").stdout)
    assert shown["run"]["status"] == "cancelled"
    assert _tasks(cli, running["id"]) == {"sleeper-0": "cancelled", "after-0": "cancelled"}
    _wait_for(lambda: not _alive(task_pid), 10)
    ended = cli("pipelines", "cancel", running["id"])
    assert ended.exit_code == 3 and "has ended" in ended.output
