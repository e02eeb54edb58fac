"""The same tracking tests in local mode and remote mode (a real server on loopback)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shipyard.client import RemoteProject
from shipyard.domain.lineage import Node
from shipyard.errors import ConflictError, InvalidArgumentError, NotFoundError

from .conftest import Team


@pytest.fixture(params=["local", "remote"])
def runs(request: pytest.FixtureRequest, team: Team) -> Iterator[Any]:
    """The run service of the project, or of a remote project through the server."""
    if request.param == "local":
        yield team.project.runs
        return
    with RemoteProject(team.url, team.tokens["editor"]) as remote:
        yield remote.runs


def test_a_run_records_params_tags_metrics_and_its_end(runs: Any) -> None:
    with runs.start_run("churn", name="first", capture=False) as run:
        run.log_params({"max_depth": 5, "lr": 0.1})
        run.set_tag("team", "risk")
        for step in range(100):
            run.log_metric("loss", 1.0 / (step + 1))
        run.log_metric("odd", float("nan"))
        run.log_metric("odd", float("inf"))
    found = runs.get(run.id)
    assert found.status == "finished"
    assert found.end_time is not None
    assert found.experiment == "churn"
    assert found.name == "first"
    assert found.params == {"max_depth": "5", "lr": "0.1"}
    assert found.tags["team"] == "risk"
    assert found.metrics["loss"].count == 100
    assert found.metrics["loss"].value == pytest.approx(0.01)
    assert found.metrics["odd"].count == 2
    assert math.isinf(found.metrics["odd"].value)


def test_metrics_are_flushed_within_a_second_before_the_run_ends(runs: Any) -> None:
    run = runs.start_run("churn", capture=False)
    try:
        run.log_metric("auc", 0.5)
        deadline = time.monotonic() + 3
        while "auc" not in runs.get(run.id).metrics:
            assert time.monotonic() < deadline, "the point did not reach the store in time"
            time.sleep(0.1)
    finally:
        run.end()


def test_a_param_cannot_change(runs: Any) -> None:
    with runs.start_run("churn", capture=False) as run:
        run.log_param("max_depth", 5)
        run.log_param("max_depth", 5)
        with pytest.raises(ConflictError, match="max_depth"):
            run.log_param("max_depth", 6)
    assert runs.get(run.id).params == {"max_depth": "5"}


def test_logging_to_an_ended_run_is_refused(runs: Any) -> None:
    run = runs.start_run("churn", capture=False)
    run.end()
    with pytest.raises(ConflictError, match="ended"):
        run.log_param("a", 1)


def test_a_failing_block_ends_the_run_as_failed(runs: Any) -> None:
    with pytest.raises(RuntimeError), runs.start_run("churn", capture=False) as run:
        raise RuntimeError("boom")
    assert runs.get(run.id).status == "failed"


def test_nested_runs_get_their_parent(runs: Any) -> None:
    with (
        runs.start_run("churn", capture=False) as parent,
        runs.start_run("churn", capture=False) as child,
    ):
        pass
    assert runs.get(child.id).parent_id == parent.id


def test_search_filters_and_orders(runs: Any) -> None:
    for depth in (3, 5, 7):
        with runs.start_run("search", capture=False) as run:
            run.log_param("depth", depth)
            run.log_metric("auc", depth / 10)
    page = runs.search("search", filter="metrics.auc > 0.4", order_by="metrics.auc desc")
    assert [r.params["depth"] for r in page] == ["7", "5"]
    with pytest.raises(InvalidArgumentError):
        runs.search("search", filter="metrics.auc >>> 1")


def test_artifacts_go_in_by_content_and_come_back_verified(runs: Any, tmp_path: Path) -> None:
    folder = tmp_path / "plots"
    (folder / "deep").mkdir(parents=True)
    (folder / "a.txt").write_text("alpha")
    (folder / "deep" / "b.bin").write_bytes(os.urandom(300_000))
    with runs.start_run("files", capture=False) as run:
        run.log_artifact(folder, "charts")
        run.log_dict({"auc": 0.9}, "metrics/summary.json")
        run.log_text("same words", "notes/1.txt")
        run.log_text("same words", "notes/2.txt")  # same content, stored once
    listed = runs.artifacts(run.id)
    assert [a.path for a in listed] == [
        "charts/a.txt",
        "charts/deep/b.bin",
        "metrics/summary.json",
        "notes/1.txt",
        "notes/2.txt",
    ]
    assert listed[3].digest == listed[4].digest
    assert runs.read_artifact(run.id, "charts/a.txt") == b"alpha"
    assert json.loads(runs.read_artifact(run.id, "metrics/summary.json")) == {"auc": 0.9}
    written = runs.download_artifacts(run.id, tmp_path / "out", "charts/deep")
    assert [p.relative_to(tmp_path / "out").as_posix() for p in written] == ["charts/deep/b.bin"]
    assert written[0].read_bytes() == (folder / "deep" / "b.bin").read_bytes()
    with pytest.raises(NotFoundError, match=r"nothing\.txt"):
        runs.read_artifact(run.id, "nothing.txt")


def test_artifact_paths_that_climb_out_are_refused(runs: Any, tmp_path: Path) -> None:
    (tmp_path / "f.txt").write_text("x")
    with runs.start_run("files", capture=False) as run:
        for bad in ("../escape.txt", "a/../../b.txt", "a\\b.txt", "./a.txt"):
            with pytest.raises(InvalidArgumentError):
                run.log_text("x", bad)
    assert runs.artifacts(run.id) == []


def test_use_dataset_links_the_version_the_reference_means_now(
    runs: Any, team: Team, tmp_path: Path
) -> None:
    (tmp_path / "d.csv").write_text("a,b\n1,2\n")
    team.project.datasets.add("inputs", tmp_path / "d.csv")
    with runs.start_run("lineage", capture=False) as run:
        run.use_dataset("inputs@latest")
        with pytest.raises(NotFoundError, match="nope"):
            run.use_dataset("nope@1")
    graph = team.project.lineage.graph(Node("run", run.id))
    assert [(e.source.id, e.relation) for e in graph.upstream] == [("inputs@1", "consumed_by")]


def test_an_unknown_run_is_not_found(runs: Any) -> None:
    with pytest.raises(NotFoundError):
        runs.get("0" * 32)


def test_the_sdk_works_unchanged_with_shipyard_uri_and_token(team: Team, tmp_path: Path) -> None:
    script = (
        "import shipyard as sy\n"
        "with sy.start_run('remote', capture=False) as run:\n"
        "    run.log_params({'a': 1})\n"
        "    run.set_tag('t', 'x')\n"
        "    for i in range(500):\n"
        "        run.log_metric('m', i)\n"
        "print(run.id)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
    env.update(SHIPYARD_URI=team.url, SHIPYARD_TOKEN=team.tokens["editor"])
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    run = team.project.runs.get(done.stdout.strip())
    assert run.user == "eddie"
    assert run.params == {"a": "1"}
    assert run.metrics["m"].count == 500
    assert run.status == "finished"
    assert not (tmp_path / ".shipyard").exists()  # nothing was written locally
