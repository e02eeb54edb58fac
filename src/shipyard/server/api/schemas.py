"""Request bodies: pydantic at the edge, strict about names, sizes and types."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import Path
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from shipyard.domain.checks import parse_duration
from shipyard.domain.pipelines import TASK_STATES
from shipyard.domain.references import MAX_NAME_LENGTH, Reference
from shipyard.errors import ShipyardError
from shipyard.services.runs import MAX_KEY, MAX_PARAM

__all__ = [
    "MAX_INT32",
    "NAME_PATTERN",
    "TASK_KEY_PATTERN",
    "AliasBody",
    "ArtifactsBody",
    "DatasetVersionBody",
    "DecisionBody",
    "DeploymentBody",
    "DeploymentCountsBody",
    "EndRunBody",
    "FeedbackBody",
    "InputBody",
    "LabelBody",
    "LogBatchBody",
    "MetricBody",
    "MissingBody",
    "ModelChangeBody",
    "ModelVersionBody",
    "MonitorRunBody",
    "NamePath",
    "PipelineEndBody",
    "PipelineRecordsBody",
    "PipelineRunBody",
    "PromotionBody",
    "RolesBody",
    "RunCreateBody",
    "RunIdPath",
    "ScheduleBody",
    "ScheduleChangeBody",
    "ScheduleClaimBody",
    "ScheduleLeaseBody",
    "ScheduleReleaseBody",
    "TaskRowBody",
    "TokenBody",
    "UserBody",
    "VersionPath",
]

NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$"
Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN, max_length=MAX_NAME_LENGTH)]
Key = Annotated[str, StringConstraints(min_length=1, max_length=MAX_KEY, pattern=r"^[^\x00]+$")]
Text = Annotated[str, StringConstraints(max_length=MAX_PARAM, pattern=r"^[^\x00]*$")]
Id = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")]
MAX_BATCH = 100_000
# The largest value of the store's INTEGER columns (versions, pids): PostgreSQL's int4.
MAX_INT32 = 2**31 - 1
# Free text without NUL: PostgreSQL's text columns cannot hold one (a 500 before).
NO_NUL = r"^[^\x00]*$"


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RunCreateBody(_Body):
    """Start a run."""

    experiment: Name = "default"
    name: Annotated[str, StringConstraints(max_length=MAX_KEY, pattern=r"^[^\x00]*$")] | None = None
    parent_id: Id | None = None
    tags: dict[Key, Text] = Field(default_factory=dict, max_length=1000)
    host: Annotated[str, StringConstraints(max_length=255, pattern=r"^[A-Za-z0-9_.\-]*$")] = ""
    pid: Annotated[int, Field(ge=0, le=MAX_INT32)] = 0


class MetricBody(_Body):
    """One point: NaN and infinities are sent as the strings "NaN", "Infinity", "-Infinity"."""

    key: Key
    value: float
    step: Annotated[int, Field(ge=-(2**62), le=2**62)]
    timestamp: Annotated[float, Field(ge=0, le=1e11)]


class LogBatchBody(_Body):
    """Params, tags and metric points written in one transaction."""

    params: dict[Key, Text] = Field(default_factory=dict, max_length=10_000)
    tags: dict[Key, Text] = Field(default_factory=dict, max_length=10_000)
    metrics: list[MetricBody] = Field(default_factory=list, max_length=MAX_BATCH)


class EndRunBody(_Body):
    """How a run ended."""

    status: Annotated[str, StringConstraints(pattern=r"^(finished|failed|killed)$")] = "finished"


class AliasBody(_Body):
    """Point an alias at a version."""

    version: Annotated[int, Field(ge=1, le=MAX_INT32)]


class PromotionBody(_Body):
    """Ask for a version to get a protected alias or stage."""

    reference: Annotated[str, StringConstraints(max_length=300, pattern=r"^[A-Za-z0-9_.@\-]+$")]
    to: Name
    reason: Annotated[str, StringConstraints(min_length=1, max_length=2000, pattern=NO_NUL)]


class DecisionBody(_Body):
    """An approver's comment on a request."""

    comment: Annotated[str, StringConstraints(max_length=2000, pattern=NO_NUL)] | None = None


class UserBody(_Body):
    """Create a user."""

    name: Name
    roles: list[Annotated[str, StringConstraints(pattern=r"^(viewer|editor|approver|admin)$")]] = (
        Field(default_factory=lambda: ["viewer"], min_length=1, max_length=4)
    )


