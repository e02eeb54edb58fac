"""Pipelines: run and task states, their records, and the option values tasks take.

A pipeline run moves ``pending -> running -> succeeded | failed | cancelled``; a run whose
driver died is marked ``crashed`` by the next read. A task run moves ``pending -> running
-> succeeded | failed | cancelled``, passes through ``retrying`` between attempts, and is
``cached`` when its result came from an earlier run.
"""

from __future__ import annotations

import math
import re
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shipyard.errors import InvalidArgumentError, PipelineFailedError

__all__ = [
    "CURRENT_PIPELINE_RUN",
    "PIPELINE_RUN_HEADER",
    "RUN_STATES",
    "TASK_DATASET_READS",
    "TASK_STATES",
    "TERMINAL",
    "PipelineRun",
    "TaskOptions",
    "TaskRun",
    "current_pipeline_run",
    "note_dataset_read",
    "parse_duration",
    "parse_memory",
]

RUN_STATES = ("pending", "running", "succeeded", "failed", "cancelled", "crashed")
TASK_STATES = (
    "pending",
    "running",
    "retrying",
    "succeeded",
    "cached",
    "failed",
    "cancelled",
    "crashed",
)
TERMINAL = frozenset({"succeeded", "cached", "failed", "cancelled", "crashed"})

# The pipeline run the current code runs in (set by the executor where a task runs), so
# that runs, datasets and models made inside a task can link to it.
CURRENT_PIPELINE_RUN: ContextVar[str | None] = ContextVar("shipyard_pipeline_run", default=None)
# The HTTP header a client sends from inside a pipeline task: the run's id.
PIPELINE_RUN_HEADER = "x-shipyard-pipeline-run"
# The dataset references that may move (``name@latest``, ``name@label``) a running task
# resolved, with the content digest each gave: a cached result of the task is reused only
# while each still resolves to that content. Set by the executor where a task runs.
TASK_DATASET_READS: ContextVar[list[tuple[str, str]] | None] = ContextVar(
    "shipyard_task_dataset_reads", default=None
)

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$", re.IGNORECASE)
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_MEMORY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b?|b)?\s*$", re.IGNORECASE)


def current_pipeline_run() -> str | None:
    """The id of the pipeline run the calling code runs inside, if any."""
    return CURRENT_PIPELINE_RUN.get()


def note_dataset_read(reference: str, pinned: bool, content_digest: str) -> None:
    """Tell the running task, if any, that ``reference`` resolved to this content.

    A pinned reference (``name@3``) always resolves alike and is not noted.
    """
    reads = TASK_DATASET_READS.get()
    if reads is not None and not pinned and (reference, content_digest) not in reads:
        reads.append((reference, content_digest))


