from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy import stats
from scipy.spatial import distance
from sklearn import metrics

from shipyard.app import Shipyard
from shipyard.domain.drift import DriftOptions, DriftReport
from shipyard.domain.drift_sketches import TOP_VALUES, CategoricalSketch, NumericSketch
from shipyard.errors import InvalidArgumentError
from shipyard.services import drift_stats as st
from shipyard.services.drift import DriftService, compare
from shipyard.services.drift_reports import render_drift_html
from shipyard.services.drift_sketch import BATCH_ROWS, sketch_table
from shipyard.services.model_quality import model_quality

RNG = np.random.default_rng(20261123)


def _pair(a: np.ndarray, b: np.ndarray) -> tuple[NumericSketch, NumericSketch]:
    ref = sketch_table(pa.table({"x": a}))
    cur = sketch_table(pa.table({"x": b}), grid=ref)
    first, second = ref.columns["x"], cur.columns["x"]
    assert isinstance(first, NumericSketch) and isinstance(second, NumericSketch)
    return first, second


# -- agreement with SciPy -----------------------------------------------------------------------


@pytest.mark.parametrize(("n1", "n2"), [(300, 700), (1000, 9000), (800, 40_000), (5000, 8000)])
def test_ks_matches_scipy_exactly_when_the_reference_is_small(n1: int, n2: int) -> None:
    a, b = RNG.normal(size=n1), RNG.normal(0.1, 1.1, size=n2)
    d, p = st.ks_test(*_pair(a, b))
    expected = stats.ks_2samp(a, b)
    assert d == pytest.approx(expected.statistic, abs=1e-12)
    assert p == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-300)


@pytest.mark.parametrize(("n1", "n2"), [(300, 700), (5000, 8000), (2, 3)])
def test_wasserstein_matches_scipy_exactly_on_small_data(n1: int, n2: int) -> None:
    a, b = RNG.exponential(size=n1), RNG.exponential(1.3, size=n2)
    normed, raw = st.wasserstein_normed(*_pair(a, b))
    assert raw == pytest.approx(stats.wasserstein_distance(a, b), rel=1e-9)
    assert normed == pytest.approx(raw / np.std(a), rel=1e-9)


@pytest.mark.parametrize("draw", ["normal", "lognormal", "integers"])
def test_sketches_of_large_data_stay_within_the_documented_tolerance(draw: str) -> None:
    if draw == "normal":
        a, b = RNG.normal(size=200_000), RNG.normal(0.2, 1.1, size=300_000)
    elif draw == "lognormal":
        a, b = RNG.lognormal(size=200_000), RNG.lognormal(0.05, 1.0, size=300_000)
    else:  # many repeated values, more than a sketch keeps exactly
        a = RNG.integers(0, 50_000, 200_000).astype(float)
        b = RNG.integers(1_000, 52_000, 300_000).astype(float)
    ref, cur = _pair(a, b)
    assert not ref.exact and not cur.exact
    normed, raw = st.wasserstein_normed(ref, cur)
    expected = stats.wasserstein_distance(a, b)
    assert abs(raw - expected) <= 0.02 * expected  # docs/drift.md: within 2%
    assert abs(normed - expected / np.std(a)) <= 0.005
    d, _ = st.ks_test(ref, cur)
    assert abs(d - stats.ks_2samp(a, b).statistic) <= 0.002


def test_chisquare_and_jensenshannon_match_scipy() -> None:
    ref = {"a": 50, "b": 30, "c": 20}
    cur = {"a": 40, "b": 30, "c": 25, "d": 5}
    stat, p = st.chisquare_test({"a": 50, "b": 30, "c": 20}, {"a": 45, "b": 30, "c": 25})
    expected = stats.chisquare([45, 30, 25], np.array([50, 30, 20]) * 100 / 100)
    assert (stat, p) == pytest.approx((expected.statistic, expected.pvalue))
    assert st.chisquare_test(ref, cur) == (math.inf, 0.0)  # a value the reference never had
    p_ref, p_cur = st.percents(ref, cur, fill=False)
    assert st.jensenshannon_distance(p_ref, p_cur) == pytest.approx(
        distance.jensenshannon(p_ref, p_cur), rel=1e-12
    )


@pytest.mark.parametrize(("x", "dof"), [(0.5, 1), (3.0, 2), (25.0, 19), (150.0, 99), (1e-3, 4)])
def test_chi2_tail_without_scipy_matches_scipy(x: float, dof: int) -> None:
    assert st.chi2_sf(x, dof) == pytest.approx(stats.chi2.sf(x, dof), rel=1e-10)


