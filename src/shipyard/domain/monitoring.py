"""Monitoring: monitor runs, their flat metrics, and alert rules over those metrics.

An alert rule is one line ``metric op threshold``::

    drift_share > 0.3              share of feature columns that drifted
    missing_rate > 0.05            share of missing feature values in the window
    roc_auc < 0.8                  a model metric, on the labelled rows of the window
    latency_p99_ms > 50            the 99th percentile of the logged latencies
    drift_score.alcohol > 0.2      one feature's drift score

A rule whose metric a run did not compute (``roc_auc`` without labels, a column the window
does not have) does not fire; the run lists it as skipped, with why (``skipped_rules``), so
that a rule that can never fire, such as one naming a misspelt column, does not go unseen.

This module is pure: records and rules, no I/O. ``shipyard.services.monitoring`` computes
the metrics and stores the runs.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from shipyard.errors import InvalidArgumentError

__all__ = [
    "COLUMN_METRICS",
    "METRICS",
    "STATUSES",
    "Alert",
    "AlertRule",
    "MonitorRun",
    "MonitorStatus",
    "SkippedRule",
    "evaluate",
    "parse_rule",
    "parse_rules",
    "skipped_rules",
]

MonitorStatus = Literal["ok", "alert", "no_data", "failed"]
STATUSES: tuple[MonitorStatus, ...] = ("ok", "alert", "no_data", "failed")

# Metrics of a whole window; model metrics appear when the window has labels.
METRICS: Mapping[str, str] = {
    "rows": "rows in the current window",
    "reference_rows": "rows in the reference",
    "drift_share": "share of tested feature columns that drifted (0 to 1)",
    "drifted_columns": "feature columns that drifted",
    "dataset_drift": "1 when the drift share reached the threshold, else 0",
    "prediction_drift": "1 when the prediction column drifted, else 0",
    "missing_rate": "share of missing (null, NaN, infinite) feature values",
    "out_of_range_rate": "share of numeric feature values outside the reference range",
    "quality_issues": "data quality findings (schema changes, missing, range, categories)",
    "labelled_rows": "rows with a ground-truth label",
    "accuracy": "share of correct predictions (classification)",
    "f1": "F1 score (classification)",
    "roc_auc": "ROC AUC (binary classification with probabilities)",
    "rmse": "root mean squared error (regression)",
    "mae": "mean absolute error (regression)",
    "r2": "coefficient of determination (regression)",
    "requests": "distinct requests in the window",
    "throughput_rps": "rows per second, averaged over the window",
    "latency_p50_ms": "median latency of the logged rows",
    "latency_p95_ms": "95th percentile latency",
    "latency_p99_ms": "99th percentile latency",
    "served_requests": "/predict answers the model servers counted in the window",
    "client_errors": "answers with a 4xx status (bad input) among them",
    "server_errors": "answers with a 5xx status (the model or server failed) among them",
    "error_rate": "share of /predict answers that were errors (4xx or 5xx)",
}
# Per-column metrics, written ``name.COLUMN``.
COLUMN_METRICS: Mapping[str, str] = {
    "drift_score": "a feature's drift score: the distance, or 1 - p-value for tests",
    "drifted": "1 when the feature drifted, else 0",
    "missing_rate": "share of the feature's values that are missing",
}

_OPS: Mapping[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
    ">": operator.gt,
    "<": operator.lt,
}
_RULE = re.compile(r"\s*([A-Za-z_][\w.\-]*)\s*(>=|<=|==|!=|>|<)\s*(\S+)\s*")


@dataclass(frozen=True, slots=True)
class AlertRule:
    """``metric op threshold``: fires when the run's metric compares true.

    Attributes:
        metric: a name of ``METRICS`` or ``COLUMN_METRICS`` (``drift_score.age``), or
            ``baseline_<model metric>``.
        op: one of ``>``, ``>=``, ``<``, ``<=``, ``==``, ``!=``.
        threshold: the number compared with.
    """

    metric: str
    op: str
    threshold: float

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.threshold:g}"

    def fires(self, metrics: Mapping[str, float]) -> bool:
        """Whether the rule fires for these metrics (never for a metric not computed or NaN)."""
        value = metrics.get(self.metric)
        if value is None or math.isnan(value):
            return False
        return _OPS[self.op](float(value), self.threshold)


def parse_rule(text: object) -> AlertRule:
    """Parse ``"drift_share > 0.3"`` into a rule.

    Raises:
        InvalidArgumentError: naming the rule and what is wrong with it.
    """
    if not isinstance(text, str):
        raise InvalidArgumentError(f"alert rule {text!r} is not a string like 'drift_share > 0.3'")
    match = _RULE.fullmatch(text)
    if match is None:
        raise InvalidArgumentError(
            f"alert rule {text!r} is not 'metric op threshold', e.g. 'drift_share > 0.3' "
            f"(ops: {', '.join(_OPS)})"
        )
    metric, op, number = match.groups()
    try:
        threshold = float(number)
    except ValueError:
        raise InvalidArgumentError(
            f"alert rule {text!r}: threshold {number!r} is not a number"
        ) from None
    if math.isnan(threshold):
        raise InvalidArgumentError(f"alert rule {text!r}: the threshold may not be NaN")
    head, dot, column = metric.partition(".")
    known = (
        (dot and head in COLUMN_METRICS and column)
        or (not dot and metric in METRICS)
        or (not dot and metric.startswith("baseline_") and metric[9:] in METRICS)
    )
    if not known:
        raise InvalidArgumentError(
            f"alert rule {text!r}: unknown metric {metric!r}; use one of "
            f"{', '.join(METRICS)} or {', '.join(f'{m}.COLUMN' for m in COLUMN_METRICS)}"
        )
    return AlertRule(metric, op, threshold)


def parse_rules(texts: Iterable[object]) -> tuple[AlertRule, ...]:
    """Parse every rule; the first bad one raises, naming it.

    Raises:
        InvalidArgumentError: naming the bad rule.
    """
    return tuple(parse_rule(text) for text in texts)


@dataclass(frozen=True, slots=True)
class Alert:
    """A rule that fired, with the value that made it fire."""

    rule: str
    metric: str
    value: float

    @property
    def message(self) -> str:
        """One line: ``drift_share > 0.3 (is 0.62)``."""
        return f"{self.rule} (is {self.value:.4g})"

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {"rule": self.rule, "metric": self.metric, "value": self.value}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Alert:
        """Rebuild an alert from ``to_dict`` output."""
        return cls(str(data["rule"]), str(data["metric"]), float(data["value"]))


def evaluate(rules: Iterable[AlertRule], metrics: Mapping[str, float]) -> tuple[Alert, ...]:
    """The alerts the rules raise for one run's metrics, in rule order."""
    return tuple(
        Alert(str(rule), rule.metric, float(metrics[rule.metric]))
        for rule in rules
        if rule.fires(metrics)
    )


