"""Monitoring in local mode and in remote mode (a real server): the run is computed where
the prediction log is, stored as the caller, and reads the same from both sides."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sklearn.linear_model import Ridge

from shipyard.client import RemoteProject
from shipyard.client.monitoring import MAX_QUERY_NAMES
from shipyard.domain.ids import utcnow
from shipyard.domain.lineage import Node
from shipyard.errors import InvalidArgumentError, PermissionDeniedError
from shipyard.server.api.routes.monitoring import MAX_METRICS_MODELS
from shipyard.settings import Settings

from .conftest import Invoke, Team


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The shared project settings, with an alert rule and a retraining pipeline."""
    return settings.model_copy(
        update={"monitor_alerts": ("drift_share > 0.5",), "retrain_pipeline": "retrain.py:flow"}
    )


@pytest.fixture
def served(team: Team) -> Team:
    """``prices@1`` trained on ``prices-data@1``; 40 logged rows a minute old, 20 shifted."""
    project = team.project
    frame = pd.DataFrame({"x": [float(i % 17) for i in range(200)]})
    frame["y"] = frame["x"] * 2
    dataset = project.datasets.add("prices-data", frame).version
    with project.runs.start_run("prices", capture=False) as run:
        run.use_dataset(dataset.ref)
        model = Ridge().fit(frame[["x"]], frame["y"])
        run.log_model(model, "prices", input_example=frame[["x"]][:3], onnx=False)
    project.datasets.add("prices-later", frame.assign(x=frame["x"] + 50.0))
    with project.predictions.log(deployment_id="dep-1", name="prices") as log:
        for i in range(40):
            x = float(i % 17) + (50.0 if i >= 20 else 0.0)
            log.record(
                request_id=f"r{i}",
                at=time.time() - 60,
                version=1,
                inputs=[{"x": x}],
                outputs=[x * 2],
                latency=0.003,
            )
    return team


@dataclass
class Side:
    """The services a test uses, from the local project or through the server."""

    monitoring: Any
    user: str


@pytest.fixture(params=["local", "remote"])
def side(request: pytest.FixtureRequest, served: Team) -> Iterator[Side]:
    if request.param == "local":
        yield Side(served.project.monitoring, served.project.user)
        return
    with RemoteProject(served.url, served.tokens["editor"]) as remote:
        yield Side(remote.monitoring, "eddie")


def test_a_monitor_run_over_the_prediction_log_is_stored_as_the_caller(
    side: Side, served: Team
) -> None:
    run = side.monitoring.run("prices@1", window="1h", retrain=False)
    assert (run.status, run.rows, run.reference) == ("alert", 40, "prices-data@1")
    assert run.metrics["drift_share"] == 1.0 and run.current == "predictions"
    assert [a.rule for a in run.alerts] == ["drift_share > 0.5"]
    assert run.created_by == side.user and run.retrain == {}
    stored = served.project.monitoring.show(run.id)
    assert stored.created_by == side.user and stored.metrics == side.monitoring.show(run.id).metrics
    assert side.monitoring.report(run.id)["report"]["dataset_drift"] is True
    html = side.monitoring.report_html(run.id)
    assert "<svg" in html and html == served.project.monitoring.report_html(run.id)
    graph = served.project.lineage.graph(Node("monitor_run", run.id), depth=1)
    [edge] = [e for e in graph.upstream if e.source == Node("model_version", "prices@1")]
    assert (edge.relation, edge.created_by) == ("monitored_by", side.user)
    against = side.monitoring.run("prices@1", current="prices-later@1", retrain=False)
    assert (against.current, against.window_start) == ("prices-later@1", None)
    assert [r.id for r in side.monitoring.history("prices")] == [against.id, run.id]


def test_both_modes_compute_the_same_run(served: Team) -> None:
    now = utcnow()
    local = served.project.monitoring.run("prices@1", window="1h", retrain=False, now=now)
    with RemoteProject(served.url, served.tokens["editor"]) as remote:
        far = remote.monitoring.run("prices@1", window="1h", retrain=False, now=now)
        far_report = remote.monitoring.report(far.id)["report"]
    assert far.id != local.id
    for field in ("rows", "status", "metrics", "alerts", "reference", "current", "version"):
        assert getattr(far, field) == getattr(local, field), field
    assert (far.window_start, far.window_end) == (now - timedelta(hours=1), now)
    assert far_report == served.project.monitoring.report(local.id)["report"]


