from __future__ import annotations

import json
import math
from datetime import UTC, datetime

import pytest

from shipyard.domain.monitoring import Alert, AlertRule, evaluate, parse_rule, parse_rules
from shipyard.errors import InvalidArgumentError


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("drift_share > 0.3", AlertRule("drift_share", ">", 0.3)),
        ("missing_rate>0.05", AlertRule("missing_rate", ">", 0.05)),
        ("  roc_auc < 0.8 ", AlertRule("roc_auc", "<", 0.8)),
        ("latency_p99_ms >= 50", AlertRule("latency_p99_ms", ">=", 50.0)),
        ("drift_score.alcohol > 0.2", AlertRule("drift_score.alcohol", ">", 0.2)),
        ("baseline_accuracy != 1", AlertRule("baseline_accuracy", "!=", 1.0)),
    ],
)
def test_rules_parse(text: str, rule: AlertRule) -> None:
    assert parse_rule(text) == rule


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("drift_share", "not 'metric op threshold'"),
        ("drift_share >> 0.3", "drift_share >> 0.3"),
        ("drift_share > lots", "not a number"),
        ("drift_share > nan", "NaN"),
        ("drfit_share > 0.3", "unknown metric 'drfit_share'"),
        ("drift_score. > 0.3", "unknown metric"),
        ("", "not 'metric op threshold'"),
    ],
)
def test_a_bad_rule_is_refused_naming_it(text: str, match: str) -> None:
    with pytest.raises(InvalidArgumentError, match=match):
        parse_rule(text)


def test_a_rule_that_is_not_a_string_is_refused() -> None:
    with pytest.raises(InvalidArgumentError, match="not a string"):
        parse_rule(0.3)


def test_the_first_bad_rule_of_many_is_named() -> None:
    with pytest.raises(InvalidArgumentError, match="rows < x"):
        parse_rules(["rows < 10", "rows < x", "nope"])


def test_rules_fire_on_their_metric_only_and_never_on_missing_or_nan() -> None:
    rules = parse_rules(["drift_share > 0.3", "roc_auc < 0.8", "missing_rate > 0.05"])
    fired = evaluate(rules, {"drift_share": 0.6, "missing_rate": math.nan})
    assert fired == (Alert("drift_share > 0.3", "drift_share", 0.6),)
    assert fired[0].message == "drift_share > 0.3 (is 0.6)"
    assert evaluate(rules, {"drift_share": 0.3, "roc_auc": 0.8}) == ()
    assert Alert.from_dict(fired[0].to_dict()) == fired[0]


def test_skipped_rules_say_why_each_metric_is_missing() -> None:
    from shipyard.domain.monitoring import skipped_rules

    rules = parse_rules(
        [
            "drift_share > 0.3",
            "rmse > 2",
            "roc_auc < 0.7",
            "missing_rate.age > 0.1",
            "drifted.x == 1",
            "latency_p99_ms > 50",
            "error_rate > 0.01",
            "out_of_range_rate > 0.2",
        ]
    )
    metrics = {
        "drift_share": 0.1,
        "labelled_rows": 12.0,
        "accuracy": 0.9,
        "missing_rate.height": 0.0,
        "missing_rate.weight": 0.0,
        "out_of_range_rate": float("nan"),
    }
    found = {r.metric: r.reason for r in skipped_rules(rules, metrics)}
    assert "drift_share" not in found  # computed: evaluated
    assert "regression metric" in found["rmse"]
    assert "probabilities" in found["roc_auc"]
    assert found["missing_rate.age"] == (
        "the window has no feature column 'age' (columns: height, weight)"
    )
    assert found["drifted.x"] == "the run computed drifted for no column"
    assert "dataset version" in found["latency_p99_ms"]
    assert "request counts" in found["error_rate"]
    assert found["out_of_range_rate"] == "out_of_range_rate is NaN"
    assert not any(rule.fires(metrics) for rule in rules if rule.metric in found)


def test_a_run_with_skipped_rules_round_trips_through_json() -> None:
    from shipyard.domain.monitoring import MonitorRun, SkippedRule
    from shipyard.domain.records import from_record

    skipped = (SkippedRule("accuracy < 0.9", "accuracy", "no labelled rows in the window"),)
    run = MonitorRun(
        id="r1",
        name="wine",
        version=1,
        deployment_id=None,
        reference="wine-data@1",
        current="predictions",
        window_start=None,
        window_end=None,
        rows=3,
        status="ok",
        metrics={"rows": 3.0},
        alerts=(),
        report_digest=None,
        html_digest=None,
        created_at=datetime(2026, 11, 24, tzinfo=UTC),
        created_by="alice",
        skipped=skipped,
    )
    back = from_record(MonitorRun, json.loads(json.dumps(run.to_dict())))
    assert back.skipped == skipped
    assert skipped[0].message == "accuracy < 0.9: no labelled rows in the window"
    older = {k: v for k, v in run.to_dict().items() if k != "skipped"}  # an older server
    assert from_record(MonitorRun, older).skipped == ()