@dataclass(frozen=True, slots=True)
class SkippedRule:
    """A rule a run could not evaluate: its metric was not computed, or is NaN."""

    rule: str
    metric: str
    reason: str

    @property
    def message(self) -> str:
        """One line: ``roc_auc < 0.8: no labelled rows in the window …``."""
        return f"{self.rule}: {self.reason}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {"rule": self.rule, "metric": self.metric, "reason": self.reason}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SkippedRule:
        """Rebuild a skipped rule from ``to_dict`` output."""
        return cls(str(data["rule"]), str(data["metric"]), str(data["reason"]))


_MODEL_METRICS = frozenset({"accuracy", "f1", "roc_auc", "rmse", "mae", "r2"})
_SERVING_METRICS = frozenset(
    {"requests", "throughput_rps", "latency_p50_ms", "latency_p95_ms", "latency_p99_ms"}
)
_COUNT_METRICS = frozenset({"served_requests", "client_errors", "server_errors", "error_rate"})


def skipped_rules(
    rules: Iterable[AlertRule], metrics: Mapping[str, float]
) -> tuple[SkippedRule, ...]:
    """The rules one run's metrics cannot answer, each with why, in rule order."""
    found = []
    for rule in rules:
        value = metrics.get(rule.metric)
        if value is not None and not math.isnan(value):
            continue
        why = _why_missing if value is None else _why_nan
        found.append(SkippedRule(str(rule), rule.metric, why(rule.metric, metrics)))
    return tuple(found)


