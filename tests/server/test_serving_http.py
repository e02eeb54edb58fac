from __future__ import annotations

import io
import json
import math
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.ipc
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import RandomForestClassifier

from shipyard.app import Shipyard, build
from shipyard.domain.lineage import Node
from shipyard.server.serving.run import ServeOptions
from shipyard.services.serving_batching import BatchOptions
from shipyard.settings import Settings

from .conftest import RunningServer, Serve


@pytest.fixture(scope="module")
def cancer() -> tuple[pd.DataFrame, pd.Series]:
    data = load_breast_cancer(as_frame=True)
    return data.data, data.target


@pytest.fixture(scope="module")
def classifier(cancer: tuple[pd.DataFrame, pd.Series]) -> RandomForestClassifier:
    X, y = cancer
    return RandomForestClassifier(n_estimators=8, max_depth=4, random_state=0).fit(X, y)


@pytest.fixture(scope="module")
def shared(
    tmp_path_factory: pytest.TempPathFactory,
    cancer: tuple[pd.DataFrame, pd.Series],
    classifier: RandomForestClassifier,
) -> Iterator[Shipyard]:
    """One SQLite project with cancer@1 (ONNX attached), trained in a run on cancer-data@1."""
    root = tmp_path_factory.mktemp("serving")
    settings = Settings.load(
        root, env={}, metadata_uri=f"sqlite:///{root / 'meta.db'}", user="alice"
    )
    X, y = cancer
    with build(settings) as project:
        dataset = project.datasets.add("cancer-data", X.assign(target=y)).version
        with project.runs.start_run("cancer", capture=False) as run:
            run.use_dataset(dataset.ref)
            run.log_model(classifier, "cancer", input_example=X[:5], training_sample=X)
        project.registry.set_alias("cancer@1", "live")
        yield project


@pytest.fixture(scope="module")
def server(shared: Shipyard) -> Iterator[RunningServer]:
    running = RunningServer(shared, "cancer@live", ServeOptions())
    yield running
    running.stop()


def _records(X: pd.DataFrame, rows: int) -> list[dict[str, Any]]:
    return X[:rows].to_dict(orient="records")  # type: ignore[return-value]


def test_predict_takes_records_columns_and_a_bare_list(
    server: RunningServer, cancer: tuple[pd.DataFrame, pd.Series], classifier: Any
) -> None:
    X, _ = cancer
    expected = classifier.predict(X[:3]).tolist()
    bodies = [
        {"records": _records(X, 3)},
        {"columns": {c: X[c][:3].tolist() for c in X.columns}},
        _records(X, 3),
    ]
    with httpx.Client(base_url=server.url) as client:
        for body in bodies:
            response = client.post("/predict", json=body)
            assert response.status_code == 200, response.text
            answer = response.json()
            assert answer["predictions"] == expected
            assert len(answer["probabilities"]) == 3 and len(answer["probabilities"][0]) == 2
            assert (answer["model"], answer["version"]) == ("cancer", 1)
            assert response.headers["x-request-id"] == answer["request_id"]
            assert response.headers["x-model-version"] == "1"


def test_predict_takes_csv_and_arrow_batches(
    server: RunningServer, cancer: tuple[pd.DataFrame, pd.Series], classifier: Any
) -> None:
    X, _ = cancer  # 569 rows: over 64 KiB, parsed and predicted off the event loop
    expected = classifier.predict(X).tolist()
    table = pa.Table.from_pandas(X, preserve_index=False)
    sink = io.BytesIO()
    with pyarrow.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    with httpx.Client(base_url=server.url) as client:
        csv = client.post(
            "/predict",
            content=X.to_csv(index=False).encode(),
            headers={"content-type": "text/csv"},
        )
        arrow = client.post(
            "/predict",
            content=sink.getvalue(),
            headers={"content-type": "application/vnd.apache.arrow.stream"},
        )
    assert csv.status_code == 200, csv.text
    assert arrow.status_code == 200, arrow.text
    assert csv.json()["predictions"] == arrow.json()["predictions"] == expected


