from __future__ import annotations

import subprocess
import sys
from datetime import timedelta

import pyarrow as pa
import pytest
from sklearn.linear_model import Ridge

from shipyard.app import Shipyard
from shipyard.domain.ids import utcnow
from shipyard.domain.lineage import Node
from shipyard.errors import (
    ConflictError,
    DeploymentNotFoundError,
    InvalidArgumentError,
    NotFoundError,
)
from shipyard.settings import Settings
from shipyard.stores.metadata.schema import deployments

URL = "http://127.0.0.1:8000"


@pytest.fixture
def churn(project: Shipyard) -> Shipyard:
    """Two versions of ``churn`` trained by one run on the dataset ``customers@1``."""
    table = pa.table({"x": [0.0, 1.0, 2.0, 3.0], "y": [0.1, 1.1, 1.9, 3.2]})
    version = project.datasets.add("customers", table).version
    X, y = table.select(["x"]).to_pandas(), table.column("y").to_numpy()
    with project.runs.start_run("churn", capture=False) as run:
        run.use_dataset(version.ref)
        run.log_model(Ridge().fit(X, y), "churn", input_example=X[:2])
        run.log_model(Ridge(alpha=2.0).fit(X, y), "churn", input_example=X[:2])
    return project


def _start(project: Shipyard, version: int = 1, alias: str | None = None) -> str:
    started = project.deployments.start(
        name="churn", version=version, alias=alias, url=URL, runtime="native"
    )
    return started.id


def test_start_records_a_running_deployment_with_audit_and_lineage(churn: Shipyard) -> None:
    started = churn.deployments.start(
        name="churn", version=1, alias="champion", url=URL, runtime="onnx"
    )
    assert (started.status, started.ref, started.alias, started.started_by) == (
        "running",
        "churn@1",
        "champion",
        "alice",
    )
    assert churn.deployments.get(started.id) == started
    assert churn.deployments.list() == [started]
    assert churn.deployments.list(name="other") == []
    entry = churn.audit.list(entity_kind="deployment")[-1]
    assert (entry.action, entry.entity_id, entry.after["ref"]) == (
        "deployment.start",
        started.id,
        "churn@1",
    )
    upstream = churn.lineage.graph(Node("deployment", started.id)).upstream
    reached = {e.source for e in upstream}
    run_id = churn.registry.resolve("churn@1").run_id
    assert reached == {
        Node("model_version", "churn@1"),
        Node("run", str(run_id)),
        Node("dataset_version", "customers@1"),
    }


def test_switch_moves_the_version_and_links_the_new_one(churn: Shipyard) -> None:
    deployment_id = _start(churn, alias="champion")
    churn.deployments.switch(deployment_id, 2)
    assert churn.deployments.get(deployment_id).version == 2
    sources = {e.source for e in churn.lineage.graph(Node("deployment", deployment_id)).upstream}
    assert {Node("model_version", "churn@1"), Node("model_version", "churn@2")} <= sources
    entry = churn.audit.list(entity_kind="deployment")[-1]
    assert (entry.action, entry.before, entry.after) == (
        "deployment.switch",
        {"version": 1},
        {"version": 2},
    )
    with pytest.raises(NotFoundError, match="churn@9 does not exist"):
        churn.deployments.switch(deployment_id, 9)
    assert churn.deployments.get(deployment_id).version == 2


def test_stop_is_recorded_once_and_ends_heartbeats_and_switches(churn: Shipyard) -> None:
    deployment_id = _start(churn)
    churn.deployments.stop(deployment_id)
    churn.deployments.stop(deployment_id)
    stopped = churn.deployments.get(deployment_id)
    assert stopped.status == "stopped"
    assert stopped.stopped_at is not None
    actions = [e.action for e in churn.audit.list(entity_kind="deployment")]
    assert actions == ["deployment.start", "deployment.stop"]
    with pytest.raises(ConflictError, match="stopped"):
        churn.deployments.heartbeat(deployment_id)
    with pytest.raises(ConflictError, match="stopped"):
        churn.deployments.switch(deployment_id, 2)
    assert churn.deployments.list(status="running") == []
    assert [d.id for d in churn.deployments.list(status="stopped")] == [deployment_id]


def test_a_stale_heartbeat_reads_as_stopped_until_the_next_beat(churn: Shipyard) -> None:
    deployment_id = _start(churn)
    long_ago = utcnow() - timedelta(seconds=61)
    with churn.metadata.write() as conn:
        conn.execute(
            deployments.update()
            .where(deployments.c.id == deployment_id)
            .values(heartbeat_at=long_ago)
        )
    stale = churn.deployments.get(deployment_id)
    assert stale.status == "stopped"
    assert stale.stopped_at == long_ago
    assert churn.deployments.list(status="running") == []
    churn.deployments.heartbeat(deployment_id)
    assert churn.deployments.get(deployment_id).status == "running"
    assert [d.id for d in churn.deployments.list(status="running")] == [deployment_id]


_START_AND_EXIT = """
import sys
from shipyard.app import build
from shipyard.settings import Settings

settings = Settings.load(sys.argv[1], env={}, metadata_uri=sys.argv[2], user="bob")
with build(settings) as project:
    started = project.deployments.start(
        name="churn", version=1, alias=None, url="http://127.0.0.1:9", runtime="native"
    )
print(started.id)
"""


def test_a_deployment_whose_process_is_gone_reads_as_stopped(
    churn: Shipyard, settings: Settings
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _START_AND_EXIT, str(settings.root), settings.metadata_uri],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    deployment_id = done.stdout.strip().splitlines()[-1]
    gone = churn.deployments.get(deployment_id)
    assert (gone.status, gone.started_by) == ("stopped", "bob")
    assert churn.deployments.list(status="running") == []
    mine = _start(churn)
    assert [d.id for d in churn.deployments.list(status="running")] == [mine]


def test_an_unknown_deployment_id_is_not_found(churn: Shipyard) -> None:
    for call in (
        lambda: churn.deployments.get("nope"),
        lambda: churn.deployments.stop("nope"),
        lambda: churn.deployments.heartbeat("nope"),
        lambda: churn.deployments.switch("nope", 1),
    ):
        with pytest.raises(DeploymentNotFoundError, match="deployment 'nope' does not exist"):
            call()


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"name": "ghost"}, NotFoundError, "model 'ghost' does not exist"),
        ({"version": 7}, NotFoundError, "churn@7 does not exist"),
        ({"version": 0}, InvalidArgumentError, "whole number >= 1"),
        ({"runtime": "gpu"}, InvalidArgumentError, "runtime is one of onnx, native"),
        ({"name": "../etc"}, InvalidArgumentError, "invalid name"),
        ({"url": ""}, InvalidArgumentError, "URL"),
    ],
)
def test_start_refuses_bad_input_and_stores_nothing(
    churn: Shipyard, options: dict[str, object], error: type[Exception], match: str
) -> None:
    arguments: dict[str, object] = {
        "name": "churn",
        "version": 1,
        "alias": None,
        "url": URL,
        "runtime": "native",
    }
    with pytest.raises(error, match=match):
        churn.deployments.start(**{**arguments, **options})  # type: ignore[arg-type]
    assert churn.deployments.list() == []
    assert churn.audit.list(entity_kind="deployment") == []


def test_list_refuses_an_unknown_status(churn: Shipyard) -> None:
    with pytest.raises(InvalidArgumentError, match="status is one of running, stopped"):
        churn.deployments.list(status="paused")
