"""Prediction-log sampling through a real model server: the log keeps exactly the sampled ids."""

from __future__ import annotations

import httpx
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from shipyard.app import Shipyard
from shipyard.domain.predictions import sampled

from .conftest import Serve

REQUESTS = 40
ROWS = 2  # rows per request: sampling keeps or skips a request's rows together


def test_sampling_logs_exactly_the_requests_the_rate_selects(
    project: Shipyard, serve: Serve
) -> None:
    X, y = load_iris(return_X_y=True, as_frame=True)
    model = LogisticRegression(max_iter=500).fit(X, y)
    project.models.log_model(model, "iris", input_example=X[:5])
    running = serve(project, "iris@1", sample_rate=0.5)
    with httpx.Client(base_url=running.url, timeout=30) as client:
        ids = []
        for i in range(REQUESTS):
            body = {"records": X[i * ROWS : (i + 1) * ROWS].to_dict(orient="records")}
            answer = client.post("/predict", json=body)
            assert answer.status_code == 200, answer.text
            ids.append(answer.json()["request_id"])
        metrics = client.get("/metrics").text
    deployment_id = running.app.session.deployment_id
    assert deployment_id is not None
    running.stop()  # drains and flushes the prediction log

    assert len(set(ids)) == REQUESTS
    kept = sorted(i for i in ids if sampled(i, 0.5))
    assert 0 < len(kept) < REQUESTS  # both outcomes occur: 2 ** -39 odds that they do not
    table = project.predictions.read("iris", deployment_id=deployment_id)
    logged = table.column("request_id").to_pylist()
    assert sorted(set(logged)) == kept
    assert table.num_rows == ROWS * len(kept)
    skipped = ROWS * (REQUESTS - len(kept))
    assert f'shipyard_prediction_log_rows_total{{outcome="sampled_out"}} {skipped}' in metrics
