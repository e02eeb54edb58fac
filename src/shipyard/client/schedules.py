"""Schedules over HTTP: definitions kept on the server, the scheduler running here.

``RemoteScheduleService`` is the local ``ScheduleService`` with its two books on a server:
the definitions (``/schedules``) and the claims and leases (``/schedules/claims``,
``/schedules/{name}/lease``, ``/schedules/{name}/release``). So a target is loaded and its
parameters checked here, as locally, and the server only stores the checked definition (it
checks every field again, and never loads a target). Due runs are claimed on the server with
the same compare-and-set as locally, so any number of schedulers, local or remote, launch
each due run once; the runs are launched here through the remote pipeline service, so their
records land on the server.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from shipyard.client.http import ApiClient
from shipyard.domain.schedules import MissedPolicy, Schedule, Trigger
from shipyard.errors import NotFoundError, ScheduleNotFoundError
from shipyard.services.schedule_leases import DEFAULT_LEASE_SECONDS, Claim, Launch
from shipyard.services.schedules import (
    PipelineRunner,
    ScheduleChange,
    ScheduleDefinition,
    ScheduleService,
)
from shipyard.settings import Settings

__all__ = ["RemoteLeaseBook", "RemoteScheduleBook", "RemoteScheduleService"]


class RemoteScheduleBook:
    """A ``ScheduleBook`` on a server: definitions stored as the token's user.

    Args:
        client: the connection to the server.
    """

    def __init__(self, client: ApiClient) -> None:
        self._client = client

    def create(self, definition: ScheduleDefinition, now: datetime | None) -> Schedule:
        """Store a new schedule on the server, first due after ``now`` (default: now).

        Raises:
            AlreadyExistsError: if a schedule has this name.
        """
        body = {
            "name": definition.name,
            "pipeline": definition.pipeline,
            "target": definition.target,
            "cron": definition.trigger.cron,
            "every": definition.trigger.interval_seconds,
            "params": definition.params,
            "missed": definition.missed.text,
            "enabled": definition.enabled,
            "now": _iso(now),
        }
        return schedule_from_dict(self._client.call("POST", "/schedules", body=body))

    def change(self, name: str, change: ScheduleChange, now: datetime | None) -> Schedule:
        """Apply a change on the server.

        Raises:
            ScheduleNotFoundError: if no schedule has this name.
        """
        body: dict[str, Any] = {
            "pipeline": change.pipeline,
            "target": change.target,
            "params": change.params,
            "missed": None if change.missed is None else change.missed.text,
            "enabled": change.enabled,
            "now": _iso(now),
        }
        if change.trigger is not None:
            body |= {"cron": change.trigger.cron, "every": change.trigger.interval_seconds}
        body = {k: v for k, v in body.items() if v is not None}
        return self._one("PATCH", name, body)

    def delete(self, name: str) -> Schedule:
        """Delete a schedule on the server; what was removed.

        Raises:
            ScheduleNotFoundError: if no schedule has this name.
        """
        return self._one("DELETE", name)

    def get(self, name: str) -> Schedule:
        """One schedule by name.

        Raises:
            ScheduleNotFoundError: if no schedule has this name.
        """
        return self._one("GET", name)

    def list(self) -> builtins.list[Schedule]:
        """Every schedule, by name."""
        return [schedule_from_dict(s) for s in self._client.call("GET", "/schedules")]

    def _one(self, method: str, name: str, body: Any = None) -> Schedule:
        # A 404 here is the schedule's (sync tells "missing" from other errors by type).
        try:
            return schedule_from_dict(self._client.call(method, _path(name), body=body))
        except NotFoundError:
            raise ScheduleNotFoundError(name) from None


class RemoteLeaseBook:
    """A ``LeaseBook`` on a server: claims are its compare-and-set, leases its rows.

    The server records a lease under ``USER:OWNER`` (the token's user first), so one user's
    scheduler cannot renew or release another's lease.

    Args:
        client: the connection to the server.
    """

    def __init__(self, client: ApiClient) -> None:
        self._client = client

    def claim_due(
        self, owner: str, now: datetime, limit: int | None, lease_seconds: float
    ) -> builtins.list[Claim]:
        """Claim the schedules due at ``now`` for ``owner`` (on the server, atomically)."""
        body = {"owner": owner, "now": _iso(now), "limit": limit, "lease_seconds": lease_seconds}
        found = self._client.call("POST", "/schedules/claims", body=body)
        return [
            Claim(
                schedule_from_dict(c["schedule"]),
                tuple(datetime.fromisoformat(d) for d in c["due"]),
                int(c["skipped"]),
                datetime.fromisoformat(c["lease_until"]),
            )
            for c in found
        ]

    def renew(self, name: str, owner: str, until: datetime) -> bool:
        """Hold ``owner``'s lease until ``until``; False if it is not held."""
        body = {"owner": owner, "until": until.isoformat()}
        return bool(self._client.call("POST", _path(name, "/lease"), body=body)["held"])

    def release(self, name: str, owner: str, last_run_id: str | None) -> bool:
        """Clear ``owner``'s lease, recording the last run launched; False if not held."""
        body = {"owner": owner, "run_id": last_run_id}
        return bool(self._client.call("POST", _path(name, "/release"), body=body)["held"])


class RemoteScheduleService(ScheduleService):
    """The schedule service of a remote project (see ``ScheduleService``).

    Args:
        client: the connection to the server.
        pipelines: launches scheduled runs (the remote pipeline service).
        settings: the local settings: shipyard.toml's ``[schedules]`` and the folder
            relative targets are found from; default: those of the working directory.
        launch: launches one run of a schedule for a due time and returns its run id
            (tests inject one; by default runs go through ``pipelines``).
        lease_seconds: how long a claim holds a schedule if it is not renewed.
    """

    def __init__(
        self,
        client: ApiClient,
        pipelines: PipelineRunner,
        settings: Settings | None = None,
        *,
        launch: Launch | None = None,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
    ) -> None:
        # Not ScheduleService.__init__: there is no store here, only the server's books.
        settings = settings if settings is not None else Settings.load()
        root: Path | None = settings.root
        self._setup(
            RemoteScheduleBook(client),
            RemoteLeaseBook(client),
            pipelines=pipelines,
            launch=launch,
            load=None,
            declared={name: _table(text) for name, text in settings.schedules},
            root=root,
            lease_seconds=lease_seconds,
        )


def schedule_from_dict(data: Mapping[str, Any]) -> Schedule:
    """A schedule from its JSON form (``Schedule.to_dict``)."""
    return Schedule(
        name=data["name"],
        pipeline=data["pipeline"],
        target=data["target"],
        trigger=Trigger(cron=data["cron"], interval_seconds=data["interval_seconds"]),
        params=dict(data["params"]),
        missed=MissedPolicy(data["missed"], int(data["max_catchup"])),
        enabled=bool(data["enabled"]),
        next_run_at=datetime.fromisoformat(data["next_run_at"]),
        created_at=datetime.fromisoformat(data["created_at"]),
        created_by=data["created_by"],
        last_run_at=_moment(data["last_run_at"]),
        last_run_id=data["last_run_id"],
        lease_owner=data["lease_owner"],
        lease_until=_moment(data["lease_until"]),
    )


def _table(text: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(text)
    return found


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _moment(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _path(name: str, tail: str = "") -> str:
    # Quoted: a name with a "/" or ".." must not reach another route.
    return f"/schedules/{quote(name, safe='')}{tail}"
