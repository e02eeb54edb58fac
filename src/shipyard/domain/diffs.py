"""What changed between two dataset versions: files, schema, rows and column statistics."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = [
    "ColumnChange",
    "ColumnDelta",
    "DatasetDiff",
    "FileChange",
    "RowChanges",
    "population_stability_index",
]

PSI_EPSILON = 1e-4  # a share of zero would make the log undefined


@dataclass(frozen=True, slots=True)
class FileChange:
    """A file added, removed or changed between two versions."""

    path: str
    change: str  # added | removed | changed
    old_size: int | None
    new_size: int | None


@dataclass(frozen=True, slots=True)
class ColumnChange:
    """A column added, removed or retyped."""

    name: str
    change: str  # added | removed | retyped
    old_type: str | None
    new_type: str | None


@dataclass(frozen=True, slots=True)
class ColumnDelta:
    """How a column present in both versions moved."""

    name: str
    kind: str
    mean_old: float | None
    mean_new: float | None
    mean_shift: float | None  # (new mean - old mean) / old std, when both are known
    na_old: float
    na_new: float
    distinct_old: int
    distinct_new: int
    psi: float | None


@dataclass(frozen=True, slots=True)
class RowChanges:
    """Rows added, removed and changed, matched by key (or as a multiset without a key)."""

    key: tuple[str, ...]
    added: int
    removed: int
    changed: int
    unchanged: int
    samples: Mapping[str, Sequence[Mapping[str, Any]]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DatasetDiff:
    """Everything ``shipyard data diff`` reports."""

    old: str
    new: str
    same_content: bool
    files: tuple[FileChange, ...]
    schema: tuple[ColumnChange, ...]
    rows_old: int | None
    rows_new: int | None
    rows: RowChanges | None
    columns: tuple[ColumnDelta, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (NaN and infinities become None)."""
        safe: dict[str, Any] = _json_safe(asdict(self))
        return safe


def population_stability_index(old: Sequence[float], new: Sequence[float]) -> float:
    """PSI between two binned distributions given as counts over the same bins.

    Args:
        old: counts per bin in the reference.
        new: counts per bin in the current data.

    Returns:
        sum of (new share - old share) * ln(new share / old share), with empty bins smoothed.
    """
    total_old, total_new = sum(old), sum(new)
    if not total_old or not total_new:
        return 0.0
    psi = 0.0
    for a, b in zip(old, new, strict=True):
        p = max(a / total_old, PSI_EPSILON)
        q = max(b / total_new, PSI_EPSILON)
        psi += (q - p) * math.log(q / p)
    return psi


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)
