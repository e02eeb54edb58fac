from __future__ import annotations

import json
import math

import pytest

from shipyard.domain.drift import (
    ColumnDrift,
    ColumnSummary,
    DataQuality,
    DriftOptions,
    DriftReport,
    choose_method,
    is_drifted,
)
from shipyard.domain.drift_sketches import CategoricalSketch, NumericSketch, TableSketch
from shipyard.errors import InvalidArgumentError


@pytest.mark.parametrize(
    ("kind", "rows", "values", "method"),
    [
        ("numeric", 1000, 6, "ks"),
        ("numeric", 1000, 5, "chisquare"),
        ("numeric", 1000, 2, "z"),
        ("numeric", 1001, 6, "wasserstein"),
        ("numeric", 1001, 5, "jensenshannon"),
        ("categorical", 1000, 3, "chisquare"),
        ("categorical", 1000, 2, "z"),
        ("categorical", 1001, 2, "jensenshannon"),
        ("categorical", 50_000, 300, "jensenshannon"),
    ],
)
def test_choose_method_follows_evidentlys_defaults(
    kind: str, rows: int, values: int, method: str
) -> None:
    assert choose_method(kind, rows, values) == method


def test_is_drifted_uses_each_tests_own_comparison() -> None:
    assert is_drifted("ks", 0.3, 0.05, 0.05)  # Evidently: p <= threshold
    assert not is_drifted("chisquare", 10.0, 0.05, 0.05)  # p < threshold
    assert is_drifted("chisquare", 10.0, 0.049, 0.05)
    assert is_drifted("wasserstein", 0.1, None, 0.1)  # distance >= threshold
    assert not is_drifted("jensenshannon", 0.099, None, 0.1)
    assert not is_drifted("ks", 0.3, None, 0.05)


def test_options_pick_thresholds_per_column_then_per_method_then_default() -> None:
    options = DriftOptions(thresholds={"psi": 0.2}, per_column_threshold={"age": 0.3})
    assert options.threshold("psi", "x") == 0.2
    assert options.threshold("psi", "age") == 0.3
    assert options.threshold("wasserstein", "x") == 0.1
    assert options.threshold("ks", "x") == 0.05


def test_options_choose_methods_per_column_then_all_then_by_kind() -> None:
    options = DriftOptions(num_method="psi", per_column_method={"age": "ks"})
    assert options.chosen("age", "numeric") == "ks"
    assert options.chosen("x", "numeric") == "psi"
    assert options.chosen("x", "categorical") is None
    assert DriftOptions(method="psi").chosen("x", "categorical") == "psi"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"method": "t-test"},
        {"cat_method": "wasserstein"},
        {"per_column_method": {"age": "bogus"}},
        {"thresholds": {"nope": 0.1}},
        {"drift_share": 0.0},
        {"drift_share": 1.5},
    ],
)
def test_options_refuse_unknown_methods_and_bad_shares(kwargs: dict[str, object]) -> None:
    with pytest.raises(InvalidArgumentError):
        DriftOptions(**kwargs)  # type: ignore[arg-type]


def test_options_leave_out_the_prediction_logs_own_columns_and_the_label() -> None:
    options = DriftOptions()
    for column in ("request_id", "at", "latency_ms", "label", "probability_1", "output_x"):
        assert not options.tested(column)
    assert options.tested("age")
    assert options.tested("prediction")
    assert not DriftOptions(columns=("age",)).tested("income")


def _numeric(**changes: object) -> NumericSketch:
    base: dict[str, object] = {
        "type": "double",
        "count": 4,
        "nulls": 1,
        "nan": 1,
        "inf": 0,
        "min": 1.0,
        "max": 2.0,
        "mean": 1.5,
        "m2": 0.5,
        "points": (1.0, 2.0),
        "below": (0, 1),
        "upto": (1, 2),
        "exact": True,
    }
    base.update(changes)
    return NumericSketch(**base)  # type: ignore[arg-type]


def test_numeric_sketch_counts_and_value_counts() -> None:
    sketch = _numeric()
    assert sketch.finite == 2
    assert sketch.std == pytest.approx(0.5)
    assert sketch.value_counts() == {1.0: 1, 2.0: 1}
    with pytest.raises(InvalidArgumentError):
        _numeric(exact=False).value_counts()
    with pytest.raises(InvalidArgumentError):
        _numeric(below=(0,))


def test_table_sketch_round_trips_through_json_with_non_finite_numbers() -> None:
    empty = _numeric(
        count=3,
        nulls=3,
        nan=0,
        min=math.nan,
        max=math.nan,
        mean=math.nan,
        m2=math.nan,
        points=(),
        below=(),
        upto=(),
    )
    sketch = TableSketch(
        rows=4,
        columns={
            "x": _numeric(),
            "empty": empty,
            "city": CategoricalSketch("string", 4, 0, (("a", 3), ("b", 1)), 0, 2, True),
        },
        other={"when": "timestamp[us]"},
    )
    text = json.dumps(sketch.to_dict(), allow_nan=False)
    back = TableSketch.from_dict(json.loads(text))
    assert back.columns["x"] == sketch.columns["x"]
    assert back.columns["city"] == sketch.columns["city"]
    assert math.isnan(back.columns["empty"].min)  # type: ignore[union-attr]
    assert back.types == {
        "x": "double",
        "empty": "double",
        "city": "string",
        "when": "timestamp[us]",
    }


def test_a_sketch_of_another_format_is_refused() -> None:
    with pytest.raises(InvalidArgumentError, match="recompute"):
        TableSketch.from_dict({"format": 0, "rows": 0, "columns": {}})


def test_report_serialises_to_strict_json_and_finds_columns() -> None:
    summary = ColumnSummary(count=3, missing=0, edges=(0.0, 1.0), counts=(3.0,))
    drifted = ColumnDrift(
        "x", "numeric", "wasserstein", math.inf, None, 0.1, True, False, summary, summary
    )
    pred = ColumnDrift(
        "prediction", "numeric", "ks", 0.5, 0.01, 0.05, True, False, summary, summary
    )
    report = DriftReport(
        reference="ref",
        current="cur",
        reference_rows=3,
        current_rows=3,
        status="ok",
        columns=(drifted,),
        prediction=pred,
        drift_share=0.5,
        drifted_share=1.0,
        dataset_drift=True,
        quality=DataQuality(),
    )
    data = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert data["columns"][0]["statistic"] == "Infinity"
    assert data["drifted"] == ["x"]
    assert report.column("prediction") is pred
    assert ColumnDrift.from_dict(data["columns"][0]) == drifted
    with pytest.raises(KeyError):
        report.column("nope")
