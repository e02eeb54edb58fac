"""Schedules: when a pipeline runs again, and what happens to the runs a scheduler missed.

A schedule fires on a cron expression (five fields, or ``@daily`` and friends) or every
fixed interval (``"15m"``, ``"1h"``, ``"30s"``, ``"1d"`` or a number of seconds); every time
is UTC. A cron schedule is first due at its next occurrence after it was created, an
interval schedule one interval after it was created.

When the scheduler was down (or busy) and occurrences passed, the missed-run policy decides:

- ``skip`` (the default): launch one run, for the most recent missed occurrence, and drop
  the older ones;
- ``catchup``: launch one run for each missed occurrence, oldest first, but never more than
  ``max_catchup`` (10 unless given, as ``catchup:N``); older ones beyond the cap are dropped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from shipyard.domain.ids import as_utc
from shipyard.domain.pipelines import parse_duration
from shipyard.errors import InvalidArgumentError, InvalidScheduleError

__all__ = [
    "DEFAULT_MAX_CATCHUP",
    "MISSED_POLICIES",
    "DuePlan",
    "MissedPolicy",
    "Schedule",
    "Trigger",
    "format_interval",
    "plan_due",
]

MISSED_POLICIES = ("skip", "catchup")
DEFAULT_MAX_CATCHUP = 10
_MAX_CATCHUP_LIMIT = 1000  # a cap above this is a mistake, not a policy
_COUNT_SKIPPED_UP_TO = 10_000
_MIN_INTERVAL = 1.0  # seconds: the scheduler ticks in seconds, finer is meaningless
_CRON_ALIASES = frozenset({"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@hourly"})


@dataclass(frozen=True, slots=True)
class Trigger:
    """When a schedule fires: a cron expression or a fixed interval, never both."""

    cron: str | None = None
    interval_seconds: float | None = None

    @classmethod
    def parse(cls, cron: str | None = None, every: str | float | None = None) -> Trigger:
        """A validated trigger from a cron expression or an interval.

        Args:
            cron: five-field cron expression (minute hour day month weekday) or an alias
                such as ``@daily``; evaluated in UTC.
            every: an interval: ``"15m"``, ``"1h"``, ``"30s"``, ``"1d"`` or seconds.

        Raises:
            InvalidScheduleError: for both or neither, a bad cron expression (naming the
                expression and what is wrong) or a bad interval.
        """
        if (cron is None) == (every is None):
            raise InvalidScheduleError(
                f"cron={cron!r}, every={every!r}",
                "give exactly one of a cron expression (--cron) or an interval (--every)",
            )
        if cron is not None:
            return cls(cron=_check_cron(cron))
        assert every is not None
        return cls(interval_seconds=_check_interval(every))

    @classmethod
    def from_text(cls, text: str) -> Trigger:
        """A trigger from one string, as ``@pipeline(schedule=...)`` takes it.

        An interval (``"15m"``, ``"2h"``, ``"90"``) is read as one; anything else must be a
        cron expression.
        """
        stripped = text.strip()
        if stripped and " " not in stripped and not stripped.startswith("@"):
            try:
                return cls.parse(every=stripped)
            except InvalidScheduleError:
                raise InvalidScheduleError(
                    text,
                    "it is neither an interval (e.g. '15m', '1h', '30s') nor a cron "
                    "expression (5 fields, e.g. '0 3 * * *')",
                ) from None
        return cls.parse(cron=stripped)

    @property
    def text(self) -> str:
        """The trigger as people write it: the cron expression or ``every 15m``."""
        if self.cron is not None:
            return self.cron
        assert self.interval_seconds is not None
        return f"every {format_interval(self.interval_seconds)}"

    def first_due(self, created: datetime) -> datetime:
        """When a schedule made at ``created`` is first due."""
        created = as_utc(created)
        if self.cron is not None:
            return _cron_next(self.cron, created)
        assert self.interval_seconds is not None
        return created + timedelta(seconds=self.interval_seconds)

    def occurrences(self, start: datetime, now: datetime, limit: int) -> tuple[list[datetime], int]:
        """Occurrences in ``[start, now]``: the last ``limit`` of them and how many there are.

        Work is bounded: skipped cron occurrences are counted up to 10,000, not beyond.
        """
        start, now = as_utc(start), as_utc(now)
        if start > now:
            return [], 0
        if self.interval_seconds is not None:
            step = timedelta(seconds=self.interval_seconds)
            count = math.floor((now - start) / step) + 1
            last = start + (count - 1) * step
            take = min(count, limit)
            return [last - (take - 1 - i) * step for i in range(take)], count
        assert self.cron is not None
        found: list[datetime] = []
        count = 0
        moment = _cron_at_or_before(self.cron, now)
        backwards = _croniter(self.cron, moment)
        while moment >= start and count < limit + _COUNT_SKIPPED_UP_TO:
            if len(found) < limit:
                found.append(moment)
            count += 1
            moment = _utc(backwards.get_prev(datetime))
        found.reverse()
        return found, count

    def next_after(self, moment: datetime) -> datetime:
        """The first occurrence strictly after ``moment``."""
        moment = as_utc(moment)
        if self.cron is not None:
            return _cron_next(self.cron, moment)
        assert self.interval_seconds is not None
        return moment + timedelta(seconds=self.interval_seconds)


@dataclass(frozen=True, slots=True)
class MissedPolicy:
    """What to do with occurrences that passed while no scheduler launched them."""

    kind: str = "skip"
    max_catchup: int = DEFAULT_MAX_CATCHUP

    @classmethod
    def parse(cls, text: str, max_catchup: int | None = None) -> MissedPolicy:
        """``"skip"``, ``"catchup"`` or ``"catchup:N"`` (a cap of N runs).

        Raises:
            InvalidArgumentError: for another word or a cap outside 1..1000.
        """
        kind, _, cap = text.strip().partition(":")
        if kind not in MISSED_POLICIES:
            raise InvalidArgumentError(
                f"missed-run policy {text!r} is not valid: use 'skip' or 'catchup'"
            )
        if cap:
            if max_catchup is not None:
                raise InvalidArgumentError(f"give the catch-up cap once, not in {text!r} too")
            if not cap.isdigit():
                raise InvalidArgumentError(f"catch-up cap in {text!r} is not a whole number")
            max_catchup = int(cap)
        if max_catchup is not None and kind == "skip":
            raise InvalidArgumentError("a catch-up cap only applies to --missed catchup")
        limit = DEFAULT_MAX_CATCHUP if max_catchup is None else max_catchup
        if not 1 <= limit <= _MAX_CATCHUP_LIMIT:
            raise InvalidArgumentError(
                f"catch-up cap {limit} is out of range: use 1 to {_MAX_CATCHUP_LIMIT}"
            )
        return cls(kind, limit)

    @property
    def text(self) -> str:
        """The stored form: ``skip``, ``catchup`` or ``catchup:N``."""
        if self.kind == "catchup" and self.max_catchup != DEFAULT_MAX_CATCHUP:
            return f"catchup:{self.max_catchup}"
        return self.kind


@dataclass(frozen=True, slots=True)
class DuePlan:
    """What a scheduler does with a due schedule: the runs to launch and the next due time."""

    launch: tuple[datetime, ...]
    skipped: int
    next_run_at: datetime


def plan_due(
    trigger: Trigger, policy: MissedPolicy, next_run_at: datetime, now: datetime
) -> DuePlan:
    """The runs due at ``now`` for a schedule next due at ``next_run_at``.

    Args:
        trigger: the schedule's cron expression or interval.
        policy: the missed-run policy.
        next_run_at: when the schedule was next due (its stored value).
        now: the time of this scheduler tick.

    Returns:
        The due times to launch (oldest first; empty when nothing is due), how many
        occurrences were skipped, and the first occurrence after ``now``.
    """
    now = as_utc(now)
    limit = 1 if policy.kind == "skip" else policy.max_catchup
    due, count = trigger.occurrences(next_run_at, now, limit)
    if not due:
        return DuePlan((), 0, as_utc(next_run_at))
    return DuePlan(tuple(due), count - len(due), trigger.next_after(due[-1]))


@dataclass(frozen=True, slots=True)
class Schedule:
    """A pipeline target launched on a trigger, with fixed parameters."""

    name: str
    pipeline: str
    target: str
    trigger: Trigger
    params: dict[str, Any]
    missed: MissedPolicy
    enabled: bool
    next_run_at: datetime
    created_at: datetime
    created_by: str
    last_run_at: datetime | None = None
    last_run_id: str | None = None
    lease_owner: str | None = None
    lease_until: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "name": self.name,
            "pipeline": self.pipeline,
            "target": self.target,
            "cron": self.trigger.cron,
            "interval_seconds": self.trigger.interval_seconds,
            "trigger": self.trigger.text,
            "params": dict(self.params),
            "missed": self.missed.kind,
            "max_catchup": self.missed.max_catchup,
            "enabled": self.enabled,
            "next_run_at": self.next_run_at.isoformat(),
            "last_run_at": _iso(self.last_run_at),
            "last_run_id": self.last_run_id,
            "lease_owner": self.lease_owner,
            "lease_until": _iso(self.lease_until),
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
        }


def format_interval(seconds: float) -> str:
    """``900`` -> ``"15m"``; the largest unit that divides the interval exactly."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _check_interval(every: str | float) -> float:
    try:
        seconds = parse_duration(every)
    except InvalidArgumentError as exc:
        raise InvalidScheduleError(str(every), str(exc)) from None
    assert seconds is not None
    if seconds < _MIN_INTERVAL:
        raise InvalidScheduleError(
            str(every), f"an interval must be at least {_MIN_INTERVAL:g} second"
        )
    return seconds


