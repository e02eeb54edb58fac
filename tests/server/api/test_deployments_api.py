"""Deployments through the server: listed and read remotely as the local service reads them."""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
import pytest
from sklearn.linear_model import Ridge

from shipyard.client.deployments import RemoteDeploymentService
from shipyard.client.http import ApiClient
from shipyard.domain.deployments import Deployment
from shipyard.errors import InvalidArgumentError, NotFoundError

from .conftest import Team


@pytest.fixture
def started(team: Team) -> Deployment:
    """A running deployment of ``churn@1``, recorded with the local service."""
    project = team.project
    frame = pa.table({"x": [0.0, 1.0, 2.0], "y": [0.1, 1.1, 1.9]}).to_pandas()
    with project.runs.start_run("churn", capture=False) as run:
        run.log_model(
            Ridge().fit(frame[["x"]], frame["y"]),
            "churn",
            input_example=frame[["x"]][:2],
            onnx=False,
        )
    return project.deployments.start(
        name="churn", version=1, alias=None, url="http://127.0.0.1:8000", runtime="native"
    )


@pytest.fixture
def remote(team: Team) -> Iterator[RemoteDeploymentService]:
    """The deployment service of a remote project, as a viewer."""
    client = ApiClient(team.url, team.tokens["viewer"])
    yield RemoteDeploymentService(client)
    client.close()


def test_a_deployment_is_listed_and_read_remotely_as_locally(
    team: Team, started: Deployment, remote: RemoteDeploymentService
) -> None:
    local = team.project.deployments
    assert remote.get(started.id) == local.get(started.id) == started
    assert remote.list() == local.list() == [started]
    assert remote.list(name="churn", status="running") == [started]
    assert remote.list(status="stopped") == []
    assert remote.list(name="other") == []


def test_unknown_and_malformed_deployments_are_refused(
    team: Team, started: Deployment, remote: RemoteDeploymentService
) -> None:
    missing = "0" * 32
    with pytest.raises(NotFoundError, match=missing):
        remote.get(missing)
    with pytest.raises(InvalidArgumentError, match="status"):
        remote.list(status="paused")
    with team.client("viewer") as http:
        assert http.get("/api/v1/deployments/dep-1").status_code == 422
        assert http.get(f"/api/v1/deployments/{started.id}").json()["ref"] == "churn@1"
