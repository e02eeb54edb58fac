"""``shipyard run`` and ``shipyard pipelines``: run, list, show, logs, cancel, resume."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import Result

import shipyard

Invoke = Callable[..., Result]

FLOW = """
import pathlib
import shipyard as sy

@sy.task
def load(n: int) -> list[int]:
    print(f"loading {n}")
    return list(range(n))

@sy.task
def total(xs: list[int]) -> int:
    if not (pathlib.Path(__file__).parent / "ok").exists():
        raise RuntimeError("total is not ready")
    return sum(xs)

@sy.pipeline(name="numbers")
def flow(n: int = 3) -> int:
    return total(load(n))
"""


@pytest.fixture
def target(cli: Invoke, tmp_path: Path) -> str:
    assert cli("init").exit_code == 0
    (tmp_path / "flow.py").write_text(FLOW)
    (tmp_path / "ok").touch()
    return "flow.py:flow"


def test_run_prints_the_run_and_json_has_its_record(
    cli: Invoke, target: str, tmp_path: Path
) -> None:
    result = cli("run", target, "--param", "n=4")
    assert result.exit_code == 0, result.output
    assert "pipeline numbers run" in result.output and "succeeded" in result.output
    assert "result: 6" in result.output
    record = json.loads(cli("run", target, "-p", "n=5", "--json").stdout)
    assert record["status"] == "succeeded" and record["params"] == {"n": 5}
    assert record["result"] == 10
    # stored absolute, so that resume and schedules load it from any folder
    assert record["target"] == f"{(tmp_path / 'flow.py').resolve()}:flow"


def test_list_show_and_logs_of_a_run(cli: Invoke, target: str, tmp_path: Path) -> None:
    run_id = json.loads(cli("run", target, "--json").stdout)["id"]
    listed = json.loads(cli("pipelines", "list", "--json").stdout)["runs"]
    assert [r["id"] for r in listed] == [run_id]
    assert "numbers" in cli("pipelines", "list").output
    shown = cli("pipelines", "show", run_id)
    assert shown.exit_code == 0 and "load-0" in shown.output and "total-0" in shown.output
    detail = json.loads(cli("pipelines", "show", run_id, "--json").stdout)
    assert [t["key"] for t in detail["tasks"]] == ["load-0", "total-0"]
    assert detail["tasks"][1]["upstream"] == ["load-0"]
    logs = cli("pipelines", "logs", run_id, "--task", "load")
    assert "loading 3" in logs.output
    page = tmp_path / "run.html"
    assert cli("pipelines", "show", run_id, "--html", str(page)).exit_code == 0
    assert "<svg" in page.read_text()


def test_a_failed_run_exits_1_and_resume_finishes_it(
    cli: Invoke, target: str, tmp_path: Path
) -> None:
    (tmp_path / "ok").unlink()
    failed = cli("run", target, "--json")
    assert failed.exit_code == 1
    run_id = json.loads(failed.stdout)["id"]
    assert "total is not ready" in cli("pipelines", "logs", run_id).output
    (tmp_path / "ok").touch()
    resumed = json.loads(cli("pipelines", "resume", run_id, "--json").stdout)
    assert resumed["status"] == "succeeded" and resumed["resumed_from"] == run_id
    tasks = json.loads(cli("pipelines", "show", resumed["id"], "--json").stdout)["tasks"]
    assert {t["key"]: t["status"] for t in tasks} == {"load-0": "cached", "total-0": "succeeded"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--param", "m=1"), "unknown parameter 'm'"),
        (("--param", "n=three"), "parameter 'n' must be int"),
        (("--param", "n"), "must look like NAME=VALUE"),
        (("--executor", "spark"), "unknown executor"),
    ],
)
def test_bad_run_arguments_are_one_line_errors(
    cli: Invoke, target: str, args: tuple[str, ...], message: str
) -> None:
    result = cli("run", target, *args)
    assert result.exit_code == 2 and message in result.output
    assert json.loads(cli("pipelines", "list", "--json").stdout)["runs"] == []


def test_a_file_with_a_syntax_error_is_named_with_its_line(
    cli: Invoke, target: str, tmp_path: Path
) -> None:
    (tmp_path / "broken.py").write_text("import shipyard\n\ndef flow(:\n")
    result = cli("run", "broken.py:flow")
    assert result.exit_code == 2 and "broken.py, line 3" in result.output


def test_cancel_of_an_ended_run_and_of_an_unknown_run(cli: Invoke, target: str) -> None:
    run_id = json.loads(cli("run", target, "--json").stdout)["id"]
    ended = cli("pipelines", "cancel", run_id)
    assert ended.exit_code == 3 and "has ended" in ended.output
    missing = cli("pipelines", "show", "0" * 32)
    assert missing.exit_code == 2 and "does not exist" in missing.output


FOLLOWED = """
import time
import shipyard as sy

@sy.task
def quick() -> int:
    print("quick is done")
    return 1

@sy.task
def slow(x: int) -> int:
    time.sleep(1.5)
    print("slow is done")
    return x

@sy.pipeline
def flow() -> int:
    return slow(quick())
"""


def test_logs_follow_prints_tasks_as_they_end_until_the_run_ends(
    cli: Invoke, target: str, tmp_path: Path
) -> None:
    (tmp_path / "followed.py").write_text(FOLLOWED)
    project = shipyard.connect(tmp_path)
    driver = threading.Thread(target=project.pipelines.run, args=("followed.py:flow", {}))
    driver.start()
    try:
        deadline = time.monotonic() + 10
        while not project.pipelines.list():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        (run,) = project.pipelines.list()
        result = cli("pipelines", "logs", run.id, "--follow")
        assert "quick is done" in result.output and "slow is done" in result.output
        assert project.pipelines.get(run.id).status == "succeeded"
    finally:
        driver.join(10)
        project.close()
