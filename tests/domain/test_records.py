"""from_record rebuilds every record from its JSON form, and refuses what does not fit."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest

from shipyard.domain.records import from_record
from shipyard.domain.runs import Experiment, MetricSummary, Run
from shipyard.errors import InvalidArgumentError

NOW = datetime(2026, 11, 24, 1, 2, 3, tzinfo=UTC)


@dataclass(frozen=True)
class Inner:
    name: str
    score: float


@dataclass(frozen=True)
class Outer:
    id: str
    items: tuple[Inner, ...]
    by_name: dict[str, Inner]
    when: datetime | None
    count: int = 0
    labels: list[str] = field(default_factory=list)


def test_a_run_survives_the_round_trip_through_json_with_non_finite_values() -> None:
    summary = MetricSummary("loss", math.nan, 3, 1.5, -math.inf, math.inf, 4)
    run = Run(
        id="r1",
        experiment="churn",
        name="n",
        parent_id=None,
        status="finished",
        user="ann",
        start_time=NOW,
        end_time=NOW,
        host="h",
        pid=7,
        params={"a": "1"},
        tags={},
        metrics={"loss": summary},
        environment={"python": "3.11"},
        resources=None,
    )
    back = from_record(Run, json.loads(json.dumps(run.to_dict())))
    assert back.start_time == NOW and back.params == {"a": "1"}
    loss = back.metrics["loss"]
    assert math.isnan(loss.value) and loss.min == -math.inf and loss.max == math.inf
    assert from_record(Experiment, Experiment("e", "x", NOW, "ann").to_dict()).created_at == NOW


def test_nested_records_tuples_defaults_and_unknown_keys() -> None:
    data = {
        "id": "o",
        "items": [{"name": "a", "score": 1}, {"name": "b", "score": "Infinity"}],
        "by_name": {"a": {"name": "a", "score": 2.5}},
        "when": None,
        "extra": "ignored",
    }
    back = from_record(Outer, data)
    assert back.items == (Inner("a", 1.0), Inner("b", math.inf))
    assert back.by_name == {"a": Inner("a", 2.5)}
    assert back.count == 0 and back.labels == [] and back.when is None


@pytest.mark.parametrize(
    ("data", "named"),
    [
        ({"items": [], "by_name": {}, "when": None}, "'id'"),
        ({"id": 1, "items": [], "by_name": {}, "when": None}, "Outer.id"),
        ({"id": "o", "items": [{"name": "a", "score": "x"}], "by_name": {}, "when": None}, "score"),
        ({"id": "o", "items": [], "by_name": {}, "when": None, "count": True}, "Outer.count"),
        ({"id": "o", "items": {}, "by_name": {}, "when": None}, "Outer.items"),
        ({"id": "o", "items": [], "by_name": {}, "when": 5}, "Outer.when"),
        ([], "Outer"),
    ],
)
def test_what_does_not_fit_is_refused_naming_the_field(data: object, named: str) -> None:
    with pytest.raises(InvalidArgumentError, match=named.replace(".", r"\.")):
        from_record(Outer, data)  # type: ignore[arg-type]