def test_metrics_text_is_the_same_in_both_modes(side: Side, served: Team) -> None:
    served.project.monitoring.run("prices@1", window="1h", retrain=False)
    local = served.project.monitoring
    text = side.monitoring.metrics_text()
    assert text == local.metrics_text()
    assert 'shipyard_monitor_drift_share{model="prices",version="1"} 1.0' in text
    assert side.monitoring.metrics_text(["prices"]) == local.metrics_text(["prices"])
    assert side.monitoring.metrics_text(["prices", "other"]) == local.metrics_text(["prices"])
    assert side.monitoring.metrics_text([]) == local.metrics_text([])
    many = [f"m{i}" for i in range(MAX_METRICS_MODELS)] + ["prices"]  # more than a URL takes
    assert MAX_QUERY_NAMES == MAX_METRICS_MODELS
    assert side.monitoring.metrics_text(many) == local.metrics_text(many)
    assert side.monitoring.metrics_text(many[:-1]) == local.metrics_text(many[:-1])
    assert "prices" not in side.monitoring.metrics_text(["other"])


_unpickled: list[str] = []
_watching = threading.Event()


def _hook(event: str, args: tuple[object, ...]) -> None:
    if _watching.is_set() and event == "pickle.find_class":
        _unpickled.append(repr(args))


sys.addaudithook(_hook)


def test_retraining_runs_here_and_records_everything_on_the_server(
    served: Team, tmp_path: Path
) -> None:
    # The laptop's settings name the pipeline (its code is here); the server's alert rule
    # decides. The server runs in this process (a thread): the audit hook would see an
    # unpickling there (the pipeline's result is a plain string: none here either).
    flow = tmp_path / "retrain.py"
    flow.write_text(
        "import shipyard as sy\n\n@sy.task\ndef fit(dataset: str) -> str:\n"
        "    return 'prices@1'\n\n@sy.pipeline(name='retrain')\n"
        "def flow(dataset: str) -> str:\n    return fit(dataset)\n",
        encoding="utf-8",
    )
    laptop = Settings.load(tmp_path, env={}, retrain_pipeline=f"{flow}:flow", promote_to="staging")
    _watching.set()
    try:
        with RemoteProject(served.url, served.tokens["editor"], laptop) as remote:
            run = remote.monitoring.run("prices@1", window="1h")
    finally:
        _watching.clear()
    assert _unpickled == []
    assert run.status == "alert", run
    assert run.retrain["dataset"] == "prices-monitored@1"
    assert run.retrain["pipeline_status"] == "succeeded"
    assert run.retrain["model_version"] == "prices@1"
    project = served.project
    window = project.datasets.get("prices-monitored@1").to_arrow()
    assert window.num_rows == 40 and "x" in window.column_names
    assert project.datasets.resolve("prices-monitored@1").created_by == "eddie"
    [pipeline_run] = project.pipelines.list(pipeline="retrain")
    assert pipeline_run.created_by == "eddie" and pipeline_run.status == "succeeded"
    [request] = project.registry.requests(status=None)
    assert (request.id, request.target) == (run.retrain["promotion_request"], "staging")
    assert request.requested_by == "eddie" and request.status == "pending"
    graph = project.lineage.graph(Node("monitor_run", run.id), depth=1)
    assert [e.target.id for e in graph.downstream] == ["prices-monitored@1"]


def test_only_the_runs_maker_links_datasets_to_it(served: Team) -> None:
    run = served.project.monitoring.run("prices@1", window="1h", retrain=False)
    path = f"/api/v1/monitoring/runs/{run.id}/datasets"
    with served.client("editor") as eddie, served.client("viewer") as vic:
        refused = eddie.post(path, json={"dataset": "prices-data@1"})
        assert refused.status_code == 403 and "only they retrain" in refused.text
        assert vic.get(f"/api/v1/monitoring/runs/{run.id}/window").status_code == 200
    graph = served.project.lineage.graph(Node("monitor_run", run.id), depth=1)
    assert [e.target.id for e in graph.downstream if e.relation == "created"] == []


