"""The prediction log read, queried and labelled, locally and through a real server."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from sklearn.linear_model import Ridge

from shipyard.client import RemoteProject
from shipyard.errors import InvalidArgumentError, NotFoundError

from .conftest import Team

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def logged(team: Team) -> str:
    """The model ``churn``, a deployment of it, and three logged requests; its deployment id."""
    project = team.project
    X = pa.table({"x": [0.0, 1.0, 2.0]}).to_pandas()
    project.models.log_model(Ridge().fit(X, [0.0, 1.0, 2.0]), "churn", input_example=X[:1])
    started = project.deployments.start(
        name="churn", version=1, alias=None, url="http://127.0.0.1:1", runtime="native"
    )
    log = project.predictions.log(deployment_id=started.id, name="churn", max_delay=60.0)
    with log:
        for minute, (request_id, x) in enumerate((("r1", 1.0), ("r2", 2.0), ("r3", 3.0))):
            log.record(
                request_id=request_id,
                at=(T0 + timedelta(minutes=minute)).timestamp(),
                version=1,
                inputs=[{"x": x}],
                outputs=[x * 2],
                latency=0.001,
            )
    return started.id


@pytest.fixture(params=["local", "remote"])
def predictions(request: pytest.FixtureRequest, team: Team) -> Iterator[Any]:
    if request.param == "local":
        yield team.project.predictions
        return
    with RemoteProject(team.url, team.tokens["editor"]) as remote:
        yield remote.predictions


def test_the_log_reads_queries_and_takes_labels_the_same_in_both_modes(
    predictions: Any, logged: str, tmp_path: Path
) -> None:
    table = predictions.read("churn")
    assert table.column("request_id").to_pylist() == ["r1", "r2", "r3"]
    assert table.column("prediction").to_pylist() == [2.0, 4.0, 6.0]
    later = predictions.read("churn", since=T0 + timedelta(seconds=30), deployment_id=logged)
    assert later.column("request_id").to_pylist() == ["r2", "r3"]
    assert predictions.feedback("churn", {"r1": 2.5, "r3": 5.0}) == 2
    (tmp_path / "labels.csv").write_text("request_id,label\nr2,4.5\n")
    assert predictions.feedback_file("churn", tmp_path / "labels.csv") == 1
    labelled = predictions.sql("churn", "select request_id, label from predictions order by 1")
    assert labelled.to_pylist() == [
        {"request_id": "r1", "label": 2.5},
        {"request_id": "r2", "label": 4.5},
        {"request_id": "r3", "label": 5.0},
    ]
    with pytest.raises(NotFoundError, match="nope"):
        predictions.read("nope")
    with pytest.raises(InvalidArgumentError):
        predictions.sql("churn", "select * from read_csv('/etc/passwd')")
    with pytest.raises(InvalidArgumentError):
        predictions.feedback("churn", {"r1": None})


def test_a_remote_log_for_an_unknown_deployment_drops_its_rows_and_says_why(
    team: Team,
) -> None:
    with RemoteProject(team.url, team.tokens["editor"]) as remote:
        log = remote.predictions.log(deployment_id="0" * 32, name="churn", max_delay=60.0)
        log.record(request_id="r1", at=1.0, version=1, inputs=[{"a": 1}], outputs=[0], latency=0.1)
        log.close()  # the batch goes to the server, which refuses it
    assert log.counters()["dropped"] == 1 and log.written == 0
    assert "does not exist" in (log.last_error or "")