def parse_duration(value: str | float | None) -> float | None:
    """Seconds from ``"30s"``, ``"10m"``, ``"2h"``, ``"1d"``, ``"250ms"`` or a number.

    Raises:
        InvalidArgumentError: for anything else, or a duration that is not positive.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise InvalidArgumentError(f"duration {value!r} is not a number of seconds")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        match = _DURATION.match(value)
        if match is None:
            raise InvalidArgumentError(
                f"duration {value!r} is not valid: use a number of seconds or e.g. "
                "'30s', '10m', '2h', '1d'"
            )
        seconds = float(match.group(1)) * _DURATION_UNITS[(match.group(2) or "s").lower()]
    if not math.isfinite(seconds) or seconds <= 0:
        raise InvalidArgumentError(f"duration {value!r} must be positive")
    return seconds


def parse_memory(value: str | float) -> int:
    """Bytes from ``"2GB"``, ``"512MiB"``, ``"100k"`` or a number of bytes.

    Raises:
        InvalidArgumentError: for anything else.
    """
    if isinstance(value, bool):
        raise InvalidArgumentError(f"memory {value!r} is not a size")
    if isinstance(value, (int, float)):
        if value < 0 or not math.isfinite(value):
            raise InvalidArgumentError(f"memory {value!r} must be a positive size")
        return int(value)
    match = _MEMORY.match(value)
    if match is None:
        raise InvalidArgumentError(
            f"memory {value!r} is not valid: use bytes or e.g. '512MB', '2GB', '1GiB'"
        )
    unit = (match.group(2) or "").lower()
    power = "bkmgt".index(unit[:1]) if unit else 0
    scale = (1024 if "i" in unit else 1000) ** power
    return int(float(match.group(1)) * scale)


@dataclass(frozen=True, slots=True)
class TaskOptions:
    """How a task runs: retries, backoff, timeout, caching, resources, isolation."""

    retries: int = 0
    retry_backoff: float = 1.0  # seconds before the first retry; doubles each retry
    retry_jitter: float = 0.1  # each delay is scaled by 1 +/- up to this fraction
    timeout: float | None = None
    cache: bool = False
    resources: dict[str, float] = field(default_factory=dict)
    isolate: bool = False

    @classmethod
    def parse(
        cls,
        *,
        retries: int = 0,
        retry_backoff: float = 1.0,
        retry_jitter: float = 0.1,
        timeout: str | float | None = None,
        cache: bool = False,
        resources: dict[str, Any] | None = None,
        isolate: bool | None = None,
    ) -> TaskOptions:
        """Validated options from what a user wrote in ``@task(...)``.

        ``isolate=None`` means "in its own process when it has a timeout".

        Raises:
            InvalidArgumentError: for a negative retry count, backoff or jitter, a bad
                timeout or a bad resource value.
        """
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise InvalidArgumentError(f"retries must be a whole number >= 0, not {retries!r}")
        if retry_backoff < 0 or not 0 <= retry_jitter <= 1:
            raise InvalidArgumentError(
                "retry_backoff must be >= 0 seconds and retry_jitter between 0 and 1"
            )
        seconds = parse_duration(timeout)
        parsed: dict[str, float] = {}
        for name, amount in (resources or {}).items():
            if name == "memory":
                parsed[name] = float(parse_memory(amount))
            else:
                try:
                    parsed[name] = float(amount)
                except (TypeError, ValueError):
                    raise InvalidArgumentError(
                        f"resource {name!r} must be a number, not {amount!r}"
                    ) from None
        return cls(
            retries=retries,
            retry_backoff=float(retry_backoff),
            retry_jitter=float(retry_jitter),
            timeout=seconds,
            cache=bool(cache),
            resources=parsed,
            isolate=bool(isolate) if isolate is not None else seconds is not None,
        )


@dataclass(frozen=True, slots=True)
class PipelineRun:
    """One run of a pipeline: its parameters, state and times."""

    id: str
    pipeline: str
    target: str
    status: str
    params: dict[str, Any]
    executor: str
    created_by: str
    host: str
    pid: int | None
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    heartbeat_at: datetime | None
    cancel_requested: bool
    error: str | None
    resumed_from: str | None
    schedule: str | None
    result_digest: str | None
    _result: Any = field(default=None, repr=False, compare=False)

    @property
    def result(self) -> Any:
        """The pipeline's return value, for a run just run in this process.

        Raises:
            PipelineFailedError: if the run did not succeed.
        """
        if self.status != "succeeded":
            raise PipelineFailedError(self.id, [], self.status)
        return self._result

    @property
    def duration(self) -> float | None:
        """Seconds from start to end (to the last heartbeat while running), if started."""
        end = self.ended_at or self.heartbeat_at
        if self.started_at is None or end is None:
            return None
        return (end - self.started_at).total_seconds()

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        out: dict[str, Any] = {}
        for name in self.__slots__:
            if name.startswith("_"):
                continue
            value = getattr(self, name)
            out[name] = value.isoformat() if isinstance(value, datetime) else value
        out["duration"] = self.duration
        return out


@dataclass(frozen=True, slots=True)
class TaskRun:
    """One task of a pipeline run: its state, attempt, upstream tasks and stored outputs."""

    pipeline_run_id: str
    key: str
    task: str
    status: str
    attempt: int
    upstream: tuple[str, ...]
    cache_key: str | None
    result_digest: str | None
    log_digest: str | None
    pid: int | None
    started_at: datetime | None
    ended_at: datetime | None
    error: str | None

    @property
    def duration(self) -> float | None:
        """Seconds the task ran (its last attempt), if it started and ended."""
        if self.started_at is None or self.ended_at is None:
            return None
        return (self.ended_at - self.started_at).total_seconds()

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        out: dict[str, Any] = {}
        for name in self.__slots__:
            value = getattr(self, name)
            if isinstance(value, datetime):
                value = value.isoformat()
            elif isinstance(value, tuple):
                value = list(value)
            out[name] = value
        out["duration"] = self.duration
        return out