class TokenBody(_Body):
    """Create a token."""

    user: Name
    name: Name = "default"
    expires_in_days: Annotated[int, Field(ge=1, le=3650)] | None = None
    expires_in_seconds: Annotated[int, Field(ge=1, le=3650 * 86400)] | None = None


class RolesBody(_Body):
    """Roles to grant or revoke."""

    roles: list[Annotated[str, StringConstraints(pattern=r"^(viewer|editor|approver|admin)$")]] = (
        Field(min_length=1, max_length=4)
    )


# Path and query parameters: checked before any handler runs.
RunIdPath = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$")]
NamePath = Annotated[str, Path(pattern=NAME_PATTERN, max_length=MAX_NAME_LENGTH)]
VersionPath = Annotated[int, Path(ge=1, le=MAX_INT32)]


class MissingBody(_Body):
    """Digests a client is about to upload; the answer names those the server lacks."""

    digests: list[Annotated[str, StringConstraints(pattern=r"^blake3:[0-9a-f]{64}$")]] = Field(
        max_length=10_000
    )


Digest = Annotated[str, StringConstraints(pattern=r"^blake3:[0-9a-f]{64}$")]


class ArtifactFileBody(_Body):
    """A file uploaded by digest, and its path inside the run."""

    path: Annotated[str, StringConstraints(min_length=1, max_length=1024, pattern=r"^[^\x00\\]+$")]
    digest: Digest
    size: Annotated[int, Field(ge=0, le=2**50)]


class ArtifactsBody(_Body):
    """Files to record as a run's artifacts (their content uploaded to /blobs first)."""

    files: list[ArtifactFileBody] = Field(min_length=1, max_length=100_000)


class InputBody(_Body):
    """A dataset version a run consumed: ``name@N``, ``name@latest`` or ``name@label``."""

    dataset: Annotated[
        str, StringConstraints(min_length=3, max_length=300, pattern=r"^[^\x00/\\]+$")
    ]


class DatasetVersionBody(_Body):
    """A dataset version from uploaded files: the client profiled the table where it is."""

    files: list[ArtifactFileBody] = Field(min_length=1, max_length=1_000_000)
    format: Annotated[str, StringConstraints(pattern=r"^(csv|parquet|jsonl|arrow)$")] | None = None
    profile: dict[str, Any] | None = None
    key: list[Name] = Field(default_factory=list, max_length=100)
    description: Annotated[str, StringConstraints(max_length=100_000)] | None = None
    owner: Text | None = None
    license: Text | None = None
    source_uri: Annotated[str, StringConstraints(max_length=4096)] | None = None
    fetched_at: datetime | None = None
    tags: dict[Key, Text] = Field(default_factory=dict, max_length=1000)


class LabelBody(_Body):
    """Point a label at a version."""

    version: Annotated[int, Field(ge=1, le=MAX_INT32)]


class OnnxReportBody(_Body):
    """What the ONNX export and its parity check gave."""

    status: Annotated[str, StringConstraints(pattern=r"^(attached|rejected|unavailable)$")]
    max_diff: float | None = None
    reason: Annotated[str, StringConstraints(max_length=4000)] | None = None


class ModelVersionBody(_Body):
    """A model version from uploaded files: the client prepared the model where it trained."""

    files: list[ArtifactFileBody] = Field(min_length=1, max_length=10_000)
    flavor: Name
    signature: dict[str, Any] | None = None
    requirements: list[Annotated[str, StringConstraints(max_length=300)]] = Field(
        default_factory=list, max_length=1000
    )
    onnx: OnnxReportBody
    run_id: Id | None = None
    description: Annotated[str, StringConstraints(max_length=100_000)] | None = None
    tags: dict[Key, Text] = Field(default_factory=dict, max_length=1000)


class ModelChangeBody(_Body):
    """A registered model's new description (null keeps it) and tags to merge (null removes)."""

    description: Annotated[str, StringConstraints(max_length=100_000, pattern=NO_NUL)] | None = None
    tags: dict[Key, Text | None] = Field(default_factory=dict, max_length=1000)


class FeedbackBody(_Body):
    """Ground-truth labels by request id (any JSON value but null)."""

    labels: dict[Annotated[str, StringConstraints(min_length=1, max_length=200)], Any] = Field(
        min_length=1, max_length=100_000
    )
    deployment_id: Id | None = None


# -- pipeline records from remote drivers ----------------------------------------------