def test_z_test_matches_evidentlys_two_proportion_test() -> None:
    z, p = st.z_test({"no": 60, "yes": 40}, {"no": 45, "yes": 55})
    p1, p2, pooled = 0.4, 0.55, (40 + 55) / 200
    expected = (p1 - p2) / math.sqrt(pooled * (1 - pooled) * (2 / 100))
    assert z == pytest.approx(expected)
    assert p == pytest.approx(2 * (1 - stats.norm.cdf(abs(expected))))
    assert st.z_test({"a": 5}, {"a": 9}) == (0.0, 1.0)


# -- the comparison -----------------------------------------------------------------------------


def _frame(n: int, shift: float, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    levels = np.array(["red", "green", "blue", "grey"])
    skew = np.array([0.1, 0.2, 0.3, 0.4]) if shift else np.full(4, 0.25)
    return pa.table(
        {
            "a": rng.normal(shift, 1, n),
            "b": rng.normal(0, 1, n),
            "c": rng.normal(0, 1, n),
            "colour": levels[rng.choice(4, n, p=skew)],
            "size": rng.integers(0, 3, n),  # integer, 3 values: categorical
            "prediction": rng.normal(shift, 1, n),
        }
    )


@pytest.mark.parametrize(
    ("rows", "numeric", "categorical"),
    [(600, "ks", "chisquare"), (5000, "wasserstein", "jensenshannon")],
)
def test_compare_detects_shifted_columns_with_the_test_for_the_size(
    rows: int, numeric: str, categorical: str
) -> None:
    report = compare(_frame(rows, 0.0, 1), _frame(rows, 0.8, 2))
    assert report.column("a").method == numeric
    assert report.column("colour").method == categorical
    assert report.column("size").kind == "categorical"
    assert set(report.drifted) == {"a", "colour"}
    assert report.drifted_share == pytest.approx(2 / 5)
    assert not report.dataset_drift
    assert report.prediction is not None and report.prediction.drifted
    assert "prediction" not in [c.name for c in report.columns]
    json.dumps(report.to_dict(), allow_nan=False)


def test_dataset_drift_when_the_share_reaches_the_threshold() -> None:
    options = DriftOptions(drift_share=0.4)
    assert compare(_frame(2000, 0.0, 1), _frame(2000, 0.8, 2), options).dataset_drift
    assert not compare(_frame(2000, 0.0, 1), _frame(2000, 0.0, 3), options).dataset_drift


def test_psi_and_per_column_thresholds_can_be_chosen() -> None:
    options = DriftOptions(method="psi", per_column_threshold={"b": 10.0})
    report = compare(_frame(3000, 0.0, 1), _frame(3000, 0.8, 2), options)
    assert {c.method for c in report.columns} == {"psi"}
    a = report.column("a")
    assert a.statistic is not None and a.statistic > 0.1 and a.drifted
    assert report.column("b").threshold == 10.0


def test_summaries_share_histogram_edges_and_categories() -> None:
    report = compare(_frame(3000, 0.0, 1), _frame(3000, 0.8, 2))
    a = report.column("a")
    assert a.reference.edges == a.current.edges and len(a.reference.edges) == 21
    assert sum(a.current.counts) == pytest.approx(3000)
    colour = report.column("colour")
    assert colour.reference.values == colour.current.values
    assert set(colour.reference.values) == {"red", "green", "blue", "grey"}


def test_files_stream_in_batches_and_agree_with_tables(tmp_path: Path) -> None:
    n = BATCH_ROWS * 2 + 1234  # several batches: the reference grid needs a second pass
    rng = np.random.default_rng(5)
    ref = pa.table({"x": rng.normal(size=n), "k": rng.choice(["a", "b"], n)})
    cur = pa.table({"x": rng.normal(0.3, 1, size=n), "k": rng.choice(["a", "b"], n)})
    pq.write_table(ref, tmp_path / "ref.parquet")
    pq.write_table(cur, tmp_path / "cur.parquet")
    from_files = compare(tmp_path / "ref.parquet", [tmp_path / "cur.parquet"])
    in_memory = compare(ref, cur)
    x_files, x_memory = from_files.column("x"), in_memory.column("x")
    assert x_files.statistic == pytest.approx(x_memory.statistic, rel=0.01)
    assert x_files.drifted and x_memory.drifted
    assert from_files.column("k").statistic == pytest.approx(in_memory.column("k").statistic)
    expected = stats.wasserstein_distance(ref["x"].to_numpy(), cur["x"].to_numpy())
    assert x_files.statistic == pytest.approx(expected / np.std(ref["x"].to_numpy()), rel=0.02)


# -- data quality -------------------------------------------------------------------------------


def test_data_quality_finds_schema_missing_values_range_and_unseen_categories() -> None:
    ref = pa.table(
        {
            "age": [float(20 + i % 40) for i in range(1000)],
            "city": [["paris", "lyon"][i % 2] for i in range(1000)],
            "gone": list(range(1000)),
            "score": [float(i) for i in range(1000)],
        }
    )
    cur = pa.table(
        {
            "age": [None if i % 4 == 0 else float(10 + i % 60) for i in range(1000)],
            "city": [["paris", "lyon", "rome"][i % 3] for i in range(1000)],
            "score": [str(i) for i in range(1000)],
            "extra": list(range(1000)),
        }
    )
    report = compare(ref, cur)
    changes = {(c.name, c.change) for c in report.quality.schema}
    assert changes == {("gone", "missing"), ("extra", "new"), ("score", "retyped")}
    age = next(q for q in report.quality.columns if q.name == "age")
    assert age.missing_reference == 0 and age.missing_current == 0.25
    assert age.missing_increased
    values = [10 + i % 60 for i in range(1000) if i % 4]
    assert age.below_range == sum(v < 20 for v in values)
    assert age.above_range == sum(v > 59 for v in values)
    city = next(q for q in report.quality.columns if q.name == "city")
    assert city.unseen == 333 and city.unseen_values == ("rome",)
    assert not report.quality.ok and len(report.quality.issues) >= 5
    score = report.column("score")  # float in the reference, text now: reported, not tested
    assert score.method is None and "type changed" in score.note
    with pytest.raises(KeyError):
        report.column("extra")  # the reference does not have it: not tested
    assert DriftReport.from_dict(json.loads(json.dumps(report.to_dict()))) == report


# -- bad input ----------------------------------------------------------------------------------


def test_an_empty_current_window_gives_a_no_data_report() -> None:
    ref = _frame(100, 0.0, 1)
    report = compare(ref, ref.slice(0, 0))
    assert report.status == "no_data"
    assert report.columns == () and not report.dataset_drift
    assert "no rows" in report.quality.issues[0]
    assert "No data" in render_drift_html(report)


def test_an_empty_reference_or_a_non_table_is_refused() -> None:
    ref = _frame(100, 0.0, 1)
    with pytest.raises(InvalidArgumentError, match="no rows"):
        compare(ref.slice(0, 0), ref)
    with pytest.raises(InvalidArgumentError, match="cannot read a table"):
        compare(ref, {"a": [1, 2]})


def test_all_nan_and_constant_columns_are_reported_without_crashing() -> None:
    n = 2000
    ref = pa.table({"nan": [math.nan] * n, "const": [3.0] * n, "word": ["x"] * n})
    cur = pa.table({"nan": [math.nan] * n, "const": [3.0] * n, "word": ["x"] * n})
    report = compare(ref, cur)
    assert report.column("nan").method is None
    assert "no values" in report.column("nan").note
    const = report.column("const")
    assert const.method == "jensenshannon" and not const.drifted
    assert const.statistic == pytest.approx(0.0)
    assert not report.column("word").drifted
    moved = compare(ref, pa.table({"nan": [1.0] * n, "const": [4.0] * n, "word": ["y"] * n}))
    assert moved.column("const").drifted and moved.column("word").drifted
    json.dumps(moved.to_dict(), allow_nan=False)
    assert render_drift_html(moved).count("<svg") >= 4


def test_a_categorical_with_a_million_distinct_values_stays_bounded() -> None:
    n = 1_000_000
    ids = pa.array([f"user-{i}" for i in range(n)])
    start = time.perf_counter()
    report = compare(
        pa.table({"user": ids}), pa.table({"user": ids.take(pa.array(range(n - 1, -1, -1)))})
    )
    assert time.perf_counter() - start < 30
    sketch = sketch_table(pa.table({"user": ids})).columns["user"]
    assert isinstance(sketch, CategoricalSketch)
    assert len(sketch.top) == TOP_VALUES and not sketch.complete
    assert sketch.distinct == n and sketch.other == n - TOP_VALUES
    user = report.column("user")
    assert user.approximate and not user.drifted
    assert len(json.dumps(report.to_dict())) < 100_000


# -- model quality ------------------------------------------------------------------------------


def test_classification_metrics_match_scikit_learn() -> None:
    y = RNG.integers(0, 2, 500)
    scores = np.round(np.clip(y * 0.3 + RNG.random(500) * 0.7, 0, 1), 2)  # with ties
    p = (scores > 0.5).astype(int)
    quality = model_quality(y, p, scores=scores, baseline={"accuracy": 0.99, "f1": 0.1})
    assert quality.task == "classification"
    assert quality.value("accuracy") == pytest.approx(metrics.accuracy_score(y, p))
    assert quality.value("f1") == pytest.approx(metrics.f1_score(y, p))
    assert quality.value("roc_auc") == pytest.approx(metrics.roc_auc_score(y, scores))
    flags = {m.name: m.degraded for m in quality.metrics}
    assert flags == {"accuracy": True, "f1": False, "roc_auc": False}
    assert quality.degraded


def test_multiclass_f1_is_the_macro_average_of_scikit_learn() -> None:
    y = RNG.choice(["a", "b", "c"], 300)
    p = np.where(RNG.random(300) < 0.7, y, RNG.choice(["a", "b", "c", "d"], 300))
    quality = model_quality(y, p)
    assert quality.value("f1") == pytest.approx(metrics.f1_score(y, p, average="macro"))


def test_regression_metrics_match_scikit_learn_and_flag_worse_errors() -> None:
    y = RNG.normal(size=400)
    p = y + RNG.normal(0, 0.5, 400)
    quality = model_quality(y, p, baseline={"rmse": 0.3, "mae": 1.0})
    assert quality.task == "regression"
    assert quality.value("rmse") == pytest.approx(math.sqrt(metrics.mean_squared_error(y, p)))
    assert quality.value("mae") == pytest.approx(metrics.mean_absolute_error(y, p))
    assert quality.value("r2") == pytest.approx(metrics.r2_score(y, p))
    assert {m.name: m.degraded for m in quality.metrics} == {
        "rmse": True,
        "mae": False,
        "r2": False,
    }


def test_model_quality_refuses_mismatched_or_unlabelled_rows() -> None:
    with pytest.raises(InvalidArgumentError, match="labels but"):
        model_quality([1, 0], [1])
    with pytest.raises(InvalidArgumentError, match="no labelled rows"):
        model_quality(np.array([np.nan, np.nan]), np.array([1.0, 0.0]))


def test_compare_judges_model_quality_from_label_and_prediction_columns() -> None:
    n = 1000
    y = RNG.integers(0, 2, n)
    window = pa.table(
        {
            "x": RNG.normal(size=n),
            "prediction": np.where(RNG.random(n) < 0.6, y, 1 - y),
            "probability_0": RNG.random(n),
            "probability_1": RNG.random(n),
            "label": pa.array([None if i % 10 == 0 else int(v) for i, v in enumerate(y)]),
        }
    )
    report = compare(window, window, baseline={"accuracy": 0.9})
    assert report.model is not None and report.model.rows == 900
    assert report.model.value("accuracy") < 0.7 and report.model.degraded
    assert "label" not in [c.name for c in report.columns]
    assert "model quality" in render_drift_html(report).lower()
    assert DriftReport.from_dict(json.loads(json.dumps(report.to_dict()))) == report


# -- dataset versions -----------------------------------------------------------------------------


def test_a_dataset_version_is_sketched_once_and_cached(project: Shipyard, tmp_path: Path) -> None:
    path = tmp_path / "train.parquet"
    pq.write_table(_frame(3000, 0.0, 1), path)
    ref = project.datasets.add("train", path).version.ref
    service = DriftService(project.datasets, tmp_path / "cache")
    report = service.compare(ref, _frame(3000, 0.8, 2))
    assert report.reference == ref and set(report.drifted) == {"a", "colour"}
    cached = list((tmp_path / "cache" / "drift").glob("*.json"))
    assert len(cached) == 1
    stamp = cached[0].stat().st_mtime_ns
    sketch, _ = service.reference_sketch(ref)
    assert cached[0].stat().st_mtime_ns == stamp  # read back, not recomputed
    colour = sketch.columns["colour"]
    assert isinstance(colour, CategoricalSketch) and colour.complete  # from the profile
    again = service.compare(ref, ref)
    assert again.current == ref and not again.drifted


def test_the_html_report_escapes_names_and_values_and_has_no_script() -> None:
    name = "<script>alert(1)</script>"
    ref = pa.table({name: ["<b>x</b>"] * 50 + ["y"] * 50, "n": np.arange(100.0)})
    cur = pa.table({name: ["<b>x</b>"] * 90 + ["y"] * 10, "n": np.arange(100.0) + 50})
    page = render_drift_html(compare(ref, cur))
    assert "<script" not in page and "&lt;script&gt;" in page
    assert "&lt;b&gt;x&lt;/b&gt;" in page
    assert page.count("<svg") == 4  # reference and current, for both columns