def test_bad_monitor_requests_get_a_4xx_naming_the_field_and_write_nothing(
    served: Team,
) -> None:
    bad: list[tuple[dict[str, Any], str]] = [
        ({"model": "../prices@1"}, "model"),
        ({"model": "prices@1/../../etc"}, "model"),
        ({"model": "pri..ces@1"}, "model"),
        ({"model": "prices@1", "window": "soon"}, "window"),
        ({"model": "prices@1", "window": "1h;rm"}, "window"),
        ({"model": "prices@1", "window": "99999999w"}, "window"),
        ({"model": "prices@1", "reference": "/etc/passwd"}, "reference"),
        ({"model": "prices@1", "current": "..%2f..%2fetc"}, "current"),
        ({"model": "prices@1", "current": "prices-later@..", "window": "1h"}, "current"),
        ({"model": "prices@1", "path": "/tmp/x"}, "path"),
        ({"model": "prices@1", "now": "2026-01-01T00:00:00"}, "now"),
        ({"model": "prices@1", "window": "1d", "now": "0001-01-01T00:00:00Z"}, "window"),
        ({"window": "1h"}, "model"),
    ]
    with served.client("editor") as http:
        for body, field in bad:
            answer = http.post("/api/v1/monitoring/runs", json=body)
            assert answer.status_code == 422, (body, answer.text)
            assert field in answer.json()["error"]["message"], (body, answer.text)
        missing = http.post("/api/v1/monitoring/runs", json={"model": "prices@9"})
        assert missing.status_code == 404 and "prices" in missing.json()["error"]["message"]
        unknown = {"model": "prices@1", "reference": "nothing@1"}
        assert http.post("/api/v1/monitoring/runs", json=unknown).status_code == 404
        query = {"model": ["prices", "../x"]}
        assert http.get("/api/v1/monitoring/metrics", params=query).status_code == 422
    with served.client("viewer") as viewer:
        refused = viewer.post("/api/v1/monitoring/runs", json={"model": "prices@1"})
        assert refused.status_code == 403
        assert viewer.get("/api/v1/monitoring/metrics").status_code == 200
    with RemoteProject(served.url, served.tokens["viewer"]) as viewing:
        with pytest.raises(PermissionDeniedError):
            viewing.monitoring.run("prices@1")
        assert "prices" not in viewing.monitoring.metrics_text()  # nothing was stored
    with RemoteProject(served.url, served.tokens["editor"]) as editing:
        with pytest.raises(InvalidArgumentError, match="soon"):
            editing.monitoring.run("prices@1", window="soon")
        assert editing.monitoring.history("prices") == []
    assert served.project.monitoring.history("prices") == []  # and nothing on the server


def test_monitor_run_and_metrics_work_through_the_server(remote_cli: Invoke, served: Team) -> None:
    shown = remote_cli("monitor", "run", "prices@1", "--window", "1h", "--html", "report.html")
    assert shown.exit_code == 0, shown.output
    assert "ALERT" in shown.output and "drift_share > 0.5" in shown.output
    assert "retrain" not in shown.output.lower()  # this laptop configures no retraining
    [stored] = served.project.monitoring.history("prices")
    assert stored.created_by == "eddie"
    assert Path("report.html").read_text() == served.project.monitoring.report_html(stored.id)
    answer = remote_cli("monitor", "run", "prices@1", "-w", "1h", "--no-retrain", "--json")
    assert answer.exit_code == 0, answer.output
    data = json.loads(answer.output)
    assert (data["status"], data["rows"], data["retrain"]) == ("alert", 40, {})
    assert data["created_by"] == "eddie"
    text = remote_cli("monitor", "metrics", "--model", "prices").output
    assert text == served.project.monitoring.metrics_text(["prices"])
    bad = remote_cli("monitor", "run", "prices@1", "--window", "soon")
    assert bad.exit_code == 2 and "soon" in bad.output
    assert remote_cli("monitor", "run", "prices@9").exit_code == 2
    assert not (Path.cwd() / ".shipyard").exists()  # nothing was written on the laptop
