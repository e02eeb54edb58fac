"""`shipyard serve` pointed at a server sends its /predict counts with each heartbeat and at
its stop; the heartbeat and stop routes take them as an optional, checked JSON body."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pandas as pd
import pytest
from sklearn.datasets import load_wine
from sklearn.tree import DecisionTreeClassifier

from shipyard.client import RemoteProject
from shipyard.domain.deployments import RequestCounts
from shipyard.domain.ids import utcnow

from ..conftest import Serve
from .conftest import Team


@pytest.fixture
def wine(team: Team) -> pd.DataFrame:
    """wine@1 registered in the team's project."""
    data = load_wine(as_frame=True)
    X, y = data.data, data.target
    model = DecisionTreeClassifier(max_depth=3, random_state=0).fit(X, y)
    team.project.models.log_model(model, "wine", input_example=X[:5])
    return X


@pytest.fixture
def remote(team: Team) -> Iterator[RemoteProject]:
    """The server as the editor eddie sees it."""
    with RemoteProject(team.url, team.tokens["editor"], team.project.settings) as found:
        yield found


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


def test_a_model_served_through_the_server_records_its_counts_there(
    team: Team, wine: pd.DataFrame, remote: RemoteProject, serve: Serve
) -> None:
    opened = utcnow()
    running = serve(remote, "wine@1", heartbeat_every=0.1)
    record = wine[:1].to_dict(orient="records")
    with httpx.Client(base_url=running.url) as http:
        statuses = [http.post("/predict", json={"records": record}).status_code for _ in range(4)]
        statuses.append(http.post("/predict", json={"rows": []}).status_code)
        statuses.append(
            http.post(
                "/predict", content=b"{", headers={"content-type": "application/json"}
            ).status_code
        )
    assert statuses == [200, 200, 200, 200, 422, 400]
    expected = RequestCounts(requests=6, client_errors=2, server_errors=0)
    deadline = time.monotonic() + 30
    while (found := team.project.deployments.request_counts("wine")) != expected:
        assert time.monotonic() < deadline, f"no heartbeat carried the counts: {found}"
        time.sleep(0.05)
    with httpx.Client(base_url=running.url) as http:
        assert http.post("/predict", json={"records": record}).status_code == 200
    running.stop()
    closed = utcnow()
    deployment_id = running.app.session.deployment_id
    assert deployment_id is not None
    assert team.project.deployments.get(deployment_id).started_by == "eddie"
    total = team.project.deployments.request_counts("wine", 1, opened, closed)
    assert total == RequestCounts(requests=7, client_errors=2, server_errors=0)


@pytest.mark.parametrize(
    "body",
    [
        {"requests": -1},
        {"requests": True},
        {"requests": 1.5},
        {"requests": "3"},
        {"requests": 2**63},
        {"requests": 3, "client_errors": -1},
        {"client_errors": 1},
        {"requests": 3, "server_errors": 1, "bogus": 1},
        {"requests": 1, "client_errors": 1, "server_errors": 1},  # more errors than requests
        [1, 2, 3],
    ],
)
def test_bad_counts_bodies_are_refused_and_record_nothing(
    team: Team, wine: pd.DataFrame, body: Any
) -> None:
    with team.client("editor") as eddie:
        path = f"/api/v1/deployments/{_start(eddie)}"
        for route in ("heartbeat", "stop"):
            answer = eddie.post(f"{path}/{route}", json=body)
            assert answer.status_code == 422, (route, answer.text)
        assert eddie.get(path).json()["status"] == "running"
    assert team.project.deployments.request_counts("wine") == RequestCounts()


def test_heartbeat_and_stop_take_counts_or_no_body_at_all(team: Team, wine: pd.DataFrame) -> None:
    with team.client("editor") as eddie:
        path = f"/api/v1/deployments/{_start(eddie)}"
        assert eddie.post(f"{path}/heartbeat").json() == {"ok": True}  # no body: no sample
        assert team.project.deployments.request_counts("wine") == RequestCounts()
        beat = eddie.post(f"{path}/heartbeat", json={"requests": 5, "client_errors": 1})
        assert beat.status_code == 200, beat.text
        assert team.project.deployments.request_counts("wine") == RequestCounts(5, 1, 0)
        counts = {"requests": 9, "client_errors": 2, "server_errors": 1}
        stopped = eddie.post(f"{path}/stop", json=counts)
        assert stopped.status_code == 200 and stopped.json()["status"] == "stopped"
        assert eddie.post(f"{path}/heartbeat", json={"requests": 20}).status_code == 409
    with team.client("admin") as alice:  # only the deployment's owner records its counts
        assert alice.post(f"{path}/heartbeat", json={"requests": 50}).status_code == 403
    assert team.project.deployments.request_counts("wine") == RequestCounts(9, 2, 1)