@pytest.mark.parametrize(
    ("change", "column", "message"),
    [
        ({"drop": "mean radius"}, "mean radius", "missing"),
        ({"add": ("colour", 1.0)}, "colour", "unknown"),
        ({"set": ("mean area", "big")}, "mean area", "expected float64, got string"),
        ({"set": ("mean area", True)}, "mean area", "expected float64, got boolean"),
        ({"set": ("mean area", None)}, "mean area", "null in row 0 where the signature forbids"),
        (
            {"nan": "worst texture"},
            "worst texture",
            "NaN in row 0 where the signature forbids",
        ),
    ],
)
def test_input_that_breaks_the_signature_is_422_naming_the_column(
    server: RunningServer,
    cancer: tuple[pd.DataFrame, pd.Series],
    change: dict[str, Any],
    column: str,
    message: str,
) -> None:
    X, _ = cancer
    record = _records(X, 1)[0]
    if "drop" in change:
        del record[change["drop"]]
    if "add" in change:
        record[change["add"][0]] = change["add"][1]
    if "set" in change:
        record[change["set"][0]] = change["set"][1]
    body = json.dumps({"records": [record]})
    if "nan" in change:
        record[change["nan"]] = math.nan
        body = json.dumps({"records": [record]})  # Python writes the NaN literal
    response = httpx.post(
        f"{server.url}/predict", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert response.json()["column"] == column
    assert message in response.json()["error"]


@pytest.mark.parametrize(
    ("body", "media", "status", "message"),
    [
        (b'{"records": [{"a": ', "application/json", 400, "malformed application/json body"),
        (b"\x00\x01garbage", "application/vnd.apache.arrow.stream", 400, "malformed"),
        (b'a,b\n1,2,3\n"', "text/csv", 400, "malformed text/csv body"),
        (b'{"rows": []}', "application/json", 422, "send"),
        (b"<xml/>", "application/xml", 415, "unsupported content type"),
    ],
)
def test_malformed_bodies_are_client_errors_never_500(
    server: RunningServer, body: bytes, media: str, status: int, message: str
) -> None:
    response = httpx.post(f"{server.url}/predict", content=body, headers={"content-type": media})
    assert response.status_code == status, response.text
    assert message in response.json()["error"]


def test_bodies_over_the_limit_are_413_by_header_and_by_streamed_size(
    shared: Shipyard, serve: Serve
) -> None:
    small = serve(shared, "cancer@1", body_limit=1000)
    big = b'{"records": [' + b" " * 2000 + b"]}"
    declared = httpx.post(
        f"{small.url}/predict", content=big, headers={"content-type": "application/json"}
    )
    assert declared.status_code == 413
    assert "larger than the limit of 1000 bytes" in declared.json()["error"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: chunked transfer encoding
        yield b'{"records": ['
        for _ in range(20):
            yield b" " * 100

    streamed = httpx.post(
        f"{small.url}/predict", content=chunks(), headers={"content-type": "application/json"}
    )
    assert streamed.status_code == 413
    assert httpx.get(f"{small.url}/health").status_code == 200


def test_health_ready_metadata_and_openapi_describe_the_served_version(
    server: RunningServer, cancer: tuple[pd.DataFrame, pd.Series]
) -> None:
    X, _ = cancer
    with httpx.Client(base_url=server.url) as client:
        assert client.get("/health").json() == {"status": "ok"}
        assert client.get("/ready").json() == {"ready": True, "version": 1}
        meta = client.get("/metadata").json()
        spec = client.get("/openapi.json").json()
        assert client.get("/nope").status_code == 404
        assert client.get("/predict").status_code == 405
    assert (meta["model"], meta["version"], meta["alias"], meta["runtime"]) == (
        "cancer",
        1,
        "live",
        "onnx",
    )
    assert [c["name"] for c in meta["signature"]["inputs"]] == list(X.columns)
    assert meta["lineage"]["datasets"] == ["cancer-data@1"]
    assert meta["lineage"]["run"]
    record = spec["components"]["schemas"]["Record"]
    assert record["required"] == list(X.columns)
    assert record["properties"]["mean radius"] == {"type": "number"}
    assert "/predict" in spec["paths"]


def test_metrics_count_requests_errors_latency_and_batches(
    server: RunningServer, cancer: tuple[pd.DataFrame, pd.Series]
) -> None:
    X, _ = cancer
    with httpx.Client(base_url=server.url) as client:
        client.post("/predict", json={"records": _records(X, 1)})
        client.post("/predict", json={"records": [{"x": 1}]})
        text = client.get("/metrics").text
    assert 'shipyard_requests_total{endpoint="/predict",status="200"}' in text
    assert 'shipyard_requests_total{endpoint="/predict",status="422"}' in text
    assert 'shipyard_errors_total{kind="invalid_input"}' in text
    assert 'shipyard_request_duration_seconds_bucket{le="+Inf"}' in text
    assert 'shipyard_batch_size_bucket{le="1"}' in text
    assert 'shipyard_model_info{model="cancer",version="1",runtime="onnx"} 1' in text
    assert "shipyard_prediction_log_queued_rows" in text
    assert 'shipyard_prediction_log_rows_total{outcome="dropped"} 0' in text


def test_concurrent_single_rows_are_batched_and_answered_correctly(
    server: RunningServer, cancer: tuple[pd.DataFrame, pd.Series], classifier: Any
) -> None:
    X, _ = cancer
    records = _records(X, 64)
    expected = classifier.predict(X[:64]).tolist()
    got: dict[int, int] = {}

    def fire(start: int) -> None:
        with httpx.Client(base_url=server.url) as client:
            for i in range(start, 64, 8):
                got[i] = client.post("/predict", json=[records[i]]).json()["predictions"][0]

    threads = [threading.Thread(target=fire, args=(s,)) for s in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [got[i] for i in range(64)] == expected


def test_the_log_and_deployment_are_closed_on_shutdown_and_feedback_is_stored(
    project: Shipyard, serve: Serve, cancer: tuple[pd.DataFrame, pd.Series], classifier: Any
) -> None:
    X, _ = cancer
    project.models.log_model(classifier, "churn", input_example=X[:5], training_sample=X)
    running = serve(project, "churn@latest", heartbeat_every=0.1)
    with httpx.Client(base_url=running.url) as client:
        ids = [client.post("/predict", json=_records(X, 2)).json()["request_id"] for _ in range(3)]
        stored = client.post("/feedback", json={"labels": {ids[0]: 1, ids[1]: 0}})
        bad = client.post("/feedback", json={"labels": []})
    assert stored.json() == {"stored": 2}
    assert bad.status_code == 422
    deployment_id = running.app.session.deployment_id
    assert deployment_id is not None
    assert project.deployments.get(deployment_id).status == "running"
    running.stop()
    deployment = project.deployments.get(deployment_id)
    assert deployment.status == "stopped" and deployment.alias == "latest"
    table = project.predictions.read("churn", deployment_id=deployment_id)
    assert table.num_rows == 6
    assert sorted(set(table.column("request_id").to_pylist())) == sorted(ids)
    labels = dict(
        zip(table.column("request_id").to_pylist(), table.column("label").to_pylist(), strict=True)
    )
    assert labels[ids[0]] is not None
    graph = project.lineage.graph(Node("deployment", deployment_id))
    assert any(e.source.id == "churn@1" and e.relation == "deployed_as" for e in graph.upstream)


def test_follow_switches_versions_without_failing_requests_in_flight(
    project: Shipyard, serve: Serve, cancer: tuple[pd.DataFrame, pd.Series], classifier: Any
) -> None:
    X, _ = cancer
    project.models.log_model(classifier, "flip", input_example=X[:5], training_sample=X)
    project.registry.set_alias("flip@1", "live")
    running = serve(project, "flip@live", follow=True, follow_every=0.1)
    record = _records(X, 1)
    # one list a client: a client's requests are sequential, so once one of them has been
    # answered by version 2 the swap happened, and none of its later requests may see 1
    # (another client's request already in flight at the swap may, and should, end on 1)
    seen: list[list[int]] = [[] for _ in range(4)]
    failures: list[str] = []
    stop = threading.Event()

    def fire(versions: list[int]) -> None:
        with httpx.Client(base_url=running.url) as client:
            while not stop.is_set():
                response = client.post("/predict", json=record)
                if response.status_code != 200:
                    failures.append(response.text)
                else:
                    versions.append(response.json()["version"])

    threads = [threading.Thread(target=fire, args=(versions,)) for versions in seen]
    for thread in threads:
        thread.start()
    try:
        deadline = 200
        while not all(seen) and deadline:  # every client has been answered by version 1
            stop.wait(0.05)
            deadline -= 1
        project.models.log_model(classifier, "flip", input_example=X[:5], training_sample=X)
        project.registry.set_alias("flip@2", "live")
        deadline = 200
        while not all(versions and versions[-1] == 2 for versions in seen) and deadline:
            stop.wait(0.05)
            deadline -= 1
        stop.wait(0.3)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert failures == []
    for versions in seen:
        assert versions[0] == 1 and versions[-1] == 2
        assert versions == sorted(versions)  # once switched, every answer is the new version
    deployment_id = running.app.session.deployment_id
    assert deployment_id is not None
    # The record follows the swap (written by the follow thread right after it): wait for
    # it rather than for a fixed time, which a loaded machine can outlast.
    deadline = time.monotonic() + 20
    while project.deployments.get(deployment_id).version != 2:
        assert time.monotonic() < deadline, "the switch was never recorded"
        time.sleep(0.05)
    meta = httpx.get(f"{running.url}/metadata").json()
    assert meta["version"] == 2


def test_native_runtime_and_no_batching_answer_the_same(
    shared: Shipyard, serve: Serve, server: RunningServer, cancer: tuple[pd.DataFrame, pd.Series]
) -> None:
    X, _ = cancer
    plain = serve(shared, "cancer@1", runtime="native", batching=BatchOptions(enabled=False))
    body = {"records": _records(X, 20)}
    a = httpx.post(f"{plain.url}/predict", json=body).json()
    b = httpx.post(f"{server.url}/predict", json=body).json()
    assert a["predictions"] == b["predictions"]
    np.testing.assert_allclose(a["probabilities"], b["probabilities"], atol=1e-5)
    assert httpx.get(f"{plain.url}/metadata").json()["runtime"] == "native"


def test_a_server_never_answers_500_for_a_fuzzed_body(server: RunningServer) -> None:
    rng = np.random.default_rng(0)
    bodies = [
        b"",
        b"null",
        b"[]",
        b"{}",
        b'{"records": null}',
        b'{"columns": {"a": 1}}',
        b"[[1, 2]]",
    ]
    bodies += [bytes(rng.integers(0, 256, size=n, dtype=np.uint8)) for n in (1, 10, 100)]
    for media in ("application/json", "text/csv", "application/vnd.apache.arrow.stream"):
        for body in bodies:
            response = httpx.post(
                f"{server.url}/predict", content=body, headers={"content-type": media}
            )
            assert 400 <= response.status_code < 500, (media, body, response.text)


def test_predictions_that_are_not_finite_are_null_in_strict_json(
    shared: Shipyard, serve: Serve
) -> None:
    from .nan_model import NotFinite

    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0]})
    shared.models.log_model(NotFinite(), "not-finite", input_example=frame, requirements=[])
    running = serve(shared, "not-finite@latest")

    reply = httpx.post(f"{running.url}/predict", json={"records": frame.to_dict("records")})

    assert reply.status_code == 200
    assert "NaN" not in reply.text and "Infinity" not in reply.text
    assert json.loads(reply.text)["predictions"] == [None, None, 1.0]