# A task key is the task's name (any function name, `<lambda>` too) and "-N": a row key,
# never a path; no separators or control characters.
TASK_KEY_PATTERN = r"^[^\x00-\x1f\x7f/\\]+$"
TaskKey = Annotated[str, StringConstraints(pattern=TASK_KEY_PATTERN, max_length=255)]
LongText = Annotated[str, StringConstraints(max_length=1_000_000, pattern=NO_NUL)]
CacheKey = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


class PipelineRunBody(_Body):
    """A pipeline run a remote driver starts now (it runs where the driver is)."""

    pipeline: Name
    target: Annotated[str, StringConstraints(min_length=1, max_length=1024, pattern=NO_NUL)]
    params: dict[Annotated[str, StringConstraints(max_length=MAX_KEY)], Any] = Field(
        default_factory=dict, max_length=1000
    )
    executor: Annotated[str, StringConstraints(max_length=32, pattern=r"^(local|ray)(://\S+)?$")]
    host: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.\-]{1,255}$")]
    pid: Annotated[int, Field(ge=0, le=MAX_INT32)] | None = None
    resumed_from: Id | None = None
    schedule: Name | None = None


class TaskRowBody(_Body):
    """One task run's row as its driver sees it now."""

    key: TaskKey
    task: TaskKey
    status: Annotated[str, StringConstraints(pattern=f"^({'|'.join(TASK_STATES)})$")]
    attempt: Annotated[int, Field(ge=0, le=MAX_INT32)]
    upstream: list[TaskKey] = Field(default_factory=list, max_length=100_000)
    cache_key: CacheKey | None = None
    result_digest: Digest | None = None
    log_digest: Digest | None = None
    pid: Annotated[int, Field(ge=0, le=MAX_INT32)] | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    error: LongText | None = None


class PipelineEndBody(_Body):
    """How the driver ended the run."""

    status: Annotated[str, StringConstraints(pattern=r"^(succeeded|failed|cancelled)$")]
    error: LongText | None = None
    result_digest: Digest | None = None


class PipelineRecordsBody(_Body):
    """A batch of a run's records: changed task rows, a heartbeat, and the end if it came."""

    tasks: list[TaskRowBody] = Field(default_factory=list, max_length=10_000)
    run: PipelineEndBody | None = None
    beat: bool = False


class DeploymentBody(_Body):
    """A serving process that now serves a model version (it runs where it is)."""

    name: Name
    version: Annotated[int, Field(ge=1, le=MAX_INT32)]
    alias: Name | None = None
    url: Annotated[str, StringConstraints(min_length=1, max_length=1024, pattern=r"^https?://\S+$")]
    runtime: Annotated[str, StringConstraints(pattern=r"^(onnx|native)$")]
    host: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.\-]{1,255}$")]
    pid: Annotated[int, Field(ge=0, le=MAX_INT32)]


Count = Annotated[int, Field(strict=True, ge=0, le=2**63 - 1)]  # a BigInteger column


class DeploymentCountsBody(_Body):
    """A serving process's cumulative ``/predict`` answers since it started.

    The optional body of a heartbeat or the stop: all answers, and the 4xx and 5xx ones.
    """

    requests: Count
    client_errors: Count = 0
    server_errors: Count = 0


# -- monitor runs computed on the server -----------------------------------------------

# ``NAME`` or ``NAME@REF`` (``churn@production``, ``churn@3``); ``..`` is refused below.
REFERENCE_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*(@[A-Za-z0-9_][A-Za-z0-9_.\-]*)?$"
RefText = Annotated[str, StringConstraints(pattern=REFERENCE_PATTERN, max_length=257)]
# A number and a unit as ``parse_duration`` reads them, without spaces: ``90s``, ``7d``.
DURATION_PATTERN = r"^[0-9]{1,9}(\.[0-9]{1,6})?[smhdw]$"
MAX_WINDOW_DAYS = 36_500  # a hundred years: far past any prediction log, and no overflow


