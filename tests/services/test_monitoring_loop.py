"""The retraining loop's failure paths and the alert notifications, on a real project."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sklearn.linear_model import Ridge

from shipyard.app import Shipyard, build
from shipyard.domain.notifications import parse_sink
from shipyard.services.monitoring_loop import model_reference
from shipyard.settings import Settings


@pytest.fixture
def hook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    server.shutdown()
    thread.join()
    server.server_close()


def _drifted(project: Shipyard) -> None:
    """``prices@1`` trained on ``prices-data@1``; 40 logged rows far outside its range."""
    frame = pd.DataFrame({"x": [float(i % 17) for i in range(200)]})
    frame["y"] = frame["x"] * 2
    dataset = project.datasets.add("prices-data", frame).version
    with project.runs.start_run("prices", capture=False) as run:
        run.use_dataset(dataset.ref)
        model = Ridge().fit(frame[["x"]], frame["y"])
        run.log_model(model, "prices", input_example=frame[["x"]][:3], onnx=False)
    with project.predictions.log(deployment_id="dep-1", name="prices") as log:
        for i in range(40):
            x = 100.0 + i
            log.record(
                request_id=f"r{i}",
                at=time.time(),
                version=1,
                inputs=[{"x": x}],
                outputs=[x * 2],
                latency=0.002,
            )


def _flow(tmp_path: Path, body: str) -> str:
    path = tmp_path / "flows.py"
    path.write_text(
        "import shipyard as sy\n\n\n@sy.task\ndef work(dataset: str) -> object:\n"
        f"    {body}\n\n\n@sy.pipeline\ndef flow(dataset: str) -> object:\n"
        "    return work(dataset)\n"
    )
    return f"{path}:flow"


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        ("raise ValueError('no luck')", "failed", "ended failed"),
        ("return {'accuracy': 0.9}", "succeeded", "returned no model version"),
        ("return 'prices@7'", "succeeded", "prices@7 does not exist"),
    ],
)
def test_a_failing_retraining_step_is_reported_not_raised(
    project: Shipyard, settings: Settings, tmp_path: Path, body: str, status: str, error: str
) -> None:
    _drifted(project)
    looped = settings.model_copy(
        update={
            "monitor_alerts": ("drift_share > 0.3",),
            "retrain_pipeline": _flow(tmp_path, body),
        }
    )
    with build(looped) as other:
        run = other.monitoring.run("prices@1", window="1h")
    assert run.status == "alert"
    assert run.retrain["dataset"] == "prices-monitored@1"
    assert run.retrain["pipeline_status"] == status
    assert error in run.retrain["error"]
    assert "promotion_request" not in run.retrain
    assert project.registry.requests(status=None) == []
    assert project.monitoring.show(run.id).status == "alert"  # the run is stored all the same


def test_no_retrain_alerts_without_retraining(
    project: Shipyard, settings: Settings, tmp_path: Path
) -> None:
    _drifted(project)
    looped = settings.model_copy(
        update={
            "monitor_alerts": ("drift_share > 0.3",),
            "retrain_pipeline": _flow(tmp_path, "return 'prices@1'"),
        }
    )
    with build(looped) as other:
        run = other.monitoring.run("prices@1", window="1h", retrain=False)
    assert run.status == "alert"
    assert dict(run.retrain) == {}
    assert project.datasets.list() and "prices-monitored" not in {
        d.name for d in project.datasets.list()
    }


def test_alerts_reach_monitoring_sinks_and_alert_subscribers_only(
    project: Shipyard, settings: Settings, hook: tuple[str, list[dict[str, Any]]]
) -> None:
    _drifted(project)
    url, received = hook
    looped = settings.model_copy(
        update={
            "monitor_alerts": ("drift_share > 0.3", "rows < 5"),
            "monitor_notify": (f"{url}?from=monitoring",),
            "notify": (f"webhook+alert:{url}?from=project", f"{url}?from=pipelines"),
        }
    )
    with build(looped) as other:
        run = other.monitoring.run("prices@1", window="1h")
    assert run.status == "alert"
    assert len(received) == 2  # the pipelines-only sink got nothing
    texts = sorted(r["text"] for r in received)
    assert all("monitor of prices@1 raised an alert" in t for t in texts)
    assert all(r["shipyard"]["message"].startswith("drift_share > 0.3 (is 1)") for r in received)


def test_an_unreachable_webhook_does_not_stop_the_run(
    project: Shipyard, settings: Settings
) -> None:
    _drifted(project)
    looped = settings.model_copy(
        update={
            "monitor_alerts": ("drift_share > 0.3",),
            "monitor_notify": ("http://127.0.0.1:9/nothing-listens",),
            "notify_timeout": 0.5,
        }
    )
    with build(looped) as other:
        run = other.monitoring.run("prices@1", window="1h")
    assert run.status == "alert"
    assert project.monitoring.show(run.id).alerts == run.alerts


def test_model_references_are_read_from_the_usual_results() -> None:
    class Version:
        ref = "wine@3"

    assert model_reference("wine@2") == "wine@2"
    assert model_reference(Version()) == "wine@3"
    assert model_reference({"model": "wine@4", "accuracy": 0.9}) == "wine@4"
    assert model_reference({"model_version": Version()}) == "wine@3"
    assert model_reference({"accuracy": 0.9}) is None
    assert model_reference(0.9) is None


def test_alert_is_an_event_sinks_can_ask_for() -> None:
    assert "alert" in parse_sink("webhook+alert:https://x.example/h").events
    assert "alert" not in parse_sink("https://x.example/h").events
    assert "alert" not in parse_sink("webhook+all:https://x.example/h").events
