"""Monitor runs through the server: listed and fetched remotely with the stored content."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pytest
from sklearn.linear_model import Ridge

from shipyard.client.http import ApiClient
from shipyard.client.monitoring import RemoteMonitoringService
from shipyard.domain.monitoring import MonitorRun
from shipyard.errors import InvalidArgumentError, NotFoundError

from .conftest import Team


def _table(shift: float) -> pa.Table:
    x = np.random.default_rng(0).normal(size=200) + shift
    return pa.table({"x": x, "y": 2 * x + 1})


@pytest.fixture
def monitored(team: Team) -> list[MonitorRun]:
    """Two monitor runs of ``churn@1`` (trained on ``customers@1``) over a shifted dataset."""
    project = team.project
    reference = project.datasets.add("customers", _table(0.0)).version
    frame = _table(0.0).to_pandas()
    with project.runs.start_run("churn", capture=False) as run:
        run.use_dataset(reference.ref)
        run.log_model(
            Ridge().fit(frame[["x"]], frame["y"]),
            "churn",
            input_example=frame[["x"]][:2],
            onnx=False,
        )
    later = project.datasets.add("customers-later", _table(3.0)).version
    return [project.monitoring.run("churn@1", current=later.ref) for _ in range(2)]


@pytest.fixture
def remote(team: Team) -> Iterator[RemoteMonitoringService]:
    """The monitoring service of a remote project, as a viewer."""
    client = ApiClient(team.url, team.tokens["viewer"])
    yield RemoteMonitoringService(client)
    client.close()


def test_a_stored_monitor_run_is_listed_and_fetched_remotely_as_stored(
    team: Team, monitored: list[MonitorRun], remote: RemoteMonitoringService
) -> None:
    local = team.project.monitoring
    first, second = monitored
    assert first.metrics["dataset_drift"] == 1.0  # the shifted data drifted: a real report
    assert remote.show(first.id) == local.show(first.id)
    assert remote.show(first.id).metrics == first.metrics
    assert remote.history("churn") == local.history("churn")
    assert [r.id for r in remote.history("churn")] == [second.id, first.id]
    assert remote.history("churn@1", limit=1) == local.history("churn", limit=1)
    assert remote.history("other") == []
    assert remote.report(first.id) == local.report(first.id)
    assert remote.report(first.id)["report"]["dataset_drift"] is True


def test_unknown_and_malformed_monitor_runs_are_refused(
    team: Team, monitored: list[MonitorRun], remote: RemoteMonitoringService
) -> None:
    missing = "0" * 32
    with pytest.raises(NotFoundError, match=missing):
        remote.show(missing)
    with pytest.raises(NotFoundError, match=missing):
        remote.report(missing)
    with pytest.raises(InvalidArgumentError, match="model"):
        remote.history("../churn")
    with team.client("viewer") as http:
        for path in (
            f"/api/v1/monitoring/runs/{missing}",
            f"/api/v1/monitoring/runs/{missing}/report",
        ):
            answer = http.get(path)
            assert answer.status_code == 404
            assert missing in answer.json()["error"]["message"]
        assert http.get("/api/v1/monitoring/runs/not-an-id").status_code == 422
        assert http.get("/api/v1/monitoring/runs").status_code == 422  # which model: required
        params = {"model": "churn", "limit": 0}
        assert http.get("/api/v1/monitoring/runs", params=params).status_code == 422
    with team.client(None) as anonymous:
        assert (
            anonymous.get("/api/v1/monitoring/runs", params={"model": "churn"}).status_code == 401
        )
