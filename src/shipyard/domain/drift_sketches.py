"""Drift sketches: what a table's columns look like, small enough to keep and compare.

A sketch is the one-pass summary that drift tests are computed from, so a reference is
scanned once and compared with any number of current windows.

- ``NumericSketch``: counts (rows, nulls, NaN, infinities), min, max, mean, the sum of squared
  deviations, and the cumulative distribution at sorted ``points``: ``below[i]`` values are
  ``< points[i]`` and ``upto[i]`` values are ``<= points[i]``. When ``exact`` is True the
  points are every distinct finite value (so the distribution is known exactly); otherwise
  the values between two points are taken as spread evenly between them (a reference uses
  ``GRID_BINS`` bins between its own quantiles; a current window uses the reference's points
  plus its own min and max).
- ``CategoricalSketch``: value counts, the ``TOP_VALUES`` most frequent kept, the rest summed
  in ``other``.

This module holds the records and their JSON form only; ``shipyard.services.drift_sketch``
computes them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from shipyard.domain.numbers import float_from_json, json_float
from shipyard.errors import InvalidArgumentError

__all__ = [
    "GRID_BINS",
    "SKETCH_FORMAT",
    "TOP_VALUES",
    "CategoricalSketch",
    "ColumnSketch",
    "NumericSketch",
    "SketchKind",
    "TableSketch",
]

SKETCH_FORMAT = 1  # bump when a sketch's meaning changes: cached sketches are recomputed
GRID_BINS = 512  # bins between reference quantiles when a column has more distinct values
TOP_VALUES = 1000  # most frequent values a categorical sketch keeps; the rest is ``other``

SketchKind = Literal["numeric", "categorical", "other"]


def _floats(values: Any) -> tuple[float, ...]:
    return tuple(float_from_json(v) for v in values)


@dataclass(frozen=True, slots=True)
class NumericSketch:
    """A numeric column: counts, moments and its cumulative distribution at sorted points.

    Attributes:
        type: the Arrow type string.
        count: rows.
        nulls: null values.
        nan: NaN values.
        inf: +/-infinity values.
        min: smallest finite value (NaN when there is none).
        max: largest finite value (NaN when there is none).
        mean: mean of the finite values (NaN when there is none).
        m2: sum of squared deviations from the mean (population variance is ``m2 / finite``).
        points: sorted distinct points where the distribution is known.
        below: finite values ``< points[i]``.
        upto: finite values ``<= points[i]``.
        exact: True when the points are every distinct finite value.
        integer: True for integer columns.
    """

    type: str
    count: int
    nulls: int
    nan: int
    inf: int
    min: float
    max: float
    mean: float
    m2: float
    points: tuple[float, ...]
    below: tuple[int, ...]
    upto: tuple[int, ...]
    exact: bool
    integer: bool = False

    def __post_init__(self) -> None:
        if not len(self.points) == len(self.below) == len(self.upto):
            raise InvalidArgumentError(
                f"a numeric sketch needs as many counts as points, got {len(self.points)} "
                f"points, {len(self.below)} and {len(self.upto)} counts"
            )

    @property
    def kind(self) -> SketchKind:
        """Always ``numeric``."""
        return "numeric"

    @property
    def finite(self) -> int:
        """Values that are neither null, NaN nor infinite: the ones drift tests use."""
        return self.count - self.nulls - self.nan - self.inf

    @property
    def std(self) -> float:
        """Population standard deviation of the finite values (NaN when there is none)."""
        return math.sqrt(self.m2 / self.finite) if self.finite else math.nan

    @property
    def distinct(self) -> int | None:
        """Distinct finite values, when the sketch is exact (else unknown: None)."""
        return len(self.points) if self.exact else None

    def value_counts(self) -> dict[float, int]:
        """Value -> count; only for an exact sketch.

        Raises:
            InvalidArgumentError: if the sketch is not exact.
        """
        if not self.exact:
            raise InvalidArgumentError("value counts need an exact sketch (few distinct values)")
        return {p: u - b for p, b, u in zip(self.points, self.below, self.upto, strict=True)}

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "kind": "numeric",
            "type": self.type,
            "count": self.count,
            "nulls": self.nulls,
            "nan": self.nan,
            "inf": self.inf,
            "min": json_float(self.min),
            "max": json_float(self.max),
            "mean": json_float(self.mean),
            "m2": json_float(self.m2),
            "points": [json_float(p) for p in self.points],
            "below": list(self.below),
            "upto": list(self.upto),
            "exact": self.exact,
            "integer": self.integer,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NumericSketch:
        """Rebuild a sketch from ``to_dict`` output."""
        return cls(
            type=str(data["type"]),
            count=int(data["count"]),
            nulls=int(data["nulls"]),
            nan=int(data["nan"]),
            inf=int(data["inf"]),
            min=float_from_json(data["min"]),
            max=float_from_json(data["max"]),
            mean=float_from_json(data["mean"]),
            m2=float_from_json(data["m2"]),
            points=_floats(data["points"]),
            below=tuple(int(v) for v in data["below"]),
            upto=tuple(int(v) for v in data["upto"]),
            exact=bool(data["exact"]),
            integer=bool(data.get("integer", False)),
        )


@dataclass(frozen=True, slots=True)
class CategoricalSketch:
    """A categorical (string, boolean, dictionary) column: its most frequent values.

    Attributes:
        type: the Arrow type string.
        count: rows.
        nulls: null values.
        top: (value, count) pairs, most frequent first; values are strings.
        other: values not kept in ``top`` (0 when ``top`` holds every value).
        distinct: distinct non-null values (a lower bound when ``complete`` is False).
        complete: True when ``top`` holds every value and its counts are exact.
    """

    type: str
    count: int
    nulls: int
    top: tuple[tuple[str, int], ...]
    other: int
    distinct: int
    complete: bool

    @property
    def kind(self) -> SketchKind:
        """Always ``categorical``."""
        return "categorical"

    @property
    def finite(self) -> int:
        """Non-null values."""
        return self.count - self.nulls

    def value_counts(self) -> dict[str, int]:
        """Value -> count of the values kept."""
        return dict(self.top)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "kind": "categorical",
            "type": self.type,
            "count": self.count,
            "nulls": self.nulls,
            "top": [[v, n] for v, n in self.top],
            "other": self.other,
            "distinct": self.distinct,
            "complete": self.complete,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CategoricalSketch:
        """Rebuild a sketch from ``to_dict`` output."""
        return cls(
            type=str(data["type"]),
            count=int(data["count"]),
            nulls=int(data["nulls"]),
            top=tuple((str(v), int(n)) for v, n in data["top"]),
            other=int(data["other"]),
            distinct=int(data["distinct"]),
            complete=bool(data["complete"]),
        )


ColumnSketch = NumericSketch | CategoricalSketch


@dataclass(frozen=True, slots=True)
class TableSketch:
    """The sketches of a table's columns, in schema order.

    Attributes:
        rows: rows in the table.
        columns: column name -> sketch; columns of other types (lists, structs, times) map
            to their Arrow type string only, in ``other``.
        other: column name -> Arrow type, for columns that are not sketched.
    """

    rows: int
    columns: Mapping[str, ColumnSketch]
    other: Mapping[str, str]

    @property
    def types(self) -> dict[str, str]:
        """Column name -> Arrow type, sketched or not."""
        return {**{k: s.type for k, s in self.columns.items()}, **dict(self.other)}

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "format": SKETCH_FORMAT,
            "rows": self.rows,
            "columns": {k: s.to_dict() for k, s in self.columns.items()},
            "other": dict(self.other),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TableSketch:
        """Rebuild a sketch from ``to_dict`` output.

        Raises:
            InvalidArgumentError: if the data was written by another sketch format.
        """
        if data.get("format") != SKETCH_FORMAT:
            raise InvalidArgumentError(
                f"drift sketch format {data.get('format')!r} is not {SKETCH_FORMAT}: recompute it"
            )
        columns: dict[str, ColumnSketch] = {}
        for name, raw in data["columns"].items():
            if raw["kind"] == "numeric":
                columns[str(name)] = NumericSketch.from_dict(raw)
            else:
                columns[str(name)] = CategoricalSketch.from_dict(raw)
        return cls(
            rows=int(data["rows"]),
            columns=columns,
            other={str(k): str(v) for k, v in data.get("other", {}).items()},
        )
