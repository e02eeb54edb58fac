"""Pipelines on Ray: a cached task is reused, and resume reruns only the failed task.

These share the process's one local Ray instance with ``test_ray.py`` (the same ``ray`` and
``xdist_group("ray")`` marks: one xdist worker runs them all, Ray starts once).
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from shipyard.app import Shipyard, build
from shipyard.executors.ray import connect
from shipyard.settings import Settings

pytestmark = [pytest.mark.ray, pytest.mark.xdist_group("ray")]


@pytest.fixture(scope="module")
def ray_cpus() -> int:
    """The CPUs of this process's Ray instance, started once (2 unless started before)."""
    import ray

    connect(num_cpus=2)
    return int(ray.cluster_resources()["CPU"])


@pytest.fixture
def project(ray_cpus: int, tmp_path: Path) -> Iterator[Shipyard]:
    """A fresh SQLite project whose pipelines run on the shared Ray instance."""
    root = tmp_path / "project"
    root.mkdir()
    with build(Settings.load(root, env={}, executor="ray")) as opened:
        yield opened


FLOW = """
import os
import pathlib
import shipyard as sy

HERE = pathlib.Path(__file__).parent

def note(name):
    with (HERE / "calls").open("a") as out:
        out.write(name + " " + str(os.getpid()) + "\\n")

@sy.task(cache={cache})
def prepare(n: int) -> list[int]:
    note("prepare")
    return list(range(n))

@sy.task
def finish(values: list[int]) -> int:
    note("finish")
    if not (HERE / "ok").exists():
        raise RuntimeError("finish is not ready")
    return sum(values)

@sy.pipeline(name="ray-gaps")
def flow(n: int = 4) -> int:
    return finish(prepare(n))
"""


def _target(folder: Path, cache: bool) -> str:
    (folder / "flow.py").write_text(textwrap.dedent(FLOW.format(cache=cache)))
    return f"{folder / 'flow.py'}:flow"


def _calls(folder: Path) -> list[tuple[str, int]]:
    lines = (folder / "calls").read_text().split()
    return [(name, int(pid)) for name, pid in zip(lines[::2], lines[1::2], strict=True)]


def _statuses(project: Shipyard, run_id: str) -> dict[str, str]:
    return {t.key: t.status for t in project.pipelines.tasks(run_id)}


def test_a_cached_task_is_reused_on_ray(project: Shipyard, tmp_path: Path) -> None:
    target = _target(tmp_path, cache=True)
    (tmp_path / "ok").touch()

    first = project.pipelines.run(target, {"n": 5})
    second = project.pipelines.run(target, {"n": 5})

    assert first.executor == second.executor == "ray"
    assert first.status == "succeeded", first.error
    assert first.result == second.result == 10
    assert _statuses(project, first.id) == {"prepare-0": "succeeded", "finish-0": "succeeded"}
    assert _statuses(project, second.id) == {"prepare-0": "cached", "finish-0": "succeeded"}
    calls = _calls(tmp_path)
    assert [name for name, _ in calls] == ["prepare", "finish", "finish"]
    assert all(pid != os.getpid() for _, pid in calls)  # they ran on Ray workers


def test_resume_on_ray_reruns_only_the_failed_task(project: Shipyard, tmp_path: Path) -> None:
    target = _target(tmp_path, cache=False)  # reused by resume, not by the cache

    failed = project.pipelines.run(target, {"n": 4})
    assert failed.status == "failed" and failed.executor == "ray"
    assert _statuses(project, failed.id) == {"prepare-0": "succeeded", "finish-0": "failed"}
    (tmp_path / "ok").touch()

    resumed = project.pipelines.resume(failed.id)

    assert resumed.status == "succeeded", resumed.error
    assert resumed.result == 6 and resumed.executor == "ray"
    assert resumed.resumed_from == failed.id
    assert _statuses(project, resumed.id) == {"prepare-0": "cached", "finish-0": "succeeded"}
    assert [name for name, _ in _calls(tmp_path)] == ["prepare", "finish", "finish"]


READER = """
import shipyard as sy

@sy.task(cache=True)
def rows(root: str, reference: str) -> int:
    with sy.connect(root, user="alice") as project:
        return int(project.datasets.get(reference).to_arrow().num_rows)

@sy.pipeline(name="ray-reads")
def flow(root: str = "", reference: str = "wine@latest") -> int:
    return rows(root, reference)
"""


def test_a_task_on_ray_that_reads_name_at_latest_reruns_once_the_data_moved(
    project: Shipyard, tmp_path: Path
) -> None:
    import pyarrow as pa

    (tmp_path / "reads.py").write_text(textwrap.dedent(READER))
    target = f"{tmp_path / 'reads.py'}:flow"
    params = {"root": str(project.settings.root)}
    project.datasets.add("wine", pa.table({"x": [1, 2, 3]}))
    assert project.pipelines.run(target, params).result == 3
    cached = project.pipelines.run(target, params)
    assert _statuses(project, cached.id) == {"rows-0": "cached"}
    project.datasets.add("wine", pa.table({"x": [1, 2, 3, 4]}))
    newer = project.pipelines.run(target, params)
    assert newer.executor == "ray" and newer.result == 4, newer.error
    assert _statuses(project, newer.id) == {"rows-0": "succeeded"}