class MonitorRunBody(_Body):
    """Run monitoring on the server (``MonitoringService.run``): names and a window only."""

    model: RefText
    window: Annotated[str, StringConstraints(pattern=DURATION_PATTERN)] = "24h"
    reference: RefText | None = None
    current: RefText | None = None
    retrain: bool = True
    now: AwareDatetime | None = None

    @field_validator("model", "reference", "current")
    @classmethod
    def _reference(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                Reference.parse(value)
            except ShipyardError as exc:
                raise ValueError(str(exc)) from None
        return value

    @field_validator("window", mode="before")
    @classmethod
    def _duration(cls, value: object) -> object:
        # parse_duration's own message ("not a number and a unit ...") before the pattern's.
        if isinstance(value, str) and not re.fullmatch(DURATION_PATTERN, value):
            try:
                parse_duration(value)
            except ShipyardError as exc:
                raise ValueError(str(exc)) from None
            raise ValueError(
                f"duration {value!r}: at most 9 digits (6 after the point) and a unit, "
                "without spaces, such as '7d'"
            )
        return value

    @field_validator("now")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        # In UTC, so the window's start is computed where the year cannot overflow.
        if value is None:
            return None
        try:
            return value.astimezone(UTC)
        except OverflowError:
            raise ValueError(f"{value.isoformat()} is out of range in UTC") from None

    @model_validator(mode="after")
    def _window(self) -> MonitorRunBody:
        span = parse_duration(self.window)
        if span > timedelta(days=MAX_WINDOW_DAYS):
            raise ValueError(f"window {self.window!r} is longer than {MAX_WINDOW_DAYS}d")
        if self.now is not None and self.now - datetime.min.replace(tzinfo=UTC) <= span:
            raise ValueError(f"window {self.window!r} reaches back before the year 1")
        return self


# -- schedules: definitions a client checked (and loaded); checked again, never loaded ----

ScheduleTarget = Annotated[
    str, StringConstraints(min_length=1, max_length=1024, pattern=r"^[^\x00\r\n]+$")
]
CronText = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[^\x00]+$")]
# Interval seconds: at least 1, at most ten years (a first due time far past that overflows).
IntervalSeconds = Annotated[float, Field(ge=1, le=315_360_000)]
MissedText = Annotated[str, StringConstraints(pattern=r"^(skip|catchup(:[0-9]{1,4})?)$")]
ParamName = Annotated[str, StringConstraints(min_length=1, max_length=MAX_KEY)]
# A scheduler's name for itself (host:pid:suffix); the server puts the caller's user first.
LeaseOwner = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.\-:]{0,119}$")]
_EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
_AHEAD = timedelta(days=1)  # how far ahead of the server's clock a client's clock may be


def _near_now(value: datetime | None, ahead: timedelta = _AHEAD) -> datetime | None:
    """``value`` in UTC, refused before 2000 or more than ``ahead`` past the server's clock."""
    if value is None:
        return None
    moment = value.astimezone(UTC)
    if not _EARLIEST <= moment <= datetime.now(UTC) + ahead:
        raise ValueError(
            f"{moment.isoformat()} is not a time a scheduler works at: from 2000 to a day "
            "from now (is this machine's clock right?)"
        )
    return moment


class ScheduleBody(_Body):
    """A new schedule: its definition as the client checked it against the pipeline."""

    name: Name
    pipeline: Name
    target: ScheduleTarget
    cron: CronText | None = None
    every: IntervalSeconds | None = None
    params: dict[ParamName, Any] = Field(default_factory=dict, max_length=1000)
    missed: MissedText = "skip"
    enabled: bool = True
    now: AwareDatetime | None = None

    @field_validator("now")
    @classmethod
    def _now(cls, value: datetime | None) -> datetime | None:
        return _near_now(value)


class ScheduleChangeBody(_Body):
    """A change to a schedule; what is left out stays (a new target comes with its pipeline)."""

    pipeline: Name | None = None
    target: ScheduleTarget | None = None
    cron: CronText | None = None
    every: IntervalSeconds | None = None
    params: dict[ParamName, Any] | None = Field(default=None, max_length=1000)
    missed: MissedText | None = None
    enabled: bool | None = None
    now: AwareDatetime | None = None

    @field_validator("now")
    @classmethod
    def _now(cls, value: datetime | None) -> datetime | None:
        return _near_now(value)


class ScheduleClaimBody(_Body):
    """A scheduler claiming the schedules due at ``now`` (default: the server's clock)."""

    owner: LeaseOwner
    now: AwareDatetime | None = None
    limit: Annotated[int, Field(ge=1, le=1000)] | None = None
    lease_seconds: Annotated[float, Field(ge=0.05, le=3600)] = 60.0

    @field_validator("now")
    @classmethod
    def _now(cls, value: datetime | None) -> datetime | None:
        return _near_now(value)


class ScheduleLeaseBody(_Body):
    """A scheduler renewing its lease on a schedule until ``until``."""

    owner: LeaseOwner
    until: AwareDatetime

    @field_validator("until")
    @classmethod
    def _until(cls, value: datetime) -> datetime | None:
        return _near_now(value, _AHEAD + timedelta(hours=1))


class ScheduleReleaseBody(_Body):
    """A scheduler releasing its lease, with the id of the last run it launched."""

    owner: LeaseOwner
    run_id: Id | None = None
