"""The flat numbers of a monitor run, and their Prometheus text exposition.

``window_metrics`` turns a drift report and the window's rows into the flat metrics alert
rules read (``shipyard.domain.monitoring.METRICS``); ``prometheus_lines`` writes the latest
run of each model as gauges, for ``shipyard monitor metrics`` and the model server's
``/metrics``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from shipyard.domain.deployments import RequestCounts
from shipyard.domain.drift import P_VALUE_METHODS, DriftReport
from shipyard.domain.monitoring import MonitorRun

__all__ = [
    "MONITOR_METRIC_NAMES",
    "error_metrics",
    "operations",
    "prometheus_lines",
    "window_metrics",
]

# Every metric name ``prometheus_lines`` can write (the Grafana dashboard test reads it).
MONITOR_METRIC_NAMES = (
    "shipyard_monitor_drift_share",
    "shipyard_monitor_dataset_drift",
    "shipyard_monitor_drift_score",
    "shipyard_monitor_missing_rate",
    "shipyard_monitor_model_metric",
    "shipyard_monitor_latency_ms",
    "shipyard_monitor_error_rate",
    "shipyard_monitor_rows",
    "shipyard_monitor_alerts",
    "shipyard_monitor_last_run_timestamp_seconds",
)
_QUANTILES = (("latency_p50_ms", "0.5"), ("latency_p95_ms", "0.95"), ("latency_p99_ms", "0.99"))
_MODEL_METRICS = ("accuracy", "f1", "roc_auc", "rmse", "mae", "r2")


def window_metrics(report: DriftReport) -> dict[str, float]:
    """Drift, data quality and model quality of a report as flat numbers.

    Args:
        report: the drift report of the window.

    Returns:
        ``rows``, ``drift_share``, ``drift_score.COLUMN``…, model metrics when labelled.
    """
    out: dict[str, float] = {
        "rows": float(report.current_rows),
        "reference_rows": float(report.reference_rows),
        "quality_issues": float(len(report.quality.issues)),
    }
    if report.status == "no_data":
        return out
    out["drift_share"] = float(report.drifted_share)
    out["drifted_columns"] = float(len(report.drifted))
    out["dataset_drift"] = float(report.dataset_drift)
    if report.prediction is not None and report.prediction.method is not None:
        out["prediction_drift"] = float(report.prediction.drifted)
    for column in report.columns:
        if column.method is None or column.statistic is None:
            continue
        score = column.statistic
        if column.method in P_VALUE_METHODS and column.p_value is not None:
            score = 1.0 - column.p_value
        out[f"drift_score.{column.name}"] = float(score)
        out[f"drifted.{column.name}"] = float(column.drifted)
    missing = [q.missing_current for q in report.quality.columns]
    for q in report.quality.columns:
        out[f"missing_rate.{q.name}"] = float(q.missing_current)
    if missing:
        out["missing_rate"] = float(sum(missing) / len(missing))
    numeric = [c for c in report.columns if c.kind == "numeric"]
    outside = sum(q.out_of_range for q in report.quality.columns)
    if numeric and report.current_rows:
        out["out_of_range_rate"] = outside / (len(numeric) * report.current_rows)
    if report.model is not None:
        out["labelled_rows"] = float(report.model.rows)
        for check in report.model.metrics:
            out[check.name] = float(check.value)
            if check.baseline is not None:
                out[f"baseline_{check.name}"] = float(check.baseline)
    return out


def operations(table: Any, seconds: float | None) -> dict[str, float]:
    """Latency percentiles, requests and throughput of prediction-log rows.

    Args:
        table: rows of the prediction log (``latency_ms``, ``request_id``, ``at``).
        seconds: the window's length; None: the span between the first and last row.

    Returns:
        ``latency_p50_ms``, ``latency_p95_ms``, ``latency_p99_ms``, ``requests``,
        ``throughput_rps`` (only what the table has columns for).
    """
    import numpy as np
    import pyarrow.compute as pc

    out: dict[str, float] = {}
    if table.num_rows == 0:
        return out
    names = table.column_names
    if "latency_ms" in names:
        latency = table["latency_ms"].to_numpy(zero_copy_only=False).astype(np.float64)
        latency = latency[np.isfinite(latency)]
        if len(latency):
            for key, q in _QUANTILES:
                out[key] = float(np.percentile(latency, float(q) * 100))
    if "request_id" in names:
        out["requests"] = float(pc.count_distinct(table["request_id"]).as_py())
    if seconds is None and "at" in names:
        first, last = pc.min(table["at"]).as_py(), pc.max(table["at"]).as_py()
        seconds = (last - first).total_seconds() if first and last else None
    if seconds:
        out["throughput_rps"] = table.num_rows / seconds
    return out


def error_metrics(counts: RequestCounts) -> dict[str, float]:
    """The model servers' ``/predict`` answers in the window, and the share that failed.

    From the servers' own counters (sent with their heartbeats), so sampling of the
    prediction log does not change them. Empty when no server counted a request.

    Returns:
        ``served_requests``, ``client_errors``, ``server_errors``, ``error_rate``.
    """
    if not counts.requests:
        return {}
    return {
        "served_requests": float(counts.requests),
        "client_errors": float(counts.client_errors),
        "server_errors": float(counts.server_errors),
        "error_rate": counts.errors / counts.requests,
    }


def _label(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def prometheus_lines(runs: Iterable[MonitorRun]) -> list[str]:
    """Gauges of the latest monitor run of each model, in the text exposition format.

    Args:
        runs: monitor runs, newest first; only the first of each model counts.

    Returns:
        Lines with ``# HELP`` and ``# TYPE`` headers (no trailing newline).
    """
    latest: dict[str, MonitorRun] = {}
    for run in runs:
        latest.setdefault(run.name, run)
    series: dict[str, list[str]] = {name: [] for name in MONITOR_METRIC_NAMES}
    for run in latest.values():
        base = f'model="{_label(run.name)}",version="{run.version}"'
        m: Mapping[str, float] = run.metrics

        def add(name: str, value: float, extra: str = "", base: str = base) -> None:
            series[name].append(f"{name}{{{base}{extra}}} {_number(value)}")

        if "drift_share" in m:
            add("shipyard_monitor_drift_share", m["drift_share"])
        if "dataset_drift" in m:
            add("shipyard_monitor_dataset_drift", m["dataset_drift"])
        for key, value in sorted(m.items()):
            if key.startswith("drift_score."):
                add("shipyard_monitor_drift_score", value, f',feature="{_label(key[12:])}"')
        if "missing_rate" in m:
            add("shipyard_monitor_missing_rate", m["missing_rate"])
        for metric in _MODEL_METRICS:
            if metric in m:
                add("shipyard_monitor_model_metric", m[metric], f',metric="{metric}"')
        for key, quantile in _QUANTILES:
            if key in m:
                add("shipyard_monitor_latency_ms", m[key], f',quantile="{quantile}"')
        if "error_rate" in m:
            add("shipyard_monitor_error_rate", m["error_rate"])
        add("shipyard_monitor_rows", float(run.rows))
        add("shipyard_monitor_alerts", float(len(run.alerts)))
        add("shipyard_monitor_last_run_timestamp_seconds", run.created_at.timestamp())
    helps = {
        "shipyard_monitor_drift_share": "Share of feature columns that drifted, last monitor run.",
        "shipyard_monitor_dataset_drift": "1 when the last monitor run found dataset drift.",
        "shipyard_monitor_drift_score": "Drift score per feature (distance, or 1 - p-value).",
        "shipyard_monitor_missing_rate": "Share of missing feature values, last monitor run.",
        "shipyard_monitor_model_metric": "Model quality on labelled rows, last monitor run.",
        "shipyard_monitor_latency_ms": "Latency quantiles of the last monitored window.",
        "shipyard_monitor_error_rate": "Share of /predict answers that were errors, last window.",
        "shipyard_monitor_rows": "Rows in the last monitored window.",
        "shipyard_monitor_alerts": "Alert rules the last monitor run fired.",
        "shipyard_monitor_last_run_timestamp_seconds": "When the last monitor run was stored.",
    }
    out: list[str] = []
    for name in MONITOR_METRIC_NAMES:
        out += [f"# HELP {name} {helps[name]}", f"# TYPE {name} gauge", *series[name]]
    return out
