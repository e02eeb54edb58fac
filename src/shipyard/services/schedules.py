"""Schedules: add, change, list and sync them, and run the scheduler over them.

``ScheduleService`` checks what it is given where it runs (it loads the pipeline target to
check it and its parameters), then keeps the checked definition in a ``ScheduleBook``:
``SqlScheduleBook`` (the metadata store, audited) in a local project, or a server in remote
mode, whose routes check the definition again with the same ``ScheduleDefinition.parse``
and store it with ``SqlScheduleBook``; the server never loads a target.

Claiming due schedules so that each due run is launched exactly once, however many
schedulers run, is the job of :mod:`shipyard.services.schedule_leases`.
"""

from __future__ import annotations

import builtins
import logging
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, Protocol

from shipyard.domain.ids import as_utc, utcnow
from shipyard.domain.references import validate_name
from shipyard.domain.schedules import MissedPolicy, Schedule, Trigger
from shipyard.errors import (
    InvalidArgumentError,
    PermissionDeniedError,
    PipelineFailedError,
    ScheduleNotFoundError,
    SettingsError,
    ShipyardError,
)
from shipyard.services.audit import AuditService
from shipyard.services.schedule_book import (
    MAX_PARAMS_BYTES,
    MAX_TARGET_LENGTH,
    ScheduleBook,
    ScheduleChange,
    ScheduleDefinition,
    SqlScheduleBook,
)
from shipyard.services.schedule_leases import (
    DEFAULT_LEASE_SECONDS,
    Claim,
    Launch,
    LeaseBook,
    OnLaunch,
    ScheduleLeases,
    SqlLeaseBook,
)
from shipyard.stores.metadata import SqlMetadataStore

__all__ = [
    "DECLARED_KEYS",
    "MAX_PARAMS_BYTES",
    "MAX_TARGET_LENGTH",
    "Claim",
    "Launch",
    "PipelineDefinition",
    "PipelineRunner",
    "ScheduleBook",
    "ScheduleChange",
    "ScheduleDefinition",
    "ScheduleService",
    "SqlScheduleBook",
    "SyncResult",
]

log = logging.getLogger("shipyard.schedules")

# Keys a [schedules.NAME] table in shipyard.toml may hold.
DECLARED_KEYS = frozenset({"target", "cron", "every", "params", "missed", "max_catchup", "enabled"})


