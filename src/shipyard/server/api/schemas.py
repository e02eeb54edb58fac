"""Request bodies: pydantic at the edge, strict about names, sizes and types."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from shipyard.domain.references import MAX_NAME_LENGTH
from shipyard.services.runs import MAX_KEY, MAX_PARAM

__all__ = [
    "NAME_PATTERN",
    "AliasBody",
    "DecisionBody",
    "EndRunBody",
    "LogBatchBody",
    "MetricBody",
    "NamePath",
    "PromotionBody",
    "RunCreateBody",
    "RunIdPath",
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


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RunCreateBody(_Body):
    """Start a run."""

    experiment: Name = "default"
    name: Annotated[str, StringConstraints(max_length=MAX_KEY, pattern=r"^[^\x00]*$")] | None = None
    parent_id: Id | None = None
    tags: dict[Key, Text] = Field(default_factory=dict, max_length=1000)
    host: Annotated[str, StringConstraints(max_length=255, pattern=r"^[A-Za-z0-9_.\-]*$")] = ""
    pid: Annotated[int, Field(ge=0, le=2**31)] = 0


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

    version: Annotated[int, Field(ge=1, le=2**31)]


class PromotionBody(_Body):
    """Ask for a version to get a protected alias or stage."""

    reference: Annotated[str, StringConstraints(max_length=300, pattern=r"^[A-Za-z0-9_.@\-]+$")]
    to: Name
    reason: Annotated[str, StringConstraints(min_length=1, max_length=2000)]


class DecisionBody(_Body):
    """An approver's comment on a request."""

    comment: Annotated[str, StringConstraints(max_length=2000)] | None = None


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


# Path and query parameters: checked before any handler runs.
RunIdPath = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$")]
NamePath = Annotated[str, Path(pattern=NAME_PATTERN, max_length=MAX_NAME_LENGTH)]
VersionPath = Annotated[int, Path(ge=1, le=2**31)]
