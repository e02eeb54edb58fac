"""Claiming due schedules with a lease in the database, so each due run is launched once.

A scheduler claims a due schedule with one compare-and-set ``UPDATE`` in one transaction:
it moves ``next_run_at`` past the runs it will launch and takes a lease
(``lease_owner``, ``lease_until``), but only if ``next_run_at`` still holds the value it read
and no live lease is held. Two schedulers racing for the same schedule both issue the
update; the database lets exactly one of them change the row (SQLite serialises writers
with ``BEGIN IMMEDIATE``; PostgreSQL re-checks the ``WHERE`` clause against the row the
winner committed), and the loser sees zero rows changed and launches nothing.

The lease is renewed while the claimed runs are launched, so a slow pipeline does not
overlap with the schedule's next run; it is released when they end. A scheduler that dies
holding a lease only blocks that schedule until the lease runs out (60 s); the runs it had
claimed but not launched are lost, never launched twice.

Where the rows live is a ``LeaseBook``: ``SqlLeaseBook`` here, or a server in remote mode,
whose claim route runs the same ``SqlLeaseBook`` for the remote scheduler.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Row, or_, select

from shipyard.domain.ids import as_utc, host_label, new_id
from shipyard.domain.schedules import MissedPolicy, Schedule, Trigger, plan_due
from shipyard.errors import ShipyardError
from shipyard.stores.metadata import SqlMetadataStore
from shipyard.stores.metadata.schema import schedules

__all__ = [
    "DEFAULT_LEASE_SECONDS",
    "Claim",
    "Launch",
    "LeaseBook",
    "OnLaunch",
    "ScheduleLeases",
    "SqlLeaseBook",
    "schedule_from_row",
]

log = logging.getLogger("shipyard.schedules")

DEFAULT_LEASE_SECONDS = 60.0

Launch = Callable[[Schedule, datetime], str]
"""Launches one run of a schedule for one due time and returns the run id."""


@dataclass(frozen=True, slots=True)
class Claim:
    """Due runs of one schedule that this scheduler won the right to launch."""

    schedule: Schedule
    due: tuple[datetime, ...]
    skipped: int
    lease_until: datetime


OnLaunch = Callable[[str, str], None]
"""Told (schedule name, run id) after each launch."""


class LeaseBook(Protocol):
    """Where claims and leases are kept: the database here, or a server (remote mode)."""

    def claim_due(
        self, owner: str, now: datetime, limit: int | None, lease_seconds: float
    ) -> list[Claim]:
        """Claim the schedules due at ``now`` (at most ``limit``) for ``owner``."""

    def renew(self, name: str, owner: str, until: datetime) -> bool:
        """Hold ``owner``'s lease on a schedule until ``until``; False if it is not held."""

    def release(self, name: str, owner: str, last_run_id: str | None) -> bool:
        """Clear ``owner``'s lease, recording the last run launched; False if not held."""


class SqlLeaseBook:
    """Claims and leases in the ``schedules`` table, with compare-and-set updates.

    The server runs this same code for remote schedulers (``/api/v1/schedules/claims``).

    Args:
        metadata: the metadata store.
    """

    def __init__(self, metadata: SqlMetadataStore) -> None:
        self._metadata = metadata

    def claim_due(
        self, owner: str, now: datetime, limit: int | None, lease_seconds: float
    ) -> list[Claim]:
        """Claim the schedules due at ``now`` (at most ``limit``) for ``owner``.

        Each claim is one compare-and-set update in its own transaction; a schedule another
        scheduler claimed first, or holds a live lease on, is left out.
        """
        now = as_utc(now)
        query = (
            select(schedules)
            .where(
                schedules.c.enabled.is_(True),
                schedules.c.next_run_at <= now,
                or_(schedules.c.lease_until.is_(None), schedules.c.lease_until < now),
            )
            .order_by(schedules.c.next_run_at, schedules.c.name)
        )
        with self._metadata.read() as conn:
            rows = conn.execute(query).all()
        claims: list[Claim] = []
        for row in rows:
            if limit is not None and len(claims) >= limit:
                break
            claim = self._claim(row, owner, now, timedelta(seconds=lease_seconds))
            if claim is not None:
                claims.append(claim)
        return claims

    def _claim(self, row: Row[Any], owner: str, now: datetime, lease: timedelta) -> Claim | None:
        schedule = schedule_from_row(row)
        plan = plan_due(schedule.trigger, schedule.missed, schedule.next_run_at, now)
        if not plan.launch:
            return None
        lease_until = now + lease
        with self._metadata.write() as conn:
            result = conn.execute(
                schedules.update()
                .where(
                    schedules.c.name == schedule.name,
                    schedules.c.enabled.is_(True),
                    schedules.c.next_run_at == schedule.next_run_at,
                    or_(schedules.c.lease_until.is_(None), schedules.c.lease_until < now),
                )
                .values(
                    next_run_at=plan.next_run_at,
                    last_run_at=plan.launch[-1],
                    lease_owner=owner,
                    lease_until=lease_until,
                )
            )
            if result.rowcount != 1:
                return None
        if plan.skipped:
            log.warning(
                "schedule %s: %d missed run(s) skipped (missed=%s)",
                schedule.name,
                plan.skipped,
                schedule.missed.text,
            )
        return Claim(schedule, plan.launch, plan.skipped, lease_until)

    def renew(self, name: str, owner: str, until: datetime) -> bool:
        """Hold ``owner``'s lease on a schedule until ``until``; False if it is not held."""
        with self._metadata.write() as conn:
            result = conn.execute(
                schedules.update()
                .where(schedules.c.name == name, schedules.c.lease_owner == owner)
                .values(lease_until=as_utc(until))
            )
        return bool(result.rowcount == 1)

    def release(self, name: str, owner: str, last_run_id: str | None) -> bool:
        """Clear ``owner``'s lease, recording the last run launched; False if not held."""
        values: dict[str, Any] = {"lease_owner": None, "lease_until": None}
        if last_run_id is not None:
            values["last_run_id"] = last_run_id
        with self._metadata.write() as conn:
            result = conn.execute(
                schedules.update()
                .where(schedules.c.name == name, schedules.c.lease_owner == owner)
                .values(**values)
            )
        return bool(result.rowcount == 1)


