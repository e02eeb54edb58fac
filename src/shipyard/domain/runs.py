"""Experiments and runs: what a training run recorded, as immutable records."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shipyard.domain.numbers import json_float

__all__ = [
    "FINAL_STATUSES",
    "STATUSES",
    "Experiment",
    "MetricSummary",
    "Run",
    "RunArtifact",
    "select_artifacts",
]

STATUSES = ("running", "finished", "failed", "killed")
FINAL_STATUSES = frozenset({"finished", "failed", "killed"})


@dataclass(frozen=True, slots=True)
class Experiment:
    """A named group of runs."""

    id: str
    name: str
    created_at: datetime
    created_by: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "id": self.id,
            "name": self.name,
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
        }


@dataclass(frozen=True, slots=True)
class MetricSummary:
    """A metric's latest value (by step, then time), its range and how many points it has."""

    key: str
    value: float
    step: int
    timestamp: float
    min: float | None
    max: float | None
    count: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (NaN and infinities as strings)."""
        return {
            "key": self.key,
            "value": json_float(self.value),
            "step": self.step,
            "timestamp": self.timestamp,
            "min": None if self.min is None else json_float(self.min),
            "max": None if self.max is None else json_float(self.max),
            "count": self.count,
        }


@dataclass(frozen=True, slots=True)
class RunArtifact:
    """A file a run logged: its path inside the run, digest and size."""

    path: str
    digest: str
    size: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {"path": self.path, "digest": self.digest, "size": self.size}


@dataclass(frozen=True, slots=True)
class Run:
    """One run: identity, status, times, and what it logged."""

    id: str
    experiment: str
    name: str
    parent_id: str | None
    status: str
    user: str
    start_time: datetime
    end_time: datetime | None
    host: str
    pid: int
    params: Mapping[str, str] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    metrics: Mapping[str, MetricSummary] = field(default_factory=dict)
    environment: Mapping[str, Any] | None = None
    resources: Mapping[str, Any] | None = None

    @property
    def duration(self) -> float | None:
        """Seconds from start to end, None while running."""
        if self.end_time is None:
            return None
        return (self.end_time - self.start_time).total_seconds()

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "id": self.id,
            "experiment": self.experiment,
            "name": self.name,
            "parent_id": self.parent_id,
            "status": self.status,
            "user": self.user,
            "start_time": self.start_time.isoformat(),
            "end_time": self.end_time.isoformat() if self.end_time else None,
            "duration": self.duration,
            "host": self.host,
            "pid": self.pid,
            "params": dict(self.params),
            "tags": dict(self.tags),
            "metrics": {k: m.to_dict() for k, m in self.metrics.items()},
            "environment": self.environment,
            "resources": self.resources,
        }


def select_artifacts(artifacts: Sequence[RunArtifact], path: str) -> list[RunArtifact]:
    """The artifacts at ``path`` or under it (all of them for an empty path)."""
    prefix = path.strip("/")
    if not prefix:
        return list(artifacts)
    return [a for a in artifacts if a.path == prefix or a.path.startswith(prefix + "/")]
