"""Drift, data quality and model quality: the tests, their rules and their results.

The rules follow Evidently's defaults (0.7), so that the same data gives the same detections:

====================  =====================  ========================  ===================
column                reference <= 1000 rows  reference > 1000 rows     drifted when
====================  =====================  ========================  ===================
numeric, > 5 values   ``ks`` (two-sample      ``wasserstein`` (normed   p <= 0.05 /
                      Kolmogorov-Smirnov)     by the reference std)     distance >= 0.1
numeric, <= 5 values  ``chisquare`` (``z``    ``jensenshannon``         p < 0.05 /
                      for two values)                                   distance >= 0.1
categorical           ``chisquare`` (``z``    ``jensenshannon``         p < 0.05 /
                      for two values)                                   distance >= 0.1
====================  =====================  ========================  ===================

"values" counts the distinct values of reference and current together; integer columns with
at most 10 distinct reference values are categorical. ``psi`` (population stability index,
drifted when >= 0.1) can be chosen for any column. The table drifts when the share of drifted
feature columns is at least ``drift_share`` (0.5). NaN and infinities are left out of every
test, as Evidently does.

This module is pure: records and rules, no I/O. ``shipyard.services.drift`` computes them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from shipyard.domain.numbers import float_from_json, json_float
from shipyard.domain.predictions import BASE_COLUMNS, LABEL, PREDICTION
from shipyard.errors import InvalidArgumentError

__all__ = [
    "DEFAULT_THRESHOLDS",
    "METHODS",
    "P_VALUE_METHODS",
    "ColumnDrift",
    "ColumnQuality",
    "ColumnSummary",
    "DataQuality",
    "DriftOptions",
    "DriftReport",
    "Method",
    "MetricCheck",
    "ModelQuality",
    "SchemaChange",
    "choose_method",
    "is_drifted",
]

Method = Literal["ks", "wasserstein", "chisquare", "z", "jensenshannon", "psi"]
METHODS: tuple[Method, ...] = ("ks", "wasserstein", "chisquare", "z", "jensenshannon", "psi")
P_VALUE_METHODS = frozenset({"ks", "chisquare", "z"})  # drifted when the p-value is small
DEFAULT_THRESHOLDS: Mapping[str, float] = MappingProxyType(
    {"ks": 0.05, "chisquare": 0.05, "z": 0.05, "wasserstein": 0.1, "jensenshannon": 0.1, "psi": 0.1}
)
_NUMERIC_ONLY = frozenset({"ks", "wasserstein"})


def _check_method(method: str | None, where: str) -> None:
    if method is not None and method not in METHODS:
        raise InvalidArgumentError(
            f"unknown drift method {method!r} for {where}; use one of {', '.join(METHODS)}"
        )


@dataclass(frozen=True, slots=True)
class DriftOptions:
    """How drift is tested: methods, thresholds and which columns.

    Attributes:
        drift_share: the table drifts when at least this share of feature columns drift.
        small_sample: reference sizes up to this use p-value tests (``ks``, ``chisquare``).
        method: one method for every column (None: chosen by type and size).
        num_method: the method for numeric columns.
        cat_method: the method for categorical columns.
        per_column_method: column -> method.
        thresholds: method -> threshold, over ``DEFAULT_THRESHOLDS``.
        per_column_threshold: column -> threshold.
        columns: the feature columns to test (None: every column both tables have).
        ignore: columns never tested (default: the prediction log's own columns and the label).
        ignore_prefixes: columns starting with one of these are never tested (default: the
            prediction log's ``probability_`` and ``output_`` columns).
        prediction: the prediction column: tested like a feature, reported apart and left out
            of the share.
        label: the ground-truth column, used for model quality, never tested for drift.
        missing_increase: a column's missing share may grow by this much (absolute) before
            data quality reports it.
        integer_cardinality_limit: integer columns with at most this many distinct reference
            values are categorical.

    Raises:
        InvalidArgumentError: for an unknown method or a share outside (0, 1].
    """

    drift_share: float = 0.5
    small_sample: int = 1000
    method: Method | None = None
    num_method: Method | None = None
    cat_method: Method | None = None
    per_column_method: Mapping[str, Method] = field(default_factory=dict)
    thresholds: Mapping[str, float] = field(default_factory=dict)
    per_column_threshold: Mapping[str, float] = field(default_factory=dict)
    columns: tuple[str, ...] | None = None
    ignore: tuple[str, ...] = (*BASE_COLUMNS, LABEL)
    ignore_prefixes: tuple[str, ...] = ("probability_", "output_")
    prediction: str | None = PREDICTION
    label: str = LABEL
    missing_increase: float = 0.05
    integer_cardinality_limit: int = 10

    def __post_init__(self) -> None:
        if not 0 < self.drift_share <= 1:
            raise InvalidArgumentError(f"drift_share must be in (0, 1], got {self.drift_share}")
        for where, method in (("all", self.method), ("numeric", self.num_method)):
            _check_method(method, where)
        _check_method(self.cat_method, "categorical")
        if self.cat_method in _NUMERIC_ONLY:
            raise InvalidArgumentError(f"{self.cat_method} only tests numeric columns")
        for column, chosen in self.per_column_method.items():
            _check_method(chosen, f"column {column!r}")
        for name in self.thresholds:
            _check_method(name, "thresholds")

    def tested(self, column: str) -> bool:
        """Whether a column is a feature to test (not ignored, not the label)."""
        if column in self.ignore or column == self.label or column.startswith(self.ignore_prefixes):
            return False
        return self.columns is None or column in self.columns or column == self.prediction

    def threshold(self, method: Method, column: str) -> float:
        """The threshold a column's test is judged by."""
        if column in self.per_column_threshold:
            return float(self.per_column_threshold[column])
        return float(self.thresholds.get(method, DEFAULT_THRESHOLDS[method]))

    def chosen(self, column: str, kind: str) -> Method | None:
        """The method set for a column by the options, if any."""
        if column in self.per_column_method:
            return self.per_column_method[column]
        if self.method is not None:
            return self.method
        return self.num_method if kind == "numeric" else self.cat_method

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "drift_share": self.drift_share,
            "small_sample": self.small_sample,
            "method": self.method,
            "num_method": self.num_method,
            "cat_method": self.cat_method,
            "per_column_method": dict(self.per_column_method),
            "thresholds": {**DEFAULT_THRESHOLDS, **self.thresholds},
            "per_column_threshold": dict(self.per_column_threshold),
            "columns": None if self.columns is None else list(self.columns),
            "ignore": list(self.ignore),
            "ignore_prefixes": list(self.ignore_prefixes),
            "prediction": self.prediction,
            "label": self.label,
            "missing_increase": self.missing_increase,
            "integer_cardinality_limit": self.integer_cardinality_limit,
        }


def choose_method(kind: str, reference_rows: int, values: int, small_sample: int = 1000) -> Method:
    """Evidently's default test for a column.

    Args:
        kind: ``numeric`` or ``categorical``.
        reference_rows: finite (non-null, non-NaN) reference values.
        values: distinct values of reference and current together (any number above 5 for
            numeric columns with many values).
        small_sample: reference sizes up to this get p-value tests.

    Returns:
        The method.
    """
    if reference_rows <= small_sample:
        if kind == "numeric" and values > 5:
            return "ks"
        return "chisquare" if values > 2 else "z"
    if kind == "numeric" and values > 5:
        return "wasserstein"
    return "jensenshannon"


def is_drifted(method: Method, statistic: float, p_value: float | None, threshold: float) -> bool:
    """Whether a test's result is a drift, by Evidently's rule for that test."""
    if method == "ks":
        return p_value is not None and p_value <= threshold
    if method in P_VALUE_METHODS:
        return p_value is not None and p_value < threshold
    return statistic >= threshold


def _opt(value: float | None) -> float | str | None:
    return None if value is None else json_float(value)


def _opt_in(value: object) -> float | None:
    return None if value is None else float_from_json(value)


@dataclass(frozen=True, slots=True)
class ColumnSummary:
    """One side of a column, for plots: a histogram on edges both sides share, or top values.

    Attributes:
        count: rows.
        missing: nulls, NaN and infinities.
        edges: histogram edges (numeric; the same for reference and current).
        counts: values per bin (numeric), or per value of ``values`` (categorical).
        values: the categories shown (categorical; the same for reference and current).
        other: values outside ``values`` (categorical).
        mean: mean of the finite values (numeric).
        std: population standard deviation (numeric).
        min: smallest finite value (numeric).
        max: largest finite value (numeric).
    """

    count: int
    missing: int
    edges: tuple[float, ...] = ()
    counts: tuple[float, ...] = ()
    values: tuple[str, ...] = ()
    other: float = 0.0
    mean: float | None = None
    std: float | None = None
    min: float | None = None
    max: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "count": self.count,
            "missing": self.missing,
            "edges": [json_float(e) for e in self.edges],
            "counts": [json_float(c) for c in self.counts],
            "values": list(self.values),
            "other": json_float(self.other),
            "mean": _opt(self.mean),
            "std": _opt(self.std),
            "min": _opt(self.min),
            "max": _opt(self.max),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ColumnSummary:
        """Rebuild a summary from ``to_dict`` output."""
        return cls(
            count=int(data["count"]),
            missing=int(data["missing"]),
            edges=tuple(float_from_json(e) for e in data.get("edges", ())),
            counts=tuple(float_from_json(c) for c in data.get("counts", ())),
            values=tuple(str(v) for v in data.get("values", ())),
            other=float_from_json(data.get("other", 0.0)),
            mean=_opt_in(data.get("mean")),
            std=_opt_in(data.get("std")),
            min=_opt_in(data.get("min")),
            max=_opt_in(data.get("max")),
        )


@dataclass(frozen=True, slots=True)
class ColumnDrift:
    """The drift test of one column.

    Attributes:
        name: the column.
        kind: ``numeric`` or ``categorical`` (as tested).
        method: the test, or None when the column could not be tested (see ``note``).
        statistic: the distance (``wasserstein``, ``jensenshannon``, ``psi``) or the test
            statistic (``ks``: D, ``chisquare``: chi-squared, ``z``: z).
        p_value: the p-value of ``ks``, ``chisquare`` and ``z``; None for distances.
        threshold: what the result is judged by.
        drifted: the verdict.
        approximate: True when computed from a sketch of a large table rather than the values.
        reference: the reference side, for plots.
        current: the current side, for plots.
        note: why a column was not tested, or a caveat.
    """

    name: str
    kind: str
    method: Method | None
    statistic: float | None
    p_value: float | None
    threshold: float | None
    drifted: bool
    approximate: bool
    reference: ColumnSummary
    current: ColumnSummary
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "name": self.name,
            "kind": self.kind,
            "method": self.method,
            "statistic": _opt(self.statistic),
            "p_value": _opt(self.p_value),
            "threshold": _opt(self.threshold),
            "drifted": self.drifted,
            "approximate": self.approximate,
            "reference": self.reference.to_dict(),
            "current": self.current.to_dict(),
            "note": self.note,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ColumnDrift:
        """Rebuild a column result from ``to_dict`` output."""
        method = data.get("method")
        _check_method(method, "a stored result")
        return cls(
            name=str(data["name"]),
            kind=str(data["kind"]),
            method=method,
            statistic=_opt_in(data.get("statistic")),
            p_value=_opt_in(data.get("p_value")),
            threshold=_opt_in(data.get("threshold")),
            drifted=bool(data["drifted"]),
            approximate=bool(data.get("approximate", False)),
            reference=ColumnSummary.from_dict(data["reference"]),
            current=ColumnSummary.from_dict(data["current"]),
            note=str(data.get("note", "")),
        )


@dataclass(frozen=True, slots=True)
class SchemaChange:
    """A column added, missing or retyped in the current table."""

    name: str
    change: Literal["new", "missing", "retyped"]
    reference_type: str | None
    current_type: str | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "name": self.name,
            "change": self.change,
            "reference_type": self.reference_type,
            "current_type": self.current_type,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SchemaChange:
        """Rebuild a schema change from ``to_dict`` output."""
        change = str(data["change"])
        if change not in ("new", "missing", "retyped"):
            raise InvalidArgumentError(f"unknown schema change {change!r}")
        return cls(
            name=str(data["name"]),
            change=change,  # type: ignore[arg-type]
            reference_type=data.get("reference_type"),
            current_type=data.get("current_type"),
        )


@dataclass(frozen=True, slots=True)
class ColumnQuality:
    """Data quality of one column in the current table, against the reference.

    Attributes:
        name: the column.
        missing_reference: share of nulls, NaN and infinities in the reference.
        missing_current: the same share in the current table.
        missing_increased: True when the current share exceeds the reference's by more
            than the allowed increase.
        below_range: finite current values under the reference minimum (numeric).
        above_range: finite current values over the reference maximum (numeric).
        unseen: current values of categories the reference never had (categorical).
        unseen_values: a few of those categories, most frequent first.
    """

    name: str
    missing_reference: float
    missing_current: float
    missing_increased: bool
    below_range: int = 0
    above_range: int = 0
    unseen: int = 0
    unseen_values: tuple[str, ...] = ()

    @property
    def out_of_range(self) -> int:
        """Current values outside the reference's [min, max]."""
        return self.below_range + self.above_range

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "name": self.name,
            "missing_reference": json_float(self.missing_reference),
            "missing_current": json_float(self.missing_current),
            "missing_increased": self.missing_increased,
            "below_range": self.below_range,
            "above_range": self.above_range,
            "unseen": self.unseen,
            "unseen_values": list(self.unseen_values),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ColumnQuality:
        """Rebuild a column's quality from ``to_dict`` output."""
        return cls(
            name=str(data["name"]),
            missing_reference=float_from_json(data["missing_reference"]),
            missing_current=float_from_json(data["missing_current"]),
            missing_increased=bool(data["missing_increased"]),
            below_range=int(data.get("below_range", 0)),
            above_range=int(data.get("above_range", 0)),
            unseen=int(data.get("unseen", 0)),
            unseen_values=tuple(str(v) for v in data.get("unseen_values", ())),
        )


@dataclass(frozen=True, slots=True)
class DataQuality:
    """Schema changes and per-column quality of the current table.

    Attributes:
        schema: columns new, missing or retyped in the current table.
        columns: per shared column quality.
        issues: one human-readable line per problem found.
    """

    schema: tuple[SchemaChange, ...] = ()
    columns: tuple[ColumnQuality, ...] = ()
    issues: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """True when no problem was found."""
        return not self.issues

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "ok": self.ok,
            "schema": [c.to_dict() for c in self.schema],
            "columns": [c.to_dict() for c in self.columns],
            "issues": list(self.issues),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DataQuality:
        """Rebuild data quality findings from ``to_dict`` output."""
        return cls(
            schema=tuple(SchemaChange.from_dict(c) for c in data.get("schema", ())),
            columns=tuple(ColumnQuality.from_dict(c) for c in data.get("columns", ())),
            issues=tuple(str(i) for i in data.get("issues", ())),
        )


@dataclass(frozen=True, slots=True)
class MetricCheck:
    """A model metric against its baseline.

    Attributes:
        name: ``accuracy``, ``f1``, ``roc_auc``, ``rmse``, ``mae``…
        value: the current value.
        baseline: the baseline (the training run's value), if given.
        higher_is_better: the metric's direction.
        degraded: True when the value is worse than the baseline by more than the tolerance.
    """

    name: str
    value: float
    baseline: float | None
    higher_is_better: bool
    degraded: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "name": self.name,
            "value": json_float(self.value),
            "baseline": _opt(self.baseline),
            "higher_is_better": self.higher_is_better,
            "degraded": self.degraded,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MetricCheck:
        """Rebuild a metric check from ``to_dict`` output."""
        return cls(
            name=str(data["name"]),
            value=float_from_json(data["value"]),
            baseline=_opt_in(data.get("baseline")),
            higher_is_better=bool(data["higher_is_better"]),
            degraded=bool(data["degraded"]),
        )


@dataclass(frozen=True, slots=True)
class ModelQuality:
    """Model quality on labelled rows, compared with a baseline.

    Attributes:
        task: ``classification`` or ``regression``.
        rows: labelled rows used.
        metrics: one check per metric.
        tolerance: the relative worsening allowed before a metric counts as degraded.
    """

    task: Literal["classification", "regression"]
    rows: int
    metrics: tuple[MetricCheck, ...]
    tolerance: float

    @property
    def degraded(self) -> bool:
        """True when any metric degraded."""
        return any(m.degraded for m in self.metrics)

    def value(self, name: str) -> float:
        """A metric's value.

        Raises:
            KeyError: if the metric was not computed.
        """
        for metric in self.metrics:
            if metric.name == name:
                return metric.value
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "task": self.task,
            "rows": self.rows,
            "tolerance": self.tolerance,
            "degraded": self.degraded,
            "metrics": [m.to_dict() for m in self.metrics],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelQuality:
        """Rebuild model quality from ``to_dict`` output."""
        task = str(data["task"])
        if task not in ("classification", "regression"):
            raise InvalidArgumentError(f"unknown task {task!r}")
        return cls(
            task=task,  # type: ignore[arg-type]
            rows=int(data["rows"]),
            metrics=tuple(MetricCheck.from_dict(m) for m in data["metrics"]),
            tolerance=float(data["tolerance"]),
        )


@dataclass(frozen=True, slots=True)
class DriftReport:
    """Everything a monitor run finds: drift per column, the table's verdict, data quality.

    Attributes:
        reference: what the reference was (``customers@3``, ``table``).
        current: what the current window was.
        reference_rows: reference rows.
        current_rows: current rows.
        status: ``ok``, or ``no_data`` when the current window is empty (nothing tested).
        columns: per feature column results, in reference column order.
        prediction: the prediction column's result, when there is one.
        drift_share: the share threshold.
        drifted_share: drifted feature columns / tested feature columns.
        dataset_drift: True when ``drifted_share >= drift_share``.
        quality: the data quality findings.
        model: model quality, when labels and predictions were given.
        options: the options used (``DriftOptions.to_dict``).
    """

    reference: str
    current: str
    reference_rows: int
    current_rows: int
    status: Literal["ok", "no_data"]
    columns: tuple[ColumnDrift, ...]
    prediction: ColumnDrift | None
    drift_share: float
    drifted_share: float
    dataset_drift: bool
    quality: DataQuality
    model: ModelQuality | None = None
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def drifted(self) -> tuple[str, ...]:
        """Names of the drifted feature columns."""
        return tuple(c.name for c in self.columns if c.drifted)

    def column(self, name: str) -> ColumnDrift:
        """The result of one column (the prediction column too).

        Raises:
            KeyError: if the column was not tested.
        """
        found = [c for c in self.columns if c.name == name]
        if self.prediction is not None and self.prediction.name == name:
            found.append(self.prediction)
        if not found:
            raise KeyError(name)
        return found[0]

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (passes ``json.dumps(..., allow_nan=False)``)."""
        return {
            "reference": self.reference,
            "current": self.current,
            "reference_rows": self.reference_rows,
            "current_rows": self.current_rows,
            "status": self.status,
            "drift_share": self.drift_share,
            "drifted_share": json_float(self.drifted_share),
            "dataset_drift": self.dataset_drift,
            "drifted": list(self.drifted),
            "columns": [c.to_dict() for c in self.columns],
            "prediction": None if self.prediction is None else self.prediction.to_dict(),
            "quality": self.quality.to_dict(),
            "model": None if self.model is None else self.model.to_dict(),
            "options": dict(self.options),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DriftReport:
        """Rebuild a report from ``to_dict`` output (or its JSON round trip).

        Raises:
            InvalidArgumentError: if the status, a method or a number is malformed.
        """
        status = str(data["status"])
        if status not in ("ok", "no_data"):
            raise InvalidArgumentError(f"unknown report status {status!r}")
        prediction = data.get("prediction")
        model = data.get("model")
        return cls(
            reference=str(data["reference"]),
            current=str(data["current"]),
            reference_rows=int(data["reference_rows"]),
            current_rows=int(data["current_rows"]),
            status=status,  # type: ignore[arg-type]
            columns=tuple(ColumnDrift.from_dict(c) for c in data["columns"]),
            prediction=None if prediction is None else ColumnDrift.from_dict(prediction),
            drift_share=float(data["drift_share"]),
            drifted_share=float_from_json(data["drifted_share"]),
            dataset_drift=bool(data["dataset_drift"]),
            quality=DataQuality.from_dict(data["quality"]),
            model=None if model is None else ModelQuality.from_dict(model),
            options=dict(data.get("options") or {}),
        )
