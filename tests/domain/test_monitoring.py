from __future__ import annotations

import math

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