def _why_nan(metric: str, metrics: Mapping[str, float]) -> str:
    return f"{metric} is NaN"


def _why_missing(metric: str, metrics: Mapping[str, float]) -> str:
    """Why a run has no value for ``metric``, as far as its other metrics tell."""
    head, dot, column = metric.partition(".")
    if dot:
        columns = sorted(k.partition(".")[2] for k in metrics if k.startswith(head + "."))
        if not columns:
            return f"the run computed {head} for no column"
        shown = ", ".join(columns[:10]) + (", …" if len(columns) > 10 else "")
        return f"the window has no feature column {column!r} (columns: {shown})"
    if metric.startswith("baseline_"):
        return (
            f"the model version's run logged no {metric[9:]} to compare with "
            "(log it as a metric of the training run)"
        )
    if metric in _MODEL_METRICS:
        if not metrics.get("labelled_rows"):
            return f"no labelled rows in the window: {metric} needs ground truth"
        if metric == "roc_auc":
            return "roc_auc needs a binary classifier that logs class probabilities"
        kind = "regression" if metric in ("rmse", "mae", "r2") else "classification"
        return f"{metric} is a {kind} metric, and this model's labels are not for {kind}"
    if metric in _SERVING_METRICS:
        return f"{metric} comes from the prediction log; this run monitored a dataset version"
    if metric in _COUNT_METRICS:
        return f"{metric} comes from the model servers' request counts; none cover this window"
    return f"the run did not compute {metric}"


@dataclass(frozen=True, slots=True)
class MonitorRun:
    """One monitoring pass over a window of a model's traffic (or a dataset version).

    Attributes:
        id: sortable id.
        name: the registered model.
        version: the model version monitored.
        deployment_id: the deployment that served the window, when one did.
        reference: the reference dataset version (``wine@2``).
        current: ``predictions`` or the current dataset version.
        window_start: start of the prediction-log window (None for a dataset version).
        window_end: end of the window.
        rows: rows in the current window.
        status: ``ok``, ``alert``, ``no_data`` or ``failed``.
        metrics: flat numbers (see ``METRICS``).
        alerts: the rules that fired.
        skipped: the rules the run could not evaluate (metric not computed), with why.
        report_digest: the JSON report blob.
        html_digest: the HTML report blob.
        created_at: when the run was stored.
        created_by: who ran it.
        retrain: what the retraining loop did (dataset, pipeline run, model, request), or an
            empty mapping; not stored in the row, only on the run just made.
        error: why a ``failed`` run failed.
    """

    id: str
    name: str
    version: int | None
    deployment_id: str | None
    reference: str
    current: str
    window_start: datetime | None
    window_end: datetime | None
    rows: int
    status: MonitorStatus
    metrics: Mapping[str, float]
    alerts: tuple[Alert, ...]
    report_digest: str | None
    html_digest: str | None
    created_at: datetime
    created_by: str
    retrain: Mapping[str, Any] = field(default_factory=dict)
    error: str | None = None
    skipped: tuple[SkippedRule, ...] = ()

    @property
    def model_ref(self) -> str:
        """``name@version``."""
        return f"{self.name}@{self.version}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (non-finite numbers as strings)."""
        return {
            "id": self.id,
            "model": self.model_ref,
            "name": self.name,
            "version": self.version,
            "deployment_id": self.deployment_id,
            "reference": self.reference,
            "current": self.current,
            "window_start": None if self.window_start is None else self.window_start.isoformat(),
            "window_end": None if self.window_end is None else self.window_end.isoformat(),
            "rows": self.rows,
            "status": self.status,
            "metrics": {k: _finite(v) for k, v in self.metrics.items()},
            "alerts": [a.to_dict() for a in self.alerts],
            "report_digest": self.report_digest,
            "html_digest": self.html_digest,
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
            "retrain": dict(self.retrain),
            "error": self.error,
            "skipped": [r.to_dict() for r in self.skipped],
        }


def _finite(value: float) -> float | str:
    return value if math.isfinite(value) else str(value)
