"""Schedule definitions: checked once (``ScheduleDefinition.parse``), kept in a ``ScheduleBook``.

``SqlScheduleBook`` keeps them in the metadata store, every change audited; a local project
uses it directly and a server uses it behind its routes. A remote client keeps its schedules
through a server instead (``shipyard.client.schedules.RemoteScheduleBook``).
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import select

from shipyard.domain.ids import as_utc, utcnow
from shipyard.domain.references import validate_name
from shipyard.domain.schedules import MissedPolicy, Schedule, Trigger
from shipyard.errors import (
    AlreadyExistsError,
    InvalidArgumentError,
    InvalidScheduleError,
    ScheduleNotFoundError,
)
from shipyard.services.audit import AuditService
from shipyard.services.schedule_leases import schedule_from_row
from shipyard.stores.metadata import SqlMetadataStore
from shipyard.stores.metadata.schema import schedules

__all__ = [
    "MAX_PARAMS_BYTES",
    "MAX_TARGET_LENGTH",
    "ScheduleBook",
    "ScheduleChange",
    "ScheduleDefinition",
    "SqlScheduleBook",
]

MAX_TARGET_LENGTH = 1024  # the ``schedules.target`` column
MAX_PARAMS_BYTES = 64 * 1024  # parameters as JSON: a schedule's, not a data set


@dataclass(frozen=True, slots=True)
class ScheduleDefinition:
    """A schedule as it is stored: every field checked, the target only as text.

    ``parse`` is the one check of a definition: the local service runs it, and so does the
    server on what a remote client sends (after the client loaded the target).
    """

    name: str
    pipeline: str
    target: str
    trigger: Trigger
    params: dict[str, Any]
    missed: MissedPolicy
    enabled: bool = True

    @classmethod
    def parse(
        cls,
        name: str,
        pipeline: str,
        target: str,
        *,
        cron: str | None = None,
        every: str | float | None = None,
        params: Mapping[str, Any] | None = None,
        missed: str = "skip",
        max_catchup: int | None = None,
        enabled: bool = True,
    ) -> ScheduleDefinition:
        """A checked definition.

        Raises:
            InvalidScheduleError: for a bad cron expression or interval, or both or neither.
            InvalidArgumentError: for a bad name, target, policy or parameters.
        """
        validate_name(name, what="schedule name")
        validate_name(pipeline, what="pipeline name")
        _encode_params(params)
        return cls(
            name,
            pipeline,
            _check_target(target),
            _trigger(cron, every),
            dict(params or {}),
            MissedPolicy.parse(missed, max_catchup),
            bool(enabled),
        )


@dataclass(frozen=True, slots=True)
class ScheduleChange:
    """What an update changes; None leaves a field as it is."""

    pipeline: str | None = None
    target: str | None = None
    trigger: Trigger | None = None
    params: dict[str, Any] | None = None
    missed: MissedPolicy | None = None
    enabled: bool | None = None

    @classmethod
    def parse(
        cls,
        *,
        pipeline: str | None = None,
        target: str | None = None,
        cron: str | None = None,
        every: str | float | None = None,
        params: Mapping[str, Any] | None = None,
        missed: str | None = None,
        max_catchup: int | None = None,
        enabled: bool | None = None,
    ) -> ScheduleChange:
        """A checked change (a new target comes with its pipeline's name).

        Raises:
            InvalidScheduleError: for a bad cron expression or interval, or both.
            InvalidArgumentError: for a bad target, pipeline name, policy or parameters.
        """
        if (pipeline is None) != (target is None):
            raise InvalidArgumentError("a new target comes with the name of its pipeline")
        if pipeline is not None:
            validate_name(pipeline, what="pipeline name")
        if params is not None:
            _encode_params(params)
        return cls(
            pipeline,
            None if target is None else _check_target(target),
            None if cron is None and every is None else _trigger(cron, every),
            None if params is None else dict(params),
            None
            if missed is None and max_catchup is None
            else MissedPolicy.parse(missed or "catchup", max_catchup),
            enabled,
        )


class ScheduleBook(Protocol):
    """Where schedule definitions are kept: the metadata store, or a server."""

    def create(self, definition: ScheduleDefinition, now: datetime | None) -> Schedule:
        """Store a new schedule, first due after ``now`` (default: now)."""

    def change(self, name: str, change: ScheduleChange, now: datetime | None) -> Schedule:
        """Apply a change to a schedule."""

    def delete(self, name: str) -> Schedule:
        """Delete a schedule; what was removed."""

    def get(self, name: str) -> Schedule:
        """One schedule by name."""

    def list(self) -> builtins.list[Schedule]:
        """Every schedule, by name."""


class SqlScheduleBook:
    """Schedule definitions in the metadata store; every change audited as ``user``.

    Args:
        metadata: the metadata store.
        audit: where changes are recorded.
        user: who changes are recorded as.
    """

    def __init__(self, metadata: SqlMetadataStore, audit: AuditService, *, user: str) -> None:
        self._metadata = metadata
        self._audit = audit
        self._user = user

    def create(self, definition: ScheduleDefinition, now: datetime | None) -> Schedule:
        """Store a new schedule due after ``now``; AlreadyExistsError if the name is taken."""
        name = definition.name
        moment = as_utc(now or utcnow())
        row = {
            "name": name,
            "pipeline": definition.pipeline,
            "target": definition.target,
            "cron": definition.trigger.cron,
            "interval_seconds": definition.trigger.interval_seconds,
            "params": _encode_params(definition.params),
            "missed": definition.missed.text,
            "enabled": definition.enabled,
            "next_run_at": definition.trigger.first_due(moment),
            "created_at": moment,
            "created_by": self._user,
        }
        with self._metadata.write() as conn:
            self._metadata.lock(conn, f"schedule:{name}")
            if conn.execute(select(schedules.c.name).where(schedules.c.name == name)).first():
                raise AlreadyExistsError(
                    f"schedule {name!r} exists already: pick another name, or change it with "
                    "`shipyard schedules update` (or remove it first)"
                )
            conn.execute(schedules.insert().values(**row))
            self._audit.record(
                conn,
                actor=self._user,
                action="schedule.create",
                entity_kind="schedule",
                entity_id=name,
                after=_audit_view(row),
            )
        return self.get(name)

    def change(self, name: str, change: ScheduleChange, now: datetime | None) -> Schedule:
        """Apply a change (a new trigger, or enabling, makes it next due after ``now``)."""
        moment = as_utc(now or utcnow())
        with self._metadata.write() as conn:
            self._metadata.lock(conn, f"schedule:{name}")
            row = conn.execute(select(schedules).where(schedules.c.name == name)).first()
            if row is None:
                raise ScheduleNotFoundError(name)
            changes: dict[str, Any] = {}
            if change.target is not None:
                changes |= {"target": change.target, "pipeline": change.pipeline}
            trigger = change.trigger
            if trigger is not None:
                changes |= {"cron": trigger.cron, "interval_seconds": trigger.interval_seconds}
            if change.missed is not None:
                changes["missed"] = change.missed.text
            if change.params is not None:
                changes["params"] = _encode_params(change.params)
            if change.enabled is not None:
                changes["enabled"] = change.enabled
            if trigger is not None or (change.enabled and not row.enabled):
                changes["next_run_at"] = (trigger or schedule_from_row(row).trigger).first_due(
                    moment
                )
            if changes:
                conn.execute(schedules.update().where(schedules.c.name == name).values(**changes))
                self._audit.record(
                    conn,
                    actor=self._user,
                    action="schedule.update",
                    entity_kind="schedule",
                    entity_id=name,
                    before=_audit_view(row._asdict()),
                    after=_audit_view(row._asdict() | changes),
                )
        return self.get(name)

    def delete(self, name: str) -> Schedule:
        """Delete a schedule (runs it launched stay); what was removed, or ScheduleNotFoundError."""
        with self._metadata.write() as conn:
            self._metadata.lock(conn, f"schedule:{name}")
            row = conn.execute(select(schedules).where(schedules.c.name == name)).first()
            if row is None:
                raise ScheduleNotFoundError(name)
            conn.execute(schedules.delete().where(schedules.c.name == name))
            self._audit.record(
                conn,
                actor=self._user,
                action="schedule.delete",
                entity_kind="schedule",
                entity_id=name,
                before=_audit_view(row._asdict()),
            )
        return schedule_from_row(row)

    def get(self, name: str) -> Schedule:
        """One schedule by name (ScheduleNotFoundError if there is none)."""
        with self._metadata.read() as conn:
            row = conn.execute(select(schedules).where(schedules.c.name == name)).first()
        if row is None:
            raise ScheduleNotFoundError(name)
        return schedule_from_row(row)

    def list(self) -> builtins.list[Schedule]:
        """Every schedule, by name."""
        with self._metadata.read() as conn:
            rows = conn.execute(select(schedules).order_by(schedules.c.name)).all()
        return [schedule_from_row(r) for r in rows]


def _encode_params(params: Mapping[str, Any] | None) -> str:
    if params is not None and not isinstance(params, Mapping):
        raise InvalidArgumentError("schedule parameters must be a mapping of names to values")
    params = dict(params or {})
    for key in params:
        if not isinstance(key, str) or not key.isidentifier():
            raise InvalidArgumentError(f"parameter name {key!r} is not a Python identifier")
    try:
        encoded = json.dumps(params, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidArgumentError(
            f"schedule parameters must be plain JSON values (numbers, strings, lists): {exc}"
        ) from None
    if len(encoded.encode()) > MAX_PARAMS_BYTES:
        raise InvalidArgumentError(
            f"schedule parameters take more than {MAX_PARAMS_BYTES} bytes as JSON: pass a "
            "dataset reference or a file name instead of the data"
        )
    return encoded


def _trigger(cron: str | None, every: str | float | None) -> Trigger:
    """A parsed trigger that has an occurrence (``0 0 31 2 *`` has none: no 31 February)."""
    trigger = Trigger.parse(cron, every)
    try:
        trigger.first_due(utcnow())
    except (ValueError, OverflowError) as exc:
        raise InvalidScheduleError(
            trigger.text, f"it has no next occurrence ({type(exc).__name__}: {exc})"
        ) from None
    return trigger


def _check_target(target: object) -> str:
    """A target as stored: text of 1 to 1024 characters without NUL or line breaks."""
    if not isinstance(target, str) or not target.strip():
        raise InvalidArgumentError(
            "a schedule target is 'path/file.py:pipeline' or 'module:pipeline'"
        )
    if len(target) > MAX_TARGET_LENGTH or any(c in target for c in "\x00\r\n"):
        raise InvalidArgumentError(
            f"schedule target {target[:80]!r}: at most {MAX_TARGET_LENGTH} characters, "
            "without NUL or line breaks"
        )
    return target


def _audit_view(row: Mapping[str, Any]) -> dict[str, Any]:
    keys = ("pipeline", "target", "cron", "interval_seconds", "params", "missed", "enabled")
    return {k: row[k] for k in keys if k in row}
