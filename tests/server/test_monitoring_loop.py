"""The whole feedback loop on real parts: a model server on loopback, shifted traffic, a
monitor run that detects drift, the alert on a local webhook, the retraining pipeline and
its model version's pending promotion request."""

from __future__ import annotations

import json
import textwrap
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
from sklearn.datasets import load_wine
from sklearn.ensemble import RandomForestClassifier

from shipyard.app import Shipyard, build
from shipyard.domain.lineage import Node
from shipyard.settings import Settings

from .conftest import Serve


class _Hook(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append(json.loads(body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    received: ClassVar[list[dict[str, Any]]] = []
    handler = type("Hook", (_Hook,), {"received": received})
    server = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    server.shutdown()
    thread.join()
    server.server_close()


_RETRAIN = """
import pandas as pd
from sklearn.ensemble import RandomForestClassifier

import shipyard as sy

ROOT, META = {root!r}, {meta!r}


@sy.task
def train(dataset: str) -> str:
    with sy.connect(ROOT, metadata_uri=META) as project:
        window = project.datasets.get(dataset).to_pandas()
        base = project.datasets.get("wine-data@1").to_pandas()
        data = pd.concat([base, window.dropna(subset=["target"])])
        X, y = data.drop(columns="target"), data["target"].astype(int)
        model = RandomForestClassifier(n_estimators=10, random_state=0).fit(X, y)
        with project.runs.start_run("wine-retrain", capture=False) as run:
            run.use_dataset(dataset)
            version = run.log_model(model, "wine", input_example=X[:5])
        return version.ref


@sy.pipeline
def retrain(dataset: str) -> str:
    return train(dataset)
"""


@pytest.fixture
def looped(tmp_path: Path, webhook: tuple[str, list[dict[str, Any]]]) -> Iterator[Shipyard]:
    root = tmp_path / "project"
    root.mkdir()
    meta = f"sqlite:///{root / 'meta.db'}"
    (root / "retrain.py").write_text(_RETRAIN.format(root=str(root), meta=meta))
    (root / "shipyard.toml").write_text(
        textwrap.dedent(
            f"""
            [monitoring]
            alerts = ["drift_share > 0.3", "latency_p99_ms > 10000"]
            notify = ["{webhook[0]}"]
            retrain_pipeline = "{root / "retrain.py"}:retrain"
            retrain_param = "dataset"
            retrain_dataset = "wine-feedback"
            promote_to = "production"
            """
        )
    )
    settings = Settings.load(root, env={}, metadata_uri=meta, user="alice")
    data = load_wine(as_frame=True)
    X, y = data.data, data.target
    with build(settings) as project:
        dataset = project.datasets.add("wine-data", X.assign(target=y)).version
        model = RandomForestClassifier(n_estimators=10, max_depth=4, random_state=0).fit(X, y)
        with project.runs.start_run("wine", capture=False) as run:
            run.use_dataset(dataset.ref)
            run.log_metric("accuracy", 0.98)
            run.log_model(model, "wine", input_example=X[:5])
        project.registry.set_alias("wine@1", "live")
        yield project


def test_drifted_traffic_alerts_retrains_and_files_a_pending_promotion(
    looped: Shipyard, serve: Serve, webhook: tuple[str, list[dict[str, Any]]]
) -> None:
    project = looped
    X = load_wine(as_frame=True).data
    y = load_wine(as_frame=True).target
    server = serve(project, "wine@live")
    normal = X.sample(60, random_state=1)
    shifted = X.sample(120, random_state=2) * 1.7 + 2.0
    ids: list[str] = []
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for frame in (normal, shifted):
            for start in range(0, len(frame), 20):
                chunk = frame.iloc[start : start + 20]
                answer = client.post("/predict", json={"records": chunk.to_dict("records")})
                assert answer.status_code == 200, answer.text
                ids.append(answer.json()["request_id"])
        labels = {ids[0]: int(y[normal.index[0]])}
        assert client.post("/feedback", json={"labels": labels}).status_code == 200
    server.stop()  # drains and flushes the prediction log

    run = project.monitoring.run("wine@live", window="1h")

    assert run.rows == 180
    assert run.metrics["drift_share"] > 0.3
    assert run.status == "alert"
    assert [a.rule for a in run.alerts] == ["drift_share > 0.3"]
    # the alert reached the webhook
    assert len(webhook[1]) == 1
    event = webhook[1][0]["shipyard"]
    assert (event["kind"], event["pipeline"], event["run_id"]) == ("alert", "wine@1", run.id)
    assert "drift_share > 0.3" in event["message"]
    # the loop: window -> dataset version -> pipeline -> model version -> pending request
    loop = dict(run.retrain)
    assert "error" not in loop, loop
    assert loop["dataset"] == "wine-feedback@1"
    assert loop["pipeline_status"] == "succeeded"
    assert loop["model_version"] == "wine@2"
    window = project.datasets.get("wine-feedback@1").to_arrow()
    assert window.num_rows == 180 and "target" in window.column_names
    assert window["target"].null_count == 160  # the first request (20 rows) was labelled
    pending = project.registry.requests(status="pending")
    assert [(r.id, r.name, r.version, r.target) for r in pending] == [
        (loop["promotion_request"], "wine", 2, "production")
    ]
    assert project.registry.resolve("wine@2").stage != "production"  # waits for an approver
    created = project.lineage.graph(Node("monitor_run", run.id), depth=1).downstream
    assert ("dataset_version", "wine-feedback@1") in {(e.target.kind, e.target.id) for e in created}
    deployment = project.deployments.list(name="wine")[0]
    assert run.deployment_id == deployment.id


def test_the_server_metrics_carry_the_latest_monitor_run(looped: Shipyard, serve: Serve) -> None:
    project = looped
    X = load_wine(as_frame=True).data
    first = serve(project, "wine@live")
    with httpx.Client(base_url=first.url) as client:
        assert client.post("/predict", json={"records": X[:40].to_dict("records")}).is_success
    first.stop()
    run = project.monitoring.run("wine@1", window="1h", retrain=False)
    second = serve(project, "wine@live")
    with httpx.Client(base_url=second.url) as client:
        text = ""
        for _ in range(100):  # the first refresh runs right after start-up, off the request path
            text = client.get("/metrics").text
            if "shipyard_monitor_rows{" in text:
                break
            threading.Event().wait(0.05)
    assert 'shipyard_monitor_rows{model="wine",version="1"} 40.0' in text
    assert 'shipyard_monitor_drift_score{model="wine",version="1",feature="alcohol"}' in text
    assert "shipyard_monitor_last_run_timestamp_seconds{" in text
    assert run.rows == 40
