"""Profiles: what a table holds, column by column, as small JSON-safe records.

A ``TableProfile`` is the "describe" of a dataset version: its schema and, per column, counts,
nulls, distinct values, range, moments, quantiles, a histogram (numeric columns) and the most
frequent values (categorical and boolean columns). Profiles are computed by
``shipyard.services.profiling`` and rendered by ``shipyard.services.reports``; this module
only holds the records and their JSON form.

JSON never carries NaN or infinity as numbers: a non-finite float is written as the string
``"NaN"``, ``"Infinity"`` or ``"-Infinity"`` and read back as the float, so ``to_dict`` output
always passes ``json.dumps(..., allow_nan=False)`` and ``from_dict`` round-trips it exactly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from shipyard.domain.numbers import float_from_json, json_float
from shipyard.errors import InvalidArgumentError

__all__ = [
    "KINDS",
    "QUANTILES",
    "ColumnProfile",
    "ColumnSchema",
    "Histogram",
    "Kind",
    "Scalar",
    "TableProfile",
]

Kind = Literal["numeric", "categorical", "boolean", "temporal", "other"]
KINDS: tuple[Kind, ...] = ("numeric", "categorical", "boolean", "temporal", "other")

# Quantile keys and the probabilities they stand for, in the order reports show them.
QUANTILES: tuple[tuple[str, float], ...] = (
    ("p01", 0.01),
    ("p05", 0.05),
    ("p25", 0.25),
    ("p50", 0.50),
    ("p75", 0.75),
    ("p95", 0.95),
    ("p99", 0.99),
)

# A column's min or max: a number for numeric columns, an ISO 8601 string for temporal ones.
Scalar = int | float | str | None


def _optional_float(value: object) -> float | None:
    return None if value is None else float_from_json(value)


def _scalar_out(value: Scalar) -> int | float | str | None:
    return json_float(value) if isinstance(value, float) else value


def _scalar_in(value: object, kind: Kind) -> Scalar:
    # A numeric column's bound is never a string, so a string there is a non-finite float.
    if kind == "numeric" and isinstance(value, str):
        return float_from_json(value)
    if value is None or isinstance(value, str | float):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise InvalidArgumentError(f"expected a number, a string or null, got {value!r}")


@dataclass(frozen=True, slots=True)
class ColumnSchema:
    """One column of a table's schema.

    Attributes:
        name: the column name, as written in the data.
        type: the Arrow type, as Arrow prints it (``int64``, ``timestamp[us, tz=UTC]``).
        nullable: whether the schema allows nulls.
    """

    name: str
    type: str
    nullable: bool = True

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {"name": self.name, "type": self.type, "nullable": self.nullable}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ColumnSchema:
        """Rebuild a column schema from ``to_dict`` output.

        Args:
            data: the mapping ``to_dict`` returned (or its JSON round trip).

        Returns:
            The column schema.
        """
        return cls(name=str(data["name"]), type=str(data["type"]), nullable=bool(data["nullable"]))


@dataclass(frozen=True, slots=True)
class Histogram:
    """Equal-width bins: ``counts[i]`` values fall in ``[edges[i], edges[i + 1])``.

    The last bin also holds its right edge. A constant column has one bin whose two edges are
    equal.

    Raises:
        InvalidArgumentError: if there is not exactly one more edge than counts.
    """

    edges: tuple[float, ...]
    counts: tuple[int, ...]

    def __post_init__(self) -> None:
        if len(self.edges) != len(self.counts) + 1 or not self.counts:
            raise InvalidArgumentError(
                f"a histogram needs one more edge than counts and at least one bin, "
                f"got {len(self.edges)} edges and {len(self.counts)} counts"
            )

    @property
    def total(self) -> int:
        """How many values the bins hold."""
        return sum(self.counts)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {"edges": [json_float(e) for e in self.edges], "counts": list(self.counts)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Histogram:
        """Rebuild a histogram from ``to_dict`` output.

        Args:
            data: the mapping ``to_dict`` returned (or its JSON round trip).

        Returns:
            The histogram.
        """
        return cls(
            edges=tuple(float_from_json(e) for e in data["edges"]),
            counts=tuple(int(c) for c in data["counts"]),
        )


@dataclass(frozen=True, slots=True)
class ColumnProfile:
    """The statistics of one column.

    Attributes:
        name: the column name.
        type: the Arrow type string.
        kind: ``numeric``, ``categorical``, ``boolean``, ``temporal`` or ``other``.
        count: rows in the table.
        nulls: rows where the column is null.
        na_share: (nulls + NaN) / count; 0.0 for an empty table.
        distinct: distinct non-null values (NaN counts as one value).
        distinct_approx: True when ``distinct`` (and the quantiles) are estimates.
        min: smallest finite value (numbers) or earliest (ISO string); None if none.
        max: largest finite value or latest; None if none.
        mean: mean of the finite values (numeric only).
        std: sample standard deviation of the finite values (numeric only; None under 2).
        quantiles: ``p01`` ... ``p99`` of the finite values (numeric only, else empty).
        histogram: 20 equal-width bins of the finite values (numeric only).
        top: up to 20 (value, count) pairs, most frequent first (categorical, boolean).
        nan_count: NaN values (float columns).
        inf_count: +/-infinity values (float columns).
    """

    name: str
    type: str
    kind: Kind
    count: int
    nulls: int
    na_share: float
    distinct: int
    distinct_approx: bool = False
    min: Scalar = None
    max: Scalar = None
    mean: float | None = None
    std: float | None = None
    quantiles: dict[str, float] = field(default_factory=dict)
    histogram: Histogram | None = None
    top: tuple[tuple[str, int], ...] = ()
    nan_count: int = 0
    inf_count: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise InvalidArgumentError(
                f"unknown column kind {self.kind!r}; known: {', '.join(KINDS)}"
            )

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "name": self.name,
            "type": self.type,
            "kind": self.kind,
            "count": self.count,
            "nulls": self.nulls,
            "na_share": json_float(self.na_share),
            "distinct": self.distinct,
            "distinct_approx": self.distinct_approx,
            "min": _scalar_out(self.min),
            "max": _scalar_out(self.max),
            "mean": None if self.mean is None else json_float(self.mean),
            "std": None if self.std is None else json_float(self.std),
            "quantiles": {k: json_float(v) for k, v in self.quantiles.items()},
            "histogram": None if self.histogram is None else self.histogram.to_dict(),
            "top": [[value, n] for value, n in self.top],
            "nan_count": self.nan_count,
            "inf_count": self.inf_count,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ColumnProfile:
        """Rebuild a column profile from ``to_dict`` output.

        Args:
            data: the mapping ``to_dict`` returned (or its JSON round trip).

        Returns:
            The column profile.

        Raises:
            InvalidArgumentError: if the kind is unknown or a number is not a number.
        """
        kind = str(data["kind"])
        if kind not in KINDS:
            raise InvalidArgumentError(f"unknown column kind {kind!r}; known: {', '.join(KINDS)}")
        checked: Kind = kind
        histogram = data.get("histogram")
        return cls(
            name=str(data["name"]),
            type=str(data["type"]),
            kind=checked,
            count=int(data["count"]),
            nulls=int(data["nulls"]),
            na_share=float_from_json(data["na_share"]),
            distinct=int(data["distinct"]),
            distinct_approx=bool(data.get("distinct_approx", False)),
            min=_scalar_in(data.get("min"), checked),
            max=_scalar_in(data.get("max"), checked),
            mean=_optional_float(data.get("mean")),
            std=_optional_float(data.get("std")),
            quantiles={
                str(k): float_from_json(v) for k, v in (data.get("quantiles") or {}).items()
            },
            histogram=None if histogram is None else Histogram.from_dict(histogram),
            top=tuple((str(value), int(n)) for value, n in data.get("top") or ()),
            nan_count=int(data.get("nan_count", 0)),
            inf_count=int(data.get("inf_count", 0)),
        )


@dataclass(frozen=True, slots=True)
class TableProfile:
    """A table's schema and the profile of each of its columns, in schema order.

    Attributes:
        rows: rows in the table.
        columns: one profile per column.
        schema: one entry per column.
        sample_rows: how many rows the estimated statistics (quantiles, histograms, top
            values, distinct counts) come from, when the table was too big to read them all;
            None when every statistic is exact.
    """

    rows: int
    columns: tuple[ColumnProfile, ...]
    schema: tuple[ColumnSchema, ...]
    sample_rows: int | None = None

    def column(self, name: str) -> ColumnProfile:
        """The profile of one column.

        Args:
            name: the column name.

        Returns:
            Its profile.

        Raises:
            KeyError: if the table has no such column.
        """
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "rows": self.rows,
            "schema": [c.to_dict() for c in self.schema],
            "columns": [c.to_dict() for c in self.columns],
            "sample_rows": self.sample_rows,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TableProfile:
        """Rebuild a table profile from ``to_dict`` output.

        Args:
            data: the mapping ``to_dict`` returned (or its JSON round trip).

        Returns:
            The table profile.
        """
        return cls(
            rows=int(data["rows"]),
            columns=tuple(ColumnProfile.from_dict(c) for c in data["columns"]),
            schema=tuple(ColumnSchema.from_dict(c) for c in data["schema"]),
            sample_rows=None if data.get("sample_rows") is None else int(data["sample_rows"]),
        )
