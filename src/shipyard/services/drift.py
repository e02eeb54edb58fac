"""Drift, data quality and model quality of a current window against a reference.

``compare(reference, current)`` sketches both tables (``shipyard.services.drift_sketch``),
the current one counted at the reference's points, and tests each feature column with the
rules of ``shipyard.domain.drift`` (Evidently's defaults). The reference may be a dataset
version (``DriftService``: its sketch is computed once and cached by content digest), any
Arrow/pandas/polars table, or a sketch; the current window may be a table, a dataset version
or DuckDB-readable files such as the prediction log's Parquet batches.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from shipyard.domain.drift import (
    ColumnDrift,
    ColumnQuality,
    ColumnSummary,
    DataQuality,
    DriftOptions,
    DriftReport,
    Method,
    ModelQuality,
    SchemaChange,
    choose_method,
    is_drifted,
)
from shipyard.domain.drift_sketches import (
    GRID_BINS,
    SKETCH_FORMAT,
    CategoricalSketch,
    ColumnSketch,
    NumericSketch,
    TableSketch,
)
from shipyard.errors import InvalidArgumentError
from shipyard.services import drift_stats as st
from shipyard.services.drift_sketch import (
    EXACT_LIMIT,
    TableSource,
    column_kind,
    sketch_table,
    table_source,
)

__all__ = ["CACHED_EXACT_LIMIT", "DriftService", "column_drift", "compare", "compare_sketches"]

CACHED_EXACT_LIMIT = 2_048  # a cached reference keeps columns of fewer values exactly
PLOT_BINS = 20
PLOT_VALUES = 20
_OTHER = "(other)"  # the bucket of values a sketch did not keep


# -- the tests ----------------------------------------------------------------------------------


def _kind_of(sketch: ColumnSketch, options: DriftOptions) -> str:
    if isinstance(sketch, NumericSketch):
        few = sketch.exact and len(sketch.points) <= options.integer_cardinality_limit
        return "categorical" if sketch.integer and few else "numeric"
    return "categorical"


def _counts(sketch: ColumnSketch, keys_from: ColumnSketch | None = None) -> dict[object, float]:
    """Value -> count; values a sketch did not keep go to one ``(other)`` bucket."""
    if isinstance(sketch, CategoricalSketch):
        found: dict[object, float] = {k: float(n) for k, n in sketch.top}
        if sketch.other:
            found[_OTHER] = float(sketch.other)
        return found
    if sketch.exact:
        return {k: float(n) for k, n in sketch.value_counts().items()}
    # counted at the reference's points: exact counts there, the rest between them
    at = {p: float(u - b) for p, b, u in zip(sketch.points, sketch.below, sketch.upto, strict=True)}
    wanted = set(keys_from.points) if isinstance(keys_from, NumericSketch) else set(at)
    found = {p: n for p, n in at.items() if p in wanted and n}
    rest = sketch.finite - sum(found.values())
    if rest > 0:
        found[_OTHER] = rest
    return found


def _values(ref: ColumnSketch, cur: ColumnSketch, kind: str) -> int:
    if kind == "numeric":
        assert isinstance(ref, NumericSketch) and isinstance(cur, NumericSketch)
        if ref.exact and cur.exact:
            return len(set(ref.points) | set(cur.points))
        return 6  # more than five: a continuous column
    return len(_counts(ref).keys() | _counts(cur, ref).keys())


def _run_test(
    method: Method, ref: ColumnSketch, cur: ColumnSketch, kind: str
) -> tuple[float, float | None]:
    """(statistic, p-value) of one test."""
    if isinstance(ref, NumericSketch) and isinstance(cur, NumericSketch):
        if method == "ks":
            return st.ks_test(ref, cur)
        if method == "wasserstein":
            return st.wasserstein_normed(ref, cur)[0], None
        many = not ref.exact or len(ref.points) > 20  # Evidently bins above 20 values
        if kind == "numeric" and many and method in ("jensenshannon", "psi"):
            return _binned(method, ref, cur)
    elif method in ("ks", "wasserstein"):
        raise InvalidArgumentError(f"{method} only tests numeric columns")
    reference, current = _counts(ref), _counts(cur, ref)
    if method == "chisquare":
        return st.chisquare_test(reference, current)
    if method == "z":
        return st.z_test(reference, current)
    ref_share, cur_share = st.percents(reference, current, fill=method == "psi")
    if method == "psi":
        return st.psi(ref_share, cur_share), None
    return st.jensenshannon_distance(ref_share, cur_share), None


def _binned(method: Method, ref: NumericSketch, cur: NumericSketch) -> tuple[float, None]:
    """Jensen-Shannon or PSI over Sturges bins of both ranges (Evidently's numeric binning)."""
    edges = st.sturges_edges(min(ref.min, cur.min), max(ref.max, cur.max), ref.finite + cur.finite)
    ref_share = st.histogram(ref, edges) / ref.finite
    cur_share = st.histogram(cur, edges) / cur.finite
    if method == "psi":
        return st.psi(st.fill_zeroes(ref_share), st.fill_zeroes(cur_share)), None
    return st.jensenshannon_distance(ref_share, cur_share), None


def _summaries(ref: ColumnSketch, cur: ColumnSketch) -> tuple[ColumnSummary, ColumnSummary]:
    """The two sides for plots: histograms on shared edges, or the same top values."""
    if isinstance(ref, NumericSketch) and isinstance(cur, NumericSketch):
        lows = [v for v in (ref.min, cur.min) if not math.isnan(v)]
        highs = [v for v in (ref.max, cur.max) if not math.isnan(v)]
        edges = np.empty(0)
        if lows:
            low, high = min(lows), max(highs)
            if low == high:
                low, high = low - 0.5, high + 0.5
            edges = np.linspace(low, high, PLOT_BINS + 1)

        def numeric(s: NumericSketch) -> ColumnSummary:
            counts = st.histogram(s, edges) if s.finite and len(edges) else np.zeros(PLOT_BINS)
            return ColumnSummary(
                count=s.count,
                missing=s.count - s.finite,
                edges=tuple(edges.tolist()),
                counts=tuple(float(round(c, 6)) for c in counts) if len(edges) else (),
                mean=None if not s.finite else s.mean,
                std=None if not s.finite else s.std,
                min=None if not s.finite else s.min,
                max=None if not s.finite else s.max,
            )

        return numeric(ref), numeric(cur)
    a, b = _counts(ref), _counts(cur, ref)
    shown = sorted(a.keys() | b.keys(), key=lambda k: (-(a.get(k, 0) + b.get(k, 0)), str(k)))
    shown = [k for k in shown if k != _OTHER][:PLOT_VALUES]

    def categorical(s: ColumnSketch, found: dict[object, float]) -> ColumnSummary:
        counts = tuple(found.get(k, 0.0) for k in shown)
        return ColumnSummary(
            count=s.count,
            missing=s.count - s.finite,
            counts=counts,
            values=tuple(_label(k) for k in shown),
            other=float(s.finite - sum(counts)),
        )

    return categorical(ref, a), categorical(cur, b)


def _label(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _untested(name: str, kind: str, ref: ColumnSketch, cur: ColumnSketch, note: str) -> ColumnDrift:
    if type(ref) is type(cur):
        reference, current = _summaries(ref, cur)
    else:
        reference = ColumnSummary(count=ref.count, missing=ref.count - ref.finite)
        current = ColumnSummary(count=cur.count, missing=cur.count - cur.finite)
    return ColumnDrift(name, kind, None, None, None, None, False, False, reference, current, note)


def column_drift(
    name: str, ref: ColumnSketch, cur: ColumnSketch, options: DriftOptions
) -> ColumnDrift:
    """Test one column's drift from its two sketches.

    Args:
        name: the column.
        ref: the reference sketch.
        cur: the current sketch (counted at the reference's points).
        options: methods and thresholds.

    Returns:
        The result; a column that cannot be tested (retyped, no values) has method None and
        a note saying why.
    """
    if isinstance(ref, NumericSketch) != isinstance(cur, NumericSketch):
        return _untested(name, "mixed", ref, cur, f"type changed: {ref.type} -> {cur.type}")
    kind = _kind_of(ref, options)
    if not ref.finite or not cur.finite:
        side = "reference" if not ref.finite else "current window"
        return _untested(name, kind, ref, cur, f"no values in the {side}: not tested")
    method = options.chosen(name, kind) or choose_method(
        kind, ref.finite, _values(ref, cur, kind), options.small_sample
    )
    if (
        kind == "categorical"
        and method in ("ks", "wasserstein")
        and not isinstance(ref, NumericSketch)
    ):
        return _untested(name, kind, ref, cur, f"{method} only tests numeric columns")
    statistic, p_value = _run_test(method, ref, cur, kind)
    threshold = options.threshold(method, name)
    approximate = any(
        (isinstance(s, NumericSketch) and not s.exact)
        or (isinstance(s, CategoricalSketch) and not s.complete)
        for s in (ref, cur)
    )
    if method == "ks" and isinstance(ref, NumericSketch) and ref.exact:
        approximate = False  # counted at every reference value: D is exact
    reference, current = _summaries(ref, cur)
    return ColumnDrift(
        name=name,
        kind=kind,
        method=method,
        statistic=statistic,
        p_value=p_value,
        threshold=threshold,
        drifted=is_drifted(method, statistic, p_value, threshold),
        approximate=approximate,
        reference=reference,
        current=current,
    )


# -- data quality -------------------------------------------------------------------------------


def _schema(ref: Mapping[str, str], cur: Mapping[str, str]) -> tuple[SchemaChange, ...]:
    changes = [SchemaChange(n, "missing", t, None) for n, t in ref.items() if n not in cur]
    changes += [SchemaChange(n, "new", None, t) for n, t in cur.items() if n not in ref]
    changes += [
        SchemaChange(n, "retyped", t, cur[n]) for n, t in ref.items() if n in cur and cur[n] != t
    ]
    return tuple(changes)


def _column_quality(
    name: str, ref: ColumnSketch, cur: ColumnSketch, options: DriftOptions
) -> ColumnQuality:
    share_ref = (ref.count - ref.finite) / ref.count if ref.count else 0.0
    share_cur = (cur.count - cur.finite) / cur.count if cur.count else 0.0
    below = above = unseen = 0
    unseen_values: tuple[str, ...] = ()
    if (
        isinstance(ref, NumericSketch)
        and isinstance(cur, NumericSketch)
        and ref.finite
        and cur.finite
    ):
        left, right = st.cdf(cur, np.array([ref.min, ref.max]))
        below = round(left[0] * cur.finite)
        above = cur.finite - round(right[1] * cur.finite)
    elif isinstance(ref, CategoricalSketch) and isinstance(cur, CategoricalSketch) and ref.complete:
        known = {k for k, _ in ref.top}
        new = [(k, n) for k, n in cur.top if k not in known]
        unseen = sum(n for _, n in new)
        unseen_values = tuple(k for k, _ in new[:5])
    return ColumnQuality(
        name=name,
        missing_reference=share_ref,
        missing_current=share_cur,
        missing_increased=share_cur - share_ref > options.missing_increase,
        below_range=below,
        above_range=above,
        unseen=unseen,
        unseen_values=unseen_values,
    )


def _issues(schema: tuple[SchemaChange, ...], columns: list[ColumnQuality]) -> tuple[str, ...]:
    issues = []
    for change in schema:
        if change.change == "missing":
            issues.append(f"column {change.name!r} is missing from the current window")
        elif change.change == "new":
            issues.append(f"column {change.name!r} is new: the reference does not have it")
        else:
            issues.append(
                f"column {change.name!r} changed type: {change.reference_type} -> "
                f"{change.current_type}"
            )
    for q in columns:
        if q.missing_increased:
            issues.append(
                f"column {q.name!r}: {q.missing_current:.1%} missing, "
                f"{q.missing_reference:.1%} in the reference"
            )
        if q.out_of_range:
            issues.append(
                f"column {q.name!r}: {q.out_of_range:,} values outside the reference range "
                f"({q.below_range:,} below its min, {q.above_range:,} above its max)"
            )
        if q.unseen:
            shown = ", ".join(repr(v) for v in q.unseen_values)
            issues.append(f"column {q.name!r}: {q.unseen:,} values of unseen categories ({shown})")
    return tuple(issues)


# -- the comparison -----------------------------------------------------------------------------


def compare_sketches(
    reference: TableSketch,
    current: TableSketch,
    options: DriftOptions | None = None,
    *,
    reference_label: str = "reference",
    current_label: str = "current",
    current_types: Mapping[str, str] | None = None,
    model: ModelQuality | None = None,
) -> DriftReport:
    """Test drift and data quality of a current sketch against a reference sketch.

    Args:
        reference: the reference sketch.
        current: the current sketch (counted at the reference's points).
        options: methods, thresholds and columns.
        reference_label: what the reference is, for the report.
        current_label: what the current window is.
        current_types: the current table's column types when ``current`` holds only some of
            its columns (for the schema check).
        model: model quality, to attach to the report.

    Returns:
        The report; ``status`` is ``no_data`` when the current window has no rows.
    """
    options = options or DriftOptions()
    types = dict(current_types) if current_types is not None else current.types
    schema = _schema(reference.types, types)
    if current.rows == 0:
        issues = ("the current window holds no rows: nothing was tested", *_issues(schema, []))
        return DriftReport(
            reference=reference_label,
            current=current_label,
            reference_rows=reference.rows,
            current_rows=0,
            status="no_data",
            columns=(),
            prediction=None,
            drift_share=options.drift_share,
            drifted_share=0.0,
            dataset_drift=False,
            quality=DataQuality(schema=schema, columns=(), issues=issues),
            model=model,
            options=options.to_dict(),
        )
    results: list[ColumnDrift] = []
    prediction: ColumnDrift | None = None
    quality: list[ColumnQuality] = []
    for name, ref in reference.columns.items():
        cur = current.columns.get(name)
        if cur is None or not options.tested(name):
            continue
        result = column_drift(name, ref, cur, options)
        if name == options.prediction:
            prediction = result
        else:
            results.append(result)
        if type(ref) is type(cur):
            quality.append(_column_quality(name, ref, cur, options))
    tested = [r for r in results if r.method is not None]
    share = sum(r.drifted for r in tested) / len(tested) if tested else 0.0
    return DriftReport(
        reference=reference_label,
        current=current_label,
        reference_rows=reference.rows,
        current_rows=current.rows,
        status="ok",
        columns=tuple(results),
        prediction=prediction,
        drift_share=options.drift_share,
        drifted_share=share,
        dataset_drift=bool(tested) and share >= options.drift_share,
        quality=DataQuality(schema=schema, columns=tuple(quality), issues=_issues(schema, quality)),
        model=model,
        options=options.to_dict(),
    )


def compare(
    reference: Any,
    current: Any,
    options: DriftOptions | None = None,
    *,
    reference_label: str | None = None,
    current_label: str | None = None,
    baseline: Mapping[str, float] | None = None,
    tolerance: float = 0.05,
) -> DriftReport:
    """Compare a current window with a reference: drift, data quality, model quality.

    Args:
        reference: a ``TableSketch``, a table (pyarrow, pandas, polars) or files.
        current: a table or files (the prediction log's Parquet files, for instance).
        options: methods, thresholds and columns.
        reference_label: what the reference is, for the report.
        current_label: what the current window is.
        baseline: the training run's metrics; with a ``label`` column in the current window
            and predictions, model quality is computed and judged against them.
        tolerance: the relative worsening of a metric that counts as degraded.

    Returns:
        The report.

    Raises:
        InvalidArgumentError: if the reference has no rows, or an input is not a table.

    Example:
        >>> report = compare(train_table, sy.predictions.read("churn"))  # doctest: +SKIP
        >>> report.dataset_drift, report.drifted  # doctest: +SKIP
        (True, ('age', 'plan'))
    """
    options = options or DriftOptions()
    if isinstance(reference, TableSketch):
        ref_sketch, ref_label = reference, reference_label or "reference"
    else:
        source = table_source(reference, label=reference_label or "reference")
        ref_sketch, ref_label = sketch_table(source), source.label
    if ref_sketch.rows == 0:
        raise InvalidArgumentError(
            f"the reference {ref_label} holds no rows: choose a reference with data"
        )
    cur = table_source(current, label=current_label or "current")
    wanted = [n for n in cur.schema.names if n in ref_sketch.columns and options.tested(n)]
    cur_sketch = sketch_table(cur, grid=ref_sketch, columns=wanted, exact_limit=EXACT_LIMIT)
    model = _model(cur, options, baseline, tolerance) if cur.rows else None
    types = {f.name: str(f.type) for f in cur.schema}
    return compare_sketches(
        ref_sketch,
        cur_sketch,
        options,
        reference_label=ref_label,
        current_label=cur.label,
        current_types=types,
        model=model,
    )


def _model(
    source: TableSource,
    options: DriftOptions,
    baseline: Mapping[str, float] | None,
    tolerance: float,
) -> ModelQuality | None:
    """Model quality from the current window's label and prediction columns, if it has both."""
    from shipyard.services.model_quality import model_quality

    names = source.schema.names
    if options.label not in names or options.prediction not in names:
        return None
    probabilities = sorted(n for n in names if n.startswith("probability_"))
    wanted = [options.label, options.prediction, *probabilities]
    import pyarrow as pa
    import pyarrow.compute as pc

    table = pa.concat_tables(pa.table(dict(batch)) for batch in source.batches(wanted))
    table = table.filter(pc.is_valid(table[options.label]))
    if not table.num_rows:
        return None
    # binary classification: the probability of the last class is the positive score
    scores = table[probabilities[-1]].to_numpy() if len(probabilities) in (1, 2) else None
    return model_quality(
        table[options.label].to_numpy(),
        table[options.prediction].to_numpy(),
        scores=scores,
        baseline=baseline,
        tolerance=tolerance,
    )


# -- dataset versions as references ------------------------------------------------------------


class DriftService:
    """Drift of any window against a dataset version, the version's sketch cached once.

    The stored profile is reused: row counts and the categorical columns whose profile lists
    every value come from it; numeric columns (whose profile has only a coarse histogram) and
    categoricals with more than 20 values are scanned once into a drift sketch, written under
    ``cache/drift/<content digest>.json`` so that later comparisons read no reference data.

    Args:
        datasets: the dataset service.
        cache: the folder for cached sketches.
    """

    def __init__(self, datasets: Any, cache: Path) -> None:
        self._datasets = datasets
        self._cache = cache

    def reference_sketch(self, reference: str) -> tuple[TableSketch, str]:
        """The drift sketch of a dataset version, computed once and cached.

        Args:
            reference: a dataset reference such as ``customers@3``.

        Returns:
            (sketch, the version's reference).

        Raises:
            DatasetNotFoundError: if there is no such version.
            InvalidArgumentError: if the version holds files, not a table.
        """
        version = self._datasets.resolve(reference)
        if version.format is None:
            raise InvalidArgumentError(f"{version.ref} holds files, not a table: no drift")
        digest = str(version.content_digest).replace(":", "-")
        path = self._cache / "drift" / f"{digest}-f{SKETCH_FORMAT}-g{GRID_BINS}.json"
        if path.exists():
            return TableSketch.from_dict(json.loads(path.read_text())), version.ref
        source = table_source(self._files(version), fmt=version.format, label=version.ref)
        sketch = _reuse_profile(self._datasets.profile(version), source)
        path.parent.mkdir(parents=True, exist_ok=True)
        scratch = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        scratch.write_text(json.dumps(sketch.to_dict(), allow_nan=False))
        scratch.replace(path)  # atomic: a reader never sees half a sketch
        return sketch, version.ref

    def _files(self, version: Any) -> list[Path]:
        folder = self._datasets.path(version)
        return [folder.joinpath(*e.path.split("/")) for e in self._datasets.manifest(version)]

    def compare(
        self,
        reference: Any,
        current: Any,
        options: DriftOptions | None = None,
        *,
        baseline: Mapping[str, float] | None = None,
        tolerance: float = 0.05,
    ) -> DriftReport:
        """Compare a window with a reference (see ``compare``); strings are dataset versions.

        Args:
            reference: a dataset reference (``customers@3``), a table or a sketch.
            current: a dataset reference, a table or files.
            options: methods, thresholds and columns.
            baseline: the training run's metrics, for model quality.
            tolerance: the relative worsening of a metric that counts as degraded.

        Returns:
            The report.
        """
        label = None
        if isinstance(reference, str):
            reference, label = self.reference_sketch(reference)
        current_label = None
        if isinstance(current, str) and "@" in current:
            version = self._datasets.resolve(current)
            current = table_source(self._files(version), fmt=version.format, label=version.ref)
            current_label = version.ref
        return compare(
            reference,
            current,
            options,
            reference_label=label,
            current_label=current_label,
            baseline=baseline,
            tolerance=tolerance,
        )


def _reuse_profile(profile: Any, source: TableSource) -> TableSketch:
    """Sketch a version, taking categorical columns the profile fully lists from the profile."""
    from shipyard.domain.profiles import TableProfile

    known: dict[str, ColumnSketch] = {}
    if isinstance(profile, TableProfile) and profile.rows == source.rows:
        for column in profile.columns:
            complete = not column.distinct_approx and len(column.top) == column.distinct
            short = all(len(v) < 199 for v, _ in column.top)  # profiles cut long values
            kind = column_kind(source.schema.field(column.name).type)
            if column.kind == "categorical" and kind == "categorical" and complete and short:
                known[column.name] = CategoricalSketch(
                    type=column.type,
                    count=column.count,
                    nulls=column.nulls,
                    top=column.top,
                    other=0,
                    distinct=column.distinct,
                    complete=True,
                )
    rest = [n for n in source.schema.names if n not in known]
    scanned = sketch_table(source, columns=rest, exact_limit=CACHED_EXACT_LIMIT)
    columns = {
        n: known.get(n) or scanned.columns[n]
        for n in source.schema.names
        if n in known or n in scanned.columns
    }
    return TableSketch(rows=source.rows, columns=columns, other=scanned.other)