class ScheduleLeases:
    """Claims due schedules for one scheduler, launches their runs, renews and releases.

    Args:
        book: where claims and leases are kept (``SqlLeaseBook``, or a server's).
        launch: launches one run of a schedule for a due time and returns its run id.
        lease_seconds: how long a claim holds a schedule if it is not renewed.
    """

    def __init__(self, book: LeaseBook, launch: Launch, *, lease_seconds: float) -> None:
        self._book = book
        self._launch = launch
        self._lease = timedelta(seconds=lease_seconds)
        self.owner = f"{_host()}:{os.getpid()}:{new_id()[-8:]}"

    def claim_due(self, now: datetime, limit: int | None = None) -> list[Claim]:
        """Claim the schedules due at ``now`` (at most ``limit``) for this scheduler.

        Each claim is one compare-and-set update in its own transaction; a schedule another
        scheduler claimed first, or holds a live lease on, is left out.
        """
        return self._book.claim_due(self.owner, now, limit, self._lease.total_seconds())

    def run(
        self,
        claim: Claim,
        now: datetime,
        on_launch: Callable[[str, str], None] | None = None,
    ) -> list[str]:
        """Launch a claim's runs while renewing its lease, then release the lease."""
        name = claim.schedule.name
        launched: list[str] = []
        stop = threading.Event()
        keeper = threading.Thread(
            target=self._keep_lease, args=(name, now, stop), name=f"lease-{name}", daemon=True
        )
        keeper.start()
        try:
            for due in claim.due:
                try:
                    run_id = self._launch(claim.schedule, due)
                except Exception:
                    log.exception("schedule %s: the run due at %s failed to launch", name, due)
                    continue
                log.info("schedule %s: launched run %s (due %s)", name, run_id, due.isoformat())
                launched.append(run_id)
                if on_launch is not None:
                    on_launch(name, run_id)
        finally:
            stop.set()
            keeper.join()
            self._release(name, launched[-1] if launched else None)
        return launched

    def _keep_lease(self, name: str, now: datetime, stop: threading.Event) -> None:
        # Renew on the tick's clock (``now`` plus elapsed time) so an injected clock works.
        started = time.monotonic()
        interval = self._lease.total_seconds() / 3
        while not stop.wait(interval):
            until = now + timedelta(seconds=time.monotonic() - started) + self._lease
            try:
                self._book.renew(name, self.owner, until)
            except ShipyardError:
                log.warning("schedule %s: could not renew the lease", name, exc_info=True)

    def _release(self, name: str, last_run_id: str | None) -> None:
        try:
            self._book.release(name, self.owner, last_run_id)
        except ShipyardError:
            log.warning("schedule %s: could not release the lease", name, exc_info=True)


def _host() -> str:
    # Letters, digits and - _ . only: the owner travels to a server in remote mode.
    return host_label(socket.gethostname(), 64)


def _trigger(row: Any) -> Trigger:
    return Trigger(cron=row.cron, interval_seconds=row.interval_seconds)


def schedule_from_row(row: Row[Any]) -> Schedule:
    """A schedule record from its row in the ``schedules`` table."""
    return Schedule(
        name=row.name,
        pipeline=row.pipeline,
        target=row.target,
        trigger=_trigger(row),
        params=json.loads(row.params),
        missed=MissedPolicy.parse(row.missed),
        enabled=bool(row.enabled),
        next_run_at=row.next_run_at,
        created_at=row.created_at,
        created_by=row.created_by,
        last_run_at=row.last_run_at,
        last_run_id=row.last_run_id,
        lease_owner=row.lease_owner,
        lease_until=row.lease_until,
    )