class PipelineDefinition(Protocol):
    """What the scheduler needs from a loaded ``@sy.pipeline``: its name and schedule."""

    @property
    def name(self) -> str:
        """The pipeline's name."""

    @property
    def schedule(self) -> str | None:
        """The ``schedule=`` of the decorator: a cron expression or an interval, or None."""

    def validate(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Parameters checked against the pipeline's signature and converted."""


class PipelineRunner(Protocol):
    """The part of the pipeline service the scheduler launches runs through."""

    def run(self, target: str, params: dict[str, Any], /, *, schedule: str | None = None) -> Any:
        """Run the pipeline at ``target``; returns its run record (with an ``id``)."""


@dataclass(frozen=True, slots=True)
class SyncResult:
    """What registering a declared schedule did: ``created``, ``updated`` or ``unchanged``."""

    schedule: Schedule
    action: Literal["created", "updated", "unchanged"]

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {"action": self.action, "schedule": self.schedule.to_dict()}


class ScheduleService:
    """Adds, changes and lists schedules; ticks them; runs the scheduler loop.

    Args:
        metadata: the metadata store.
        audit: where schedule changes are recorded.
        user: who changes are recorded as.
        pipelines: launches runs (``Shipyard.pipelines``); ignored when ``launch`` is given.
        launch: launches one run of a schedule for a due time and returns its run id
            (tests inject one; by default runs go through ``pipelines``).
        load: loads the pipeline at a target (by default
            ``shipyard.services.pipeline_targets.load_pipeline``).
        declared: the ``[schedules.NAME]`` tables of shipyard.toml.
        root: the project folder; relative file targets are found from it.
        lease_seconds: how long a claim holds a schedule before another scheduler may
            take it, if not renewed.
    """

    def __init__(
        self,
        metadata: SqlMetadataStore,
        audit: AuditService,
        *,
        user: str,
        pipelines: PipelineRunner | None = None,
        launch: Launch | None = None,
        load: Callable[[str], PipelineDefinition] | None = None,
        declared: Mapping[str, Mapping[str, Any]] | None = None,
        root: Path | None = None,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
    ) -> None:
        self._setup(
            SqlScheduleBook(metadata, audit, user=user),
            SqlLeaseBook(metadata),
            pipelines=pipelines,
            launch=launch,
            load=load,
            declared=declared,
            root=root,
            lease_seconds=lease_seconds,
        )

    def _setup(
        self,
        book: ScheduleBook,
        leases: LeaseBook,
        *,
        pipelines: PipelineRunner | None,
        launch: Launch | None,
        load: Callable[[str], PipelineDefinition] | None,
        declared: Mapping[str, Mapping[str, Any]] | None,
        root: Path | None,
        lease_seconds: float,
    ) -> None:
        # Shared with the remote service, which keeps its books on a server.
        self._book = book
        self._root = root
        self._pipelines = pipelines
        self._launch = launch or self._launch_pipeline
        self._loader = load or _load_pipeline
        self._declared = dict(declared or {})
        self._leases = ScheduleLeases(leases, self._launch, lease_seconds=lease_seconds)
        self.owner = self._leases.owner

    # -- records ------------------------------------------------------------------------

    def add(
        self,
        name: str,
        target: str,
        *,
        cron: str | None = None,
        every: str | float | None = None,
        params: Mapping[str, Any] | None = None,
        missed: str = "skip",
        max_catchup: int | None = None,
        enabled: bool = True,
        now: datetime | None = None,
    ) -> Schedule:
        """Schedule the pipeline at ``target``.

        Args:
            name: the schedule's name (letters, digits, ``-``, ``_``, ``.``).
            target: ``path/file.py:attr`` or ``package.module:attr`` naming a pipeline.
            cron: a five-field cron expression in UTC (or ``@daily`` …); or
            every: an interval (``"15m"``, ``"1h"``, seconds).
            params: the pipeline parameters each run gets.
            missed: ``"skip"`` or ``"catchup"`` (``"catchup:N"`` caps it at N runs).
            max_catchup: the catch-up cap (default 10).
            enabled: whether the scheduler launches it.
            now: the creation time (default: now); the first run is due after it.

        Raises:
            InvalidScheduleError: for a bad cron expression or interval, or both or neither.
            InvalidArgumentError: for a bad name, policy or parameters.
            PipelineNotFoundError: if the target names no pipeline.
            AlreadyExistsError: if a schedule has this name.
        """
        validate_name(name, what="schedule name")
        trigger = Trigger.parse(cron, every)
        policy = MissedPolicy.parse(missed, max_catchup)
        pipeline = self._load(target)
        definition = ScheduleDefinition.parse(
            name,
            pipeline.name,
            target,
            cron=trigger.cron,
            every=trigger.interval_seconds,
            params=_checked(pipeline, params or {}),
            missed=policy.text,
            enabled=enabled,
        )
        return self._book.create(definition, now)

    def update(
        self,
        name: str,
        *,
        target: str | None = None,
        cron: str | None = None,
        every: str | float | None = None,
        params: Mapping[str, Any] | None = None,
        missed: str | None = None,
        max_catchup: int | None = None,
        enabled: bool | None = None,
        now: datetime | None = None,
    ) -> Schedule:
        """Change a schedule; what is not given stays as it was.

        A new trigger, or enabling a disabled schedule, makes it next due at the first
        occurrence after ``now`` (no catch-up for the time it was off).

        Raises:
            ScheduleNotFoundError: if no schedule has this name.
            PipelineNotFoundError: if a new target names no pipeline.
            InvalidScheduleError: for a bad cron expression or interval, or both.
            InvalidArgumentError: for a bad policy or parameters.
        """
        ScheduleChange.parse(cron=cron, every=every, missed=missed, max_catchup=max_catchup)
        current = self.get(name)
        pipeline: str | None = None
        checked: dict[str, Any] | None = None
        if target is not None or params is not None:
            loaded = self._load(target or current.target)
            checked = _checked(loaded, current.params if params is None else params)
            pipeline = loaded.name if target is not None else None
        change = ScheduleChange.parse(
            pipeline=pipeline,
            target=target,
            cron=cron,
            every=every,
            params=checked,
            missed=missed,
            max_catchup=max_catchup,
            enabled=enabled,
        )
        return self._book.change(name, change, now)

    def remove(self, name: str) -> Schedule:
        """Delete a schedule; runs it launched stay. Returns what was removed.

        Raises:
            ScheduleNotFoundError: if no schedule has this name.
        """
        return self._book.delete(name)

    def get(self, name: str) -> Schedule:
        """One schedule by name.

        Raises:
            ScheduleNotFoundError: if no schedule has this name.
        """
        return self._book.get(name)

    def list(self) -> builtins.list[Schedule]:
        """Every schedule, by name."""
        return self._book.list()

    # -- declared schedules -------------------------------------------------------------

    def sync(
        self, target: str | None = None, *, now: datetime | None = None
    ) -> builtins.list[SyncResult]:
        """Register declared schedules: a pipeline's ``schedule=``, or shipyard.toml's.

        With a target, the ``@sy.pipeline(schedule=...)`` found there is registered as a
        schedule named after the pipeline (missed runs skipped, no parameters). Without one,
        every ``[schedules.NAME]`` table of shipyard.toml is registered. An existing schedule
        of that name is brought in line (a changed trigger is next due after ``now``);
        schedules declared nowhere are left alone.

        Raises:
            PipelineNotFoundError: if the target names no pipeline.
            InvalidArgumentError: if the pipeline declares no schedule.
            InvalidScheduleError: if the declared schedule is malformed.
            SettingsError: if a [schedules.NAME] table is malformed.
        """
        if target is None:
            return [
                self._sync_one(name, spec, now) for name, spec in sorted(self._declared.items())
            ]
        pipeline = self._load(target)
        if not pipeline.schedule:
            raise InvalidArgumentError(
                f"pipeline {pipeline.name!r} at {target!r} declares no schedule: add "
                "schedule='0 3 * * *' (or '1h') to @sy.pipeline(...), or use "
                "`shipyard schedules add`"
            )
        trigger = Trigger.from_text(pipeline.schedule)
        spec = {"target": target, "cron": trigger.cron, "every": trigger.interval_seconds}
        return [self._sync_one(pipeline.name, spec, now, keep_options=True)]

    def _sync_one(
        self,
        name: str,
        spec: Mapping[str, Any],
        now: datetime | None,
        *,
        keep_options: bool = False,
    ) -> SyncResult:
        where = f"schedules.{name}"
        unknown = set(spec) - DECLARED_KEYS
        if unknown or not isinstance(spec.get("target"), str):
            raise SettingsError(
                where,
                f"unknown key(s) {sorted(unknown)}; allowed: {sorted(DECLARED_KEYS)}"
                if unknown
                else "needs target = 'path/file.py:pipeline'",
            )
        trigger = Trigger.parse(spec.get("cron"), spec.get("every"))
        params = spec.get("params", {})
        if not isinstance(params, Mapping):
            raise SettingsError(where, "params must be a table of parameter values")
        try:
            existing = self.get(name)
        except ScheduleNotFoundError:
            schedule = self.add(
                name,
                spec["target"],
                cron=trigger.cron,
                every=trigger.interval_seconds,
                params=params,
                missed=str(spec.get("missed", "skip")),
                max_catchup=spec.get("max_catchup"),
                enabled=bool(spec.get("enabled", True)),
                now=now,
            )
            return SyncResult(schedule, "created")
        changes: dict[str, Any] = {}
        if existing.target != spec["target"]:
            changes["target"] = spec["target"]
        if existing.trigger != trigger:
            changes |= {"cron": trigger.cron, "every": trigger.interval_seconds}
        if not keep_options:
            policy = MissedPolicy.parse(str(spec.get("missed", "skip")), spec.get("max_catchup"))
            if existing.missed != policy:
                changes["missed"] = policy.text
            if existing.params != dict(params):
                changes["params"] = params
            if existing.enabled != bool(spec.get("enabled", True)):
                changes["enabled"] = bool(spec.get("enabled", True))
        if not changes:
            return SyncResult(existing, "unchanged")
        return SyncResult(self.update(name, now=now, **changes), "updated")

    # -- the scheduler ------------------------------------------------------------------

    def tick(
        self,
        now: datetime | None = None,
        *,
        on_launch: OnLaunch | None = None,
    ) -> builtins.list[str]:
        """Launch every run due at ``now`` that no other scheduler has claimed.

        Runs are launched one after the other in this thread (each to its end when the
        pipeline runs in-process). A launch that fails is logged and does not stop the
        others.

        Args:
            now: the time of this tick (default: now).
            on_launch: called with (schedule name, run id) after each launch.

        Returns:
            The ids of the runs this call launched.
        """
        moment = as_utc(now or utcnow())
        launched: builtins.list[str] = []
        # One claim at a time: a schedule is held only while its own runs go on, and other
        # schedulers ticking at once share the due schedules between them.
        while claims := self.claim_due(moment, limit=1):
            launched += self._leases.run(claims[0], moment, on_launch)
        return launched

    def claim_due(self, now: datetime, limit: int | None = None) -> builtins.list[Claim]:
        """Claim the schedules due at ``now`` (at most ``limit``) for this scheduler.

        Each claim is one compare-and-set update in its own transaction; a schedule another
        scheduler claimed first, or holds a live lease on, is left out.
        """
        return self._leases.claim_due(now, limit)

    def serve(
        self,
        stop: threading.Event | None = None,
        tick_seconds: float = 10.0,
        *,
        once: bool = False,
        max_parallel: int = 4,
        on_launch: OnLaunch | None = None,
    ) -> builtins.list[str]:
        """Run the scheduler: register shipyard.toml's schedules, then tick until stopped.

        Args:
            stop: set it to stop; runs already launched are waited for.
            tick_seconds: seconds between ticks.
            once: tick once, launch what is due, wait for it and return.
            max_parallel: schedules whose runs go on at the same time.
            on_launch: called with (schedule name, run id) after each launch.

        Returns:
            The ids of the runs launched.
        """
        if tick_seconds <= 0 or max_parallel < 1:
            raise InvalidArgumentError("tick_seconds must be > 0 and max_parallel >= 1")
        self.sync()
        if once:
            return self.tick(on_launch=on_launch)
        stop = stop or threading.Event()
        launched: builtins.list[str] = []
        lock = threading.Lock()

        def run(claim: Claim, now: datetime) -> None:
            ids = self._leases.run(claim, now, on_launch)
            with lock:
                launched.extend(ids)

        busy: set[Future[None]] = set()
        with ThreadPoolExecutor(max_parallel, thread_name_prefix="shipyard-schedule") as pool:
            while True:
                busy = {f for f in busy if not f.done()}
                now = utcnow()
                try:
                    claims = self.claim_due(now, limit=max_parallel - len(busy))
                except PermissionDeniedError:
                    raise  # a token without the editor role: trying again will not help
                except ShipyardError:
                    log.exception("scheduler tick failed; trying again in %gs", tick_seconds)
                    claims = []
                busy |= {pool.submit(run, claim, now) for claim in claims}
                if stop.wait(tick_seconds):
                    break
        return launched

    def _load(self, target: str) -> PipelineDefinition:
        return self._loader(self._where(target))

    def _where(self, target: str) -> str:
        from shipyard.services.pipeline_targets import resolve_target

        return target if self._root is None else resolve_target(target, self._root)

    def _launch_pipeline(self, schedule: Schedule, due: datetime) -> str:
        if self._pipelines is None:
            raise InvalidArgumentError("no pipeline service to launch scheduled runs with")
        try:
            run = self._pipelines.run(
                self._where(schedule.target), dict(schedule.params), schedule=schedule.name
            )
        except PipelineFailedError as exc:
            return exc.run_id  # the run happened and failed; its record says why
        return str(run.id)


def _load_pipeline(target: str) -> PipelineDefinition:
    # Imported when first needed: it brings the pipeline machinery (cloudpickle, executors).
    from shipyard.services.pipeline_targets import load_pipeline

    return load_pipeline(target)


def _checked(pipeline: PipelineDefinition, params: Mapping[str, Any]) -> dict[str, Any]:
    """The given parameters, checked and converted by the pipeline (defaults left out)."""
    values = pipeline.validate(params)
    return {key: values[key] for key in params}
