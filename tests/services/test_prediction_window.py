"""A prediction-log window queried in place: exported, aggregated, labels joined."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.linear_model import Ridge

from shipyard.app import Shipyard
from shipyard.errors import NotFoundError

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def logged(project: Shipyard) -> list[float]:
    """Model ``churn``: 40 requests answered by v1 then 20 by v2 (the last with 2 rows each).

    Returns the latencies (ms) of v1's requests.
    """
    X = pa.table({"x": [0.0, 1.0, 2.0]}).to_pandas()
    for _ in range(2):
        project.models.log_model(Ridge().fit(X, [0.0, 1.0, 2.0]), "churn", input_example=X[:1])
    deployment = project.deployments.start(
        name="churn", version=1, alias=None, url="http://127.0.0.1:1", runtime="native"
    ).id
    latencies = []
    log = project.predictions.log(deployment_id=deployment, name="churn", max_delay=60.0)
    with log:
        for i in range(60):
            version = 1 if i < 40 else 2
            rows = 1 if version == 1 else 2
            latency = 0.001 * (i + 1)
            if version == 1:
                latencies.append(latency * 1000)
            log.record(
                request_id=f"r{i}",
                at=(T0 + timedelta(minutes=i)).timestamp(),
                version=version,
                inputs=[{"x": float(i), "city": "Oslo"}] * rows,
                outputs=[float(i)] * rows,
                latency=latency,
            )
    project.predictions.feedback("churn", {"r1": 5.0, "r2": 6.0})
    return latencies


def test_export_keeps_one_version_renames_and_joins_labels(
    project: Shipyard, logged: list[float], tmp_path: Path
) -> None:
    dest = tmp_path / "window.parquet"
    with project.predictions.window("churn", since=T0, until=T0 + timedelta(hours=2)) as window:
        assert {"x", "city", "prediction", "label", "version"} <= set(window.columns())
        rows = window.export(dest, {"x": "x", "prediction": "prediction", "label": "y"}, version=1)
    table = pq.read_table(dest)
    assert rows == table.num_rows == 40
    assert table.column_names == ["x", "prediction", "y"]
    labelled = {
        x: y for x, y in zip(table["x"].to_pylist(), table["y"].to_pylist(), strict=True) if y
    }
    assert labelled == {1.0: 5.0, 2.0: 6.0}


def test_operations_agree_with_numpy_and_count_requests_not_rows(
    project: Shipyard, logged: list[float]
) -> None:
    with project.predictions.window("churn") as window:
        first = window.operations(version=1, seconds=None)
        second = window.operations(version=2, seconds=600.0)
        assert window.deployment(version=2) is not None
    assert first["requests"] == 40
    for key, q in (("latency_p50_ms", 50), ("latency_p95_ms", 95), ("latency_p99_ms", 99)):
        assert first[key] == pytest.approx(np.percentile(logged, q))
    assert first["throughput_rps"] == pytest.approx(40 / (39 * 60))  # rows over the span
    assert second["requests"] == 20  # 40 rows, 2 a request
    assert second["throughput_rps"] == pytest.approx(40 / 600)


def test_the_window_bounds_are_kept(project: Shipyard, logged: list[float]) -> None:
    since, until = T0 + timedelta(minutes=10), T0 + timedelta(minutes=20)
    with project.predictions.window("churn", since=since, until=until) as window:
        table = window.to_arrow()
        assert window.operations(version=None, seconds=None)["requests"] == 10
    assert table.num_rows == 10
    assert table["request_id"].to_pylist() == [f"r{i}" for i in range(10, 20)]


def test_an_empty_window_has_no_operations(project: Shipyard, logged: list[float]) -> None:
    later = T0 + timedelta(days=30)
    with project.predictions.window("churn", since=later) as window:
        assert window.operations(version=1, seconds=3600.0) == {}
        assert window.deployment(version=1) is None
        assert window.to_arrow().num_rows == 0


def test_an_unknown_model_has_no_window(project: Shipyard) -> None:
    with pytest.raises(NotFoundError):
        project.predictions.window("nobody")
