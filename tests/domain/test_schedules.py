from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shipyard.domain.schedules import MissedPolicy, Trigger, plan_due
from shipyard.errors import InvalidArgumentError, InvalidScheduleError


def at(day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2026, 1, day, hour, minute, second, tzinfo=UTC)


@pytest.mark.parametrize(
    ("expression", "words"),
    [
        ("61 * * * *", ["'61 * * * *'", "minute field '61'", "0-59"]),
        ("0 25 * * *", ["hour field '25'", "0-23"]),
        ("0 3 * foo *", ["month field 'foo'"]),
        ("* * *", ["3 field(s)", "has 5"]),
        ("0 3 * * * *", ["6 field(s)"]),
        ("@sometimes", ["unknown alias", "@daily"]),
        ("   ", ["empty"]),
    ],
)
def test_a_bad_cron_expression_names_the_expression_and_the_problem(
    expression: str, words: list[str]
) -> None:
    with pytest.raises(InvalidScheduleError) as caught:
        Trigger.parse(cron=expression)
    for word in words:
        assert word in str(caught.value)


@pytest.mark.parametrize("every", ["often", "0s", "-5m", "0.5s", "15 parsecs"])
def test_a_bad_interval_is_refused(every: str) -> None:
    with pytest.raises(InvalidScheduleError, match="not valid"):
        Trigger.parse(every=every)


@pytest.mark.parametrize(("cron", "every"), [(None, None), ("0 3 * * *", "1h")])
def test_a_trigger_needs_exactly_one_of_cron_and_interval(
    cron: str | None, every: str | None
) -> None:
    with pytest.raises(InvalidScheduleError, match="exactly one"):
        Trigger.parse(cron, every)


@pytest.mark.parametrize(
    ("text", "cron", "seconds"),
    [
        ("15m", None, 900.0),
        ("1h", None, 3600.0),
        ("90", None, 90.0),
        ("0 3 * * *", "0 3 * * *", None),
        ("  0  3 * *  1-5 ", "0 3 * * 1-5", None),
        ("@Daily", "@daily", None),
    ],
)
def test_decorator_text_is_read_as_an_interval_or_a_cron_expression(
    text: str, cron: str | None, seconds: float | None
) -> None:
    assert Trigger.from_text(text) == Trigger(cron, seconds)


def test_decorator_text_that_is_neither_says_both_forms() -> None:
    with pytest.raises(InvalidScheduleError, match="neither an interval"):
        Trigger.from_text("sometimes")


def test_first_due_is_the_next_occurrence_in_utc() -> None:
    assert Trigger.parse(cron="0 3 * * *").first_due(at(1, 2, 59)) == at(1, 3)
    assert Trigger.parse(cron="0 3 * * *").first_due(at(1, 3)) == at(2, 3)
    assert Trigger.parse(every="15m").first_due(at(1, 3)) == at(1, 3, 15)
    # a non-UTC input is the same instant
    from zoneinfo import ZoneInfo

    paris = datetime(2026, 1, 1, 4, 0, tzinfo=ZoneInfo("Europe/Paris"))  # 03:00 UTC
    assert Trigger.parse(cron="0 3 * * *").first_due(paris) == at(2, 3)


def test_nothing_is_due_before_next_run_at() -> None:
    plan = plan_due(Trigger.parse(cron="0 3 * * *"), MissedPolicy(), at(2, 3), at(2, 2, 59))
    assert plan.launch == () and plan.next_run_at == at(2, 3)


def test_skip_launches_only_the_latest_missed_run() -> None:
    plan = plan_due(Trigger.parse(cron="0 3 * * *"), MissedPolicy.parse("skip"), at(1, 3), at(5, 4))
    assert plan.launch == (at(5, 3),)
    assert plan.skipped == 4
    assert plan.next_run_at == at(6, 3)


def test_a_run_due_exactly_now_is_launched() -> None:
    plan = plan_due(Trigger.parse(cron="0 3 * * *"), MissedPolicy(), at(1, 3), at(1, 3))
    assert plan.launch == (at(1, 3),) and plan.skipped == 0 and plan.next_run_at == at(2, 3)


def test_catchup_launches_every_missed_run_oldest_first() -> None:
    policy = MissedPolicy.parse("catchup")
    plan = plan_due(Trigger.parse(cron="0 3 * * *"), policy, at(1, 3), at(4, 12))
    assert plan.launch == (at(1, 3), at(2, 3), at(3, 3), at(4, 3))
    assert plan.skipped == 0 and plan.next_run_at == at(5, 3)


@pytest.mark.parametrize(
    "trigger", [Trigger.parse(cron="*/15 * * * *"), Trigger.parse(every="15m")]
)
def test_catchup_is_capped_at_the_most_recent_runs(trigger: Trigger) -> None:
    plan = plan_due(trigger, MissedPolicy.parse("catchup:3"), at(1, 0), at(1, 2, 5))
    assert plan.launch == (at(1, 1, 30), at(1, 1, 45), at(1, 2))
    assert plan.skipped == 6
    assert plan.next_run_at == at(1, 2, 15)


def test_a_year_of_missed_one_second_runs_is_planned_quickly() -> None:
    start = at(1)
    plan = plan_due(
        Trigger.parse(every="1s"),
        MissedPolicy.parse("catchup:5"),
        start,
        start + timedelta(days=365),
    )
    assert len(plan.launch) == 5 and plan.skipped == 365 * 86400 + 1 - 5


@pytest.mark.parametrize(
    ("text", "cap", "match"),
    [
        ("sometimes", None, "skip' or 'catchup"),
        ("catchup:x", None, "whole number"),
        ("catchup:0", None, "out of range"),
        ("catchup", 5000, "out of range"),
        ("skip", 3, "only applies"),
        ("catchup:3", 4, "once"),
    ],
)
def test_a_bad_missed_policy_is_refused(text: str, cap: int | None, match: str) -> None:
    with pytest.raises(InvalidArgumentError, match=match):
        MissedPolicy.parse(text, cap)


def test_the_missed_policy_round_trips_through_its_stored_text() -> None:
    for text in ("skip", "catchup", "catchup:3"):
        assert MissedPolicy.parse(text).text == text
    assert MissedPolicy.parse("catchup", 10).text == "catchup"
