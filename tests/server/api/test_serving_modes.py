"""`shipyard serve` pointed at a server: the model, the deployment record, the prediction log
and feedback all go through the team server (a real one on loopback), as in a local project.
"""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.datasets import load_wine
from sklearn.tree import DecisionTreeClassifier

from shipyard.client import RemoteProject
from shipyard.domain.lineage import Node
from shipyard.services.prediction_log import batch_types

from ..conftest import Serve
from .conftest import Team


@pytest.fixture
def wine(team: Team) -> pd.DataFrame:
    """wine@1 registered in the team's project (alias live), trained in a run."""
    data = load_wine(as_frame=True)
    X, y = data.data, data.target
    model = DecisionTreeClassifier(max_depth=3, random_state=0).fit(X, y)
    with team.project.runs.start_run("wine", capture=False) as run:
        run.log_model(model, "wine", input_example=X[:5])
    team.project.registry.set_alias("wine@1", "live")
    return X


@pytest.fixture
def remote(team: Team) -> Iterator[RemoteProject]:
    """The server as the editor eddie sees it."""
    with RemoteProject(team.url, team.tokens["editor"], team.project.settings) as found:
        yield found


def test_a_model_served_through_the_server_records_everything_there(
    team: Team, wine: pd.DataFrame, remote: RemoteProject, serve: Serve
) -> None:
    running = serve(remote, "wine@live")
    deployment_id = running.app.session.deployment_id
    assert deployment_id is not None
    stored = team.project.deployments.get(deployment_id)  # the server's own record
    assert (stored.name, stored.version, stored.alias) == ("wine", 1, "live")
    assert stored.status == "running"
    assert stored.started_by == "eddie" and stored.url == running.url
    graph = team.project.lineage.graph(Node("deployment", deployment_id), depth=1)
    assert [e.source.id for e in graph.upstream] == ["wine@1"]

    with httpx.Client(base_url=running.url) as http:
        answer = http.post("/predict", json={"records": wine[:3].to_dict(orient="records")})
        assert answer.status_code == 200, answer.text
        request_id = answer.headers["x-request-id"]
        meta = http.get("/metadata").json()
        assert meta["deployment_id"] == deployment_id and meta["lineage"]["run"]
        labelled = http.post("/feedback", json={"labels": {request_id: 0}})
        assert labelled.status_code == 200 and labelled.json()["stored"] == 1
    running.stop()  # flushes the log to the server, then records the stop

    assert team.project.deployments.get(deployment_id).status == "stopped"
    logged = team.project.predictions.read("wine", deployment_id=deployment_id)
    assert logged.num_rows == 3 and set(logged.column("request_id").to_pylist()) == {request_id}
    assert remote.predictions.read("wine").num_rows == 3  # and read back through the server
    actions = [e.action for e in team.project.audit.list(entity_kind="deployment")]
    assert actions.count("deployment.start") == 1 and actions.count("deployment.stop") == 1


def _batch(deployment_id: str, rows: int = 2, **overrides: Any) -> bytes:
    types = batch_types()
    columns: dict[str, Any] = {
        "request_id": pa.array([f"r{i}" for i in range(rows)], types["request_id"]),
        "row": pa.array([0] * rows, types["row"]),
        "at": pa.array([1_700_000_000_000_000 + i for i in range(rows)], types["at"]),
        "deployment_id": pa.array([deployment_id] * rows, types["deployment_id"]),
        "version": pa.array([1] * rows, types["version"]),
        "latency_ms": pa.array([1.0] * rows, types["latency_ms"]),
        "prediction": pa.array([0] * rows),
    }
    columns.update(overrides)
    sink = io.BytesIO()
    pq.write_table(pa.table(columns), sink)
    return sink.getvalue()


def _start(client: httpx.Client) -> str:
    body = {
        "name": "wine",
        "version": 1,
        "url": "http://10.0.0.5:8080",
        "runtime": "native",
        "host": "box",
        "pid": 42,
    }
    answer = client.post("/api/v1/deployments", json=body)
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def test_only_the_deployments_owner_records_it_and_only_real_batches(
    team: Team, wine: pd.DataFrame
) -> None:
    parquet = {"content-type": "application/octet-stream"}
    with team.client("editor") as eddie, team.client("admin") as alice:
        deployment_id = _start(eddie)
        path = f"/api/v1/deployments/{deployment_id}"
        assert alice.post(f"{path}/heartbeat").status_code == 403
        assert alice.post(f"{path}/stop").status_code == 403
        foreign = alice.post(f"{path}/predictions", content=_batch(deployment_id), headers=parquet)
        assert foreign.status_code == 403 and "started by eddie" in foreign.text
        bad = {
            "not parquet": b"PAR1 but not really",
            "another deployment's rows": _batch("f" * 32),
            "no time column": _batch(deployment_id, at=pa.array([None, None], pa.int64())),
            "no rows": _batch(deployment_id, rows=0),
        }
        for why, body in bad.items():
            answer = eddie.post(f"{path}/predictions", content=body, headers=parquet)
            assert answer.status_code == 422, why
        assert team.project.predictions.read("wine").num_rows == 0  # nothing was stored
        good = eddie.post(f"{path}/predictions", content=_batch(deployment_id), headers=parquet)
        assert good.status_code == 201 and good.json() == {"rows": 2}
        assert team.project.predictions.read("wine").num_rows == 2
        assert eddie.post(f"{path}/switch", json={"version": 9}).status_code == 404
        assert eddie.post(f"{path}/stop").json()["status"] == "stopped"
        assert eddie.post(f"{path}/heartbeat").status_code == 409
        with team.client("viewer") as vic:
            assert _start_status(vic) == 403


def _start_status(client: httpx.Client) -> int:
    body = {"name": "wine", "version": 1, "url": "http://x:1", "runtime": "native"}
    return client.post("/api/v1/deployments", json={**body, "host": "h", "pid": 1}).status_code


def test_the_serve_command_works_against_the_server(
    team: Team, wine: pd.DataFrame, tmp_path: Path
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
    env.update(SHIPYARD_URI=team.url, SHIPYARD_TOKEN=team.tokens["editor"])
    proc = subprocess.Popen(
        [sys.executable, "-m", "shipyard", "serve", "wine@live", "--port", str(port), "--json"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the model server did not become ready"
            try:
                if httpx.get(f"{url}/ready").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        answer = httpx.post(f"{url}/predict", json=wine[:4].to_dict(orient="records"))
        assert answer.status_code == 200
        deployment_id = httpx.get(f"{url}/metadata").json()["deployment_id"]
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode in (0, -signal.SIGTERM), err
    assert json.loads(out)["reference"] == "wine@1"
    deployment = team.project.deployments.get(deployment_id)
    assert deployment.status == "stopped" and deployment.started_by == "eddie"
    assert team.project.predictions.read("wine", deployment_id=deployment_id).num_rows == 4
    assert not (tmp_path / ".shipyard").exists()  # nothing went to a local project
