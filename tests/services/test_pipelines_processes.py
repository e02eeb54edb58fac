"""Pipelines across processes: timeouts, cancel, resume, crashed drivers, target files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from shipyard.app import Shipyard
from shipyard.domain.pipelines import PipelineRun
from shipyard.errors import ConflictError, InvalidArgumentError, PipelineNotFoundError
from shipyard.services.pipeline_targets import load_pipeline

SLEEPY = """
import ctypes, os, pathlib
import shipyard as sy

HERE = pathlib.Path(__file__).parent

@sy.task(timeout="{timeout}")
def sleeper(seconds: int) -> int:
    (HERE / "pid").write_text(str(os.getpid()))
    ctypes.CDLL(None).sleep(seconds)  # in C: only a kill stops it
    return seconds

@sy.task
def after(x: int) -> int:
    return x + 1

@sy.pipeline
def flow(seconds: int = 30) -> int:
    return after(sleeper(seconds))
"""

RESUMABLE = """
import pathlib
import shipyard as sy

HERE = pathlib.Path(__file__).parent

@sy.task
def first(x: int) -> int:
    with (HERE / "count").open("a") as out:
        out.write("first\\n")
    return x + 1

@sy.task
def second(y: int) -> int:
    if not (HERE / "ok").exists():
        raise RuntimeError("not yet")
    return y * 10

@sy.pipeline
def flow(x: int = 1) -> int:
    return second(first(x))
"""


def _write(folder: Path, text: str, name: str = "flow.py") -> str:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return f"{path}:flow"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"


def _wait_for(check: object, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


@pytest.mark.parametrize("metadata_uri", ["sqlite"], indirect=True)
def test_a_task_over_its_timeout_sleeping_in_c_is_killed(project: Shipyard, tmp_path: Path) -> None:
    target = _write(tmp_path, SLEEPY.format(timeout="1s"))
    started = time.monotonic()
    run = project.pipelines.run(target, {"seconds": 30})
    assert time.monotonic() - started < 8
    assert run.status == "failed"
    tasks = {t.key: t for t in project.pipelines.tasks(run.id)}
    assert tasks["sleeper-0"].status == "failed"
    assert "ran past its timeout of 1s" in (tasks["sleeper-0"].error or "")
    assert tasks["after-0"].status == "cancelled"
    pid = int((tmp_path / "pid").read_text())
    assert pid != os.getpid()
    _wait_for(lambda: not _alive(pid), 5)


def test_cancel_stops_a_running_run_within_a_second(project: Shipyard, tmp_path: Path) -> None:
    target = _write(tmp_path, SLEEPY.format(timeout="60s"))
    done: list[PipelineRun] = []
    driver = threading.Thread(
        target=lambda: done.append(project.pipelines.run(target, {"seconds": 30}))
    )
    driver.start()
    _wait_for(lambda: (tmp_path / "pid").exists() and (tmp_path / "pid").read_text())
    (running,) = project.pipelines.list()
    assert running.status == "running"
    asked = time.monotonic()
    project.pipelines.cancel(running.id)
    driver.join(10)
    assert not driver.is_alive() and time.monotonic() - asked < 2.0
    assert done[0].status == "cancelled"
    statuses = {t.key: t.status for t in project.pipelines.tasks(running.id)}
    assert statuses == {"sleeper-0": "cancelled", "after-0": "cancelled"}
    _wait_for(lambda: not _alive(int((tmp_path / "pid").read_text())), 5)
    with pytest.raises(ConflictError, match="has ended"):
        project.pipelines.cancel(running.id)


def test_resume_reuses_succeeded_tasks_and_reruns_the_failed_ones(
    project: Shipyard, tmp_path: Path
) -> None:
    target = _write(tmp_path, RESUMABLE)
    failed = project.pipelines.run(target, {"x": 1})
    assert failed.status == "failed"
    (tmp_path / "ok").touch()
    resumed = project.pipelines.resume(failed.id)
    assert resumed.status == "succeeded" and resumed.result == 20
    assert resumed.resumed_from == failed.id and resumed.params == {"x": 1}
    statuses = {t.key: t.status for t in project.pipelines.tasks(resumed.id)}
    assert statuses == {"first-0": "cached", "second-0": "succeeded"}
    assert (tmp_path / "count").read_text() == "first\n"  # first ran once
    with pytest.raises(ConflictError, match="succeeded"):
        project.pipelines.resume(resumed.id)


def test_a_run_whose_driver_was_killed_is_marked_crashed(project: Shipyard, tmp_path: Path) -> None:
    flow = _write(
        tmp_path,
        """
        import time
        import shipyard as sy

        @sy.task
        def slow() -> None:
            time.sleep(60)

        @sy.pipeline
        def flow() -> None:
            slow()
        """,
    )
    code = (
        "import sys, shipyard as sy; "
        "p = sy.connect(sys.argv[1], metadata_uri=sys.argv[2]); "
        "p.pipelines.run(sys.argv[3], {})"
    )
    driver = subprocess.Popen(
        [sys.executable, "-c", code, str(project.settings.root), project.metadata.uri, flow]
    )
    try:
        _wait_for(
            lambda: (
                project.pipelines.list() and project.pipelines.tasks(project.pipelines.list()[0].id)
            )
        )
        (running,) = project.pipelines.list()
        assert running.status == "running" and running.pid == driver.pid
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait(10)
    (crashed,) = project.pipelines.list()
    assert crashed.status == "crashed" and f"pid {driver.pid}" in (crashed.error or "")
    assert [t.status for t in project.pipelines.tasks(crashed.id)] == ["crashed"]


def test_a_pipeline_file_with_a_syntax_error_names_the_file_and_line(tmp_path: Path) -> None:
    target = _write(tmp_path, "import shipyard as sy\n\n@sy.pipeline\ndef flow(:\n    pass\n")
    with pytest.raises(InvalidArgumentError, match=r"syntax error in .*flow\.py, line 4"):
        load_pipeline(target)


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("missing.py:flow", "does not exist"),
        ("flow.py:nothing", "has no attribute 'nothing'"),
        ("flow.py:sy", "not a @pipeline function"),
        ("no_such_package_xyz:flow", "no module named"),
    ],
)
def test_a_bad_target_says_what_is_wrong(tmp_path: Path, target: str, message: str) -> None:
    _write(tmp_path, "import shipyard as sy\n")
    location, _, name = target.partition(":")
    if location.endswith(".py"):
        target = f"{tmp_path / location}:{name}"
    with pytest.raises(PipelineNotFoundError, match=message):
        load_pipeline(target)


def test_a_target_without_a_name_is_rejected() -> None:
    with pytest.raises(InvalidArgumentError, match="must look like"):
        load_pipeline("flow.py")
