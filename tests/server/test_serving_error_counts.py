"""A real model server counts its /predict answers by status class into its deployment's
heartbeats and its stop, and ``request_counts`` reads them back per time window."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pandas as pd

from shipyard.app import Shipyard
from shipyard.domain.deployments import RequestCounts
from shipyard.domain.ids import utcnow

from .conftest import Serve
from .failing_model import FailsOnNegative

FRAME = pd.DataFrame({"x": [1.0, 2.0, 3.0]})


def _wait_for(project: Shipyard, expected: RequestCounts, **window: Any) -> RequestCounts:
    """Poll the recorded counts until they are ``expected`` or 30 s passed; the last read."""
    deadline = time.monotonic() + 30
    while True:
        found = project.deployments.request_counts("flaky", **window)
        if found == expected or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def _send(client: httpx.Client) -> dict[int, int]:
    """Good and bad /predict requests; how many answers of each status were sent."""
    sent: dict[int, int] = {}
    json_media = {"content-type": "application/json"}
    requests: list[tuple[bytes | None, Any, dict[str, str] | None]] = [
        *[(None, {"records": [{"x": float(i)}]}, None) for i in range(5)],  # 200
        (None, {"records": [{"x": -1.0}]}, None),  # 500: the model raises
        (None, {"records": [{"x": 2.0}, {"x": -3.0}]}, None),  # 500
        (b'{"records": [{"x": ', None, json_media),  # 400: malformed JSON
        (b"\x00garbage", None, json_media),  # 400
        (None, {"rows": []}, None),  # 422: not a shape of rows
        (None, {"records": [{"y": 1.0}]}, None),  # 422: a missing column
        (b"<xml/>", None, {"content-type": "application/xml"}),  # 415
    ]
    for content, body, headers in requests:
        answer = client.post("/predict", content=content, json=body, headers=headers)
        sent[answer.status_code] = sent.get(answer.status_code, 0) + 1
    return sent


def test_heartbeats_and_the_stop_carry_the_servers_predict_answers_by_status(
    project: Shipyard, serve: Serve
) -> None:
    project.models.log_model(FailsOnNegative(), "flaky", input_example=FRAME, requirements=[])
    opened = utcnow()
    running = serve(project, "flaky@latest", heartbeat_every=0.1)
    with httpx.Client(base_url=running.url) as client:
        sent = _send(client)
        assert client.get("/health").status_code == 200  # other routes are not counted
        assert client.get("/nope").status_code == 404
    assert sent == {200: 5, 500: 2, 400: 2, 422: 2, 415: 1}
    first = RequestCounts(requests=12, client_errors=5, server_errors=2)
    assert _wait_for(project, first) == first  # a heartbeat carried every answer
    assert _wait_for(project, first, version=1, start=opened) == first
    middle = utcnow()

    with httpx.Client(base_url=running.url) as client:
        tail = [client.post("/predict", json={"records": [{"x": 4.0}]}) for _ in range(3)]
        bad = client.post("/predict", json={"records": [{"x": -4.0}]})
    assert [a.status_code for a in tail] == [200] * 3 and bad.status_code == 500
    running.stop()  # the stop records the last counts, whether a heartbeat saw them or not
    closed = utcnow()
    deployment_id = running.app.session.deployment_id
    assert deployment_id is not None
    assert project.deployments.get(deployment_id).status == "stopped"

    total = project.deployments.request_counts("flaky", 1, opened, closed)
    assert total == RequestCounts(requests=16, client_errors=5, server_errors=3)
    assert total.error_rate == 8 / 16
    later = project.deployments.request_counts("flaky", None, middle, closed)
    assert later == RequestCounts(requests=4, client_errors=0, server_errors=1)
    assert project.deployments.request_counts("flaky", 2) == RequestCounts()
    assert project.deployments.request_counts("flaky", None, closed, None) == RequestCounts()


def test_a_monitor_run_reports_the_error_rate_of_its_window(
    project: Shipyard, serve: Serve
) -> None:
    project.models.log_model(FailsOnNegative(), "flaky", input_example=FRAME, requirements=[])
    project.datasets.add("train", FRAME)
    running = serve(project, "flaky@latest", heartbeat_every=0.1)
    with httpx.Client(base_url=running.url) as client:
        sent = _send(client)
    running.stop()
    assert sent == {200: 5, 500: 2, 400: 2, 422: 2, 415: 1}

    run = project.monitoring.run("flaky@1", window="1h", reference="train@1", retrain=False)
    assert run.metrics["served_requests"] == 12
    assert run.metrics["client_errors"] == 5 and run.metrics["server_errors"] == 2
    assert run.metrics["error_rate"] == 7 / 12
    assert run.rows == 5  # the logged rows: only answered requests reach the log
    gauge = f'shipyard_monitor_error_rate{{model="flaky",version="1"}} {7 / 12!r}'
    assert gauge in project.monitoring.metrics_text().splitlines()
