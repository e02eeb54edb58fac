"""The shipped Grafana dashboard queries only metrics the model server exports."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

from shipyard.domain.monitoring import Alert, MonitorRun
from shipyard.server.serving.metrics import ServingMetrics
from shipyard.services.monitoring_metrics import prometheus_lines

DASHBOARD = Path(__file__).parents[1] / "deploy" / "grafana" / "shipyard.json"
_SUFFIXES = ("_bucket", "_sum", "_count")


def _exported() -> set[str]:
    run = MonitorRun(
        id="r1",
        name="wine",
        version=1,
        deployment_id=None,
        reference="wine-data@1",
        current="predictions",
        window_start=None,
        window_end=None,
        rows=10,
        status="alert",
        metrics={
            "drift_share": 0.5,
            "dataset_drift": 1.0,
            "drift_score.alcohol": 0.3,
            "missing_rate": 0.0,
            "accuracy": 0.9,
            "latency_p50_ms": 1.0,
            "latency_p95_ms": 2.0,
            "latency_p99_ms": 3.0,
        },
        alerts=(Alert("drift_share > 0.3", "drift_share", 0.5),),
        report_digest=None,
        html_digest=None,
        created_at=datetime.now(UTC),
        created_by="alice",
    )
    metrics = ServingMetrics()
    metrics.monitoring_text = "\n".join(prometheus_lines([run])) + "\n"
    text = metrics.render(model="wine", version=1, runtime="native", log={}, switches=0, uptime=1.0)
    return set(re.findall(r"^# TYPE (\w+) ", text, re.MULTILINE))


def _queried() -> set[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    exprs += [v["query"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    names = set()
    for expr in exprs:
        for name in re.findall(r"\bshipyard_\w+", expr):
            for suffix in _SUFFIXES:
                if name.endswith(suffix) and name != "shipyard_predicted_rows_total":
                    name = name.removesuffix(suffix)
            names.add(name)
    return names


def test_every_metric_the_dashboard_queries_is_exported() -> None:
    queried = _queried()
    assert queried - _exported() == set()


def test_the_dashboard_shows_serving_and_monitoring() -> None:
    queried = _queried()
    assert "shipyard_request_duration_seconds" in queried
    assert "shipyard_monitor_drift_score" in queried
    assert "shipyard_monitor_model_metric" in queried
    assert len(queried) >= 12


def test_the_exported_set_is_every_monitoring_gauge() -> None:
    from shipyard.services.monitoring_metrics import MONITOR_METRIC_NAMES

    assert set(MONITOR_METRIC_NAMES) <= _exported()