def _check_cron(expression: str) -> str:
    if not isinstance(expression, str):
        raise InvalidScheduleError(repr(expression), "a cron expression must be a string")
    text = " ".join(expression.split())
    if not text:
        raise InvalidScheduleError(expression, "the cron expression is empty")
    fields = text.split(" ")
    if text.startswith("@"):
        if text.lower() not in _CRON_ALIASES:
            raise InvalidScheduleError(
                expression, f"unknown alias; use one of {', '.join(sorted(_CRON_ALIASES))}"
            )
        return text.lower()
    if len(fields) != 5:
        raise InvalidScheduleError(
            expression,
            f"it has {len(fields)} field(s); a cron expression has 5: "
            "minute hour day-of-month month day-of-week (e.g. '0 3 * * *')",
        )
    try:
        _croniter(text)
    except (ValueError, KeyError) as exc:
        raise InvalidScheduleError(expression, _cron_reason(text, exc)) from None
    return text


def _cron_reason(text: str, exc: Exception) -> str:
    names = ("minute", "hour", "day-of-month", "month", "day-of-week")
    ranges = ("0-59", "0-23", "1-31", "1-12", "0-6")
    for i, (name, allowed) in enumerate(zip(names, ranges, strict=True)):
        probe = ["*"] * 5
        probe[i] = text.split(" ")[i]
        try:
            _croniter(" ".join(probe))
        except (ValueError, KeyError):
            return (
                f"the {name} field {probe[i]!r} is not valid "
                f"(allowed: {allowed}, '*', lists, ranges and steps)"
            )
    return str(exc) or type(exc).__name__


def _croniter(expression: str, start: datetime | None = None) -> Any:
    from croniter import croniter  # type: ignore[import-untyped]  # ships no type hints

    return croniter(expression, start)


def _cron_next(expression: str, moment: datetime) -> datetime:
    return _utc(_croniter(expression, as_utc(moment)).get_next(datetime))


def _cron_at_or_before(expression: str, moment: datetime) -> datetime:
    """The latest occurrence at or before ``moment`` (croniter's get_prev is strict)."""
    previous = _utc(_croniter(expression, moment).get_prev(datetime))
    following = _cron_next(expression, previous)
    return following if following <= moment else previous


def _utc(moment: datetime) -> datetime:
    # croniter marks some results fold=1; drop it so equal instants look equal everywhere.
    return as_utc(moment).replace(fold=0)
