from __future__ import annotations

import itertools
import math
import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from shipyard.domain.metrics import MetricHistory
from shipyard.domain.runs import MetricSummary, Run
from shipyard.errors import InvalidArgumentError
from shipyard.services.run_reports import (
    MAX_DRAWN_POINTS,
    PALETTE,
    compare,
    downsample,
    history_stats,
    render_compare_html,
    render_history_html,
    svg_lines,
)

START = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def _run(run_id: str, name: str, **fields: object) -> Run:
    return Run(
        id=run_id,
        experiment=str(fields.pop("experiment", "churn")),
        name=name,
        parent_id=None,
        status="finished",
        user="alice",
        start_time=START,
        end_time=START + timedelta(seconds=90),
        host="box",
        pid=1,
        **fields,  # type: ignore[arg-type]
    )


def _summary(key: str, value: float) -> MetricSummary:
    return MetricSummary(key, value, 0, 0.0, value, value, 1)


def _history(key: str, values: list[float], steps: list[int] | None = None) -> MetricHistory:
    steps = list(range(len(values))) if steps is None else steps
    return MetricHistory(
        key,
        np.asarray(steps, dtype=np.int64),
        np.arange(len(values), dtype=np.float64),
        np.asarray(values, dtype=np.float64),
    )


def _paths(svg: str) -> list[str]:
    return re.findall(r'<path d="(M[^"]*)" fill="none" stroke="#(?!888)', svg)


# -- downsample ------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 5, 2000])
def test_downsample_returns_short_series_unchanged(size: int) -> None:
    steps, values = np.arange(size), np.random.default_rng(0).normal(size=size)
    kept_steps, kept_values = downsample(steps, values, 2000)
    np.testing.assert_array_equal(kept_steps, steps)
    np.testing.assert_array_equal(kept_values, values)


@pytest.mark.parametrize(("size", "max_points"), [(2001, 2000), (10_000, 999), (123_457, 2000)])
def test_downsample_keeps_each_buckets_min_and_max_and_never_too_many(
    size: int, max_points: int
) -> None:
    values = np.random.default_rng(1).normal(size=size)
    values[size // 3] = 50.0  # a spike
    values[size // 2] = -50.0  # a dip
    steps = np.arange(size) * 10
    kept_steps, kept_values = downsample(steps, values, max_points)
    assert len(kept_values) <= max_points
    assert 50.0 in kept_values and -50.0 in kept_values
    assert np.all(np.diff(kept_steps) > 0), "points keep their order"
    np.testing.assert_array_equal(values[kept_steps // 10], kept_values)
    assert kept_steps[0] == 0 and kept_steps[-1] == steps[-1], "the ends are kept"
    edges = np.linspace(0, size, (max_points - 2) // 2 + 1).astype(int)
    kept = set(kept_steps.tolist())
    for lo, hi in itertools.pairwise(edges):
        bucket = values[lo:hi]
        assert steps[lo + int(np.argmin(bucket))] in kept
        assert steps[lo + int(np.argmax(bucket))] in kept


def test_downsample_ignores_nan_but_keeps_a_gap_for_an_all_nan_bucket() -> None:
    values = np.arange(100, dtype=np.float64)
    values[10:20] = np.nan  # buckets of 10: bucket 1 is all NaN
    values[35] = np.nan
    _, kept = downsample(np.arange(100), values, 22)  # 10 buckets of 10, and the ends
    assert len(kept) <= 22
    assert int(np.isnan(kept).sum()) == 1
    assert kept[np.isfinite(kept)].max() == 99.0 and kept[np.isfinite(kept)].min() == 0.0


def test_downsample_keeps_infinities_as_extremes() -> None:
    values = np.zeros(10_000)
    values[777] = math.inf
    values[4444] = -math.inf
    _, kept = downsample(np.arange(10_000), values, 100)
    assert math.inf in kept and -math.inf in kept


@pytest.mark.parametrize(
    ("steps", "values", "max_points"),
    [([1, 2], [1.0], 10), ([1, 2, 3], [1.0, 2.0, 3.0], 1), (range(9), range(9), 3)],
)
def test_downsample_refuses_bad_arguments(
    steps: list[int], values: list[float], max_points: int
) -> None:
    with pytest.raises(InvalidArgumentError):
        downsample(steps, values, max_points)


# -- svg_lines -------------------------------------------------------------------------------


def test_svg_lines_draws_axes_ticks_and_a_legend_per_series() -> None:
    svg = svg_lines(
        [
            ("train", [0, 1, 2, 3], [1.0, 0.5, 0.3, 0.2]),
            ("valid", [0, 1, 2, 3], [1.1, 0.7, 0.6, 0.6]),
        ]
    )
    ET.fromstring(svg)  # well-formed
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert len(_paths(svg)) == 2
    assert PALETTE[0] in svg and PALETTE[1] in svg
    assert ">train</text>" in svg and ">valid</text>" in svg
    assert ">0</text>" in svg and ">3</text>" in svg, "x ticks at whole steps"
    assert "nan" not in svg.lower() and "inf" not in svg.lower()


def test_svg_lines_breaks_the_line_at_nan_and_clips_infinities() -> None:
    svg = svg_lines([("m", [0, 1, 2, 3, 4, 5], [1.0, 2.0, math.nan, 3.0, math.inf, -math.inf])])
    ET.fromstring(svg)
    assert len(_paths(svg)) == 2, "NaN splits the line in two"
    assert "2 infinite value(s) drawn at the edge" in svg
    assert "+∞" in svg and "-∞" in svg
    assert "nan" not in svg.lower()


def test_svg_lines_handles_empty_series_a_single_point_and_nothing_at_all() -> None:
    empty = svg_lines([("nothing", [], [])])
    ET.fromstring(empty)
    assert "no data to draw" in empty and ">nothing</text>" in empty
    only_nan = svg_lines([("nan", [0, 1], [math.nan, math.nan])])
    assert "no data to draw" in only_nan
    assert "no data to draw" in svg_lines([])
    single = svg_lines([("one", [7], [0.5])])
    ET.fromstring(single)
    assert "<circle" in single and not _paths(single)
    mixed = svg_lines([("empty", [], []), ("one", [3], [2.0]), ("line", [1, 2], [1.0, 3.0])])
    ET.fromstring(mixed)
    assert "<circle" in mixed and len(_paths(mixed)) == 1


def test_svg_lines_only_infinities_still_draws() -> None:
    svg = svg_lines([("m", [0, 1], [math.inf, -math.inf])])
    ET.fromstring(svg)
    assert "no data to draw" not in svg
    assert "2 infinite value(s)" in svg


def test_svg_lines_escapes_labels_and_sorts_by_x() -> None:
    svg = svg_lines([("<script>alert(1)</script>", [2, 0, 1], [3.0, 1.0, 2.0])])
    assert "<script" not in svg and "&lt;script&gt;" in svg
    (path,) = _paths(svg)
    xs = [float(point.split(",")[0]) for point in path[1:].split("L")]
    assert xs == sorted(xs)


def test_svg_lines_thins_long_series_and_keeps_the_spike() -> None:
    values = np.zeros(100_000)
    values[54_321] = 1.0
    svg = svg_lines([("long", np.arange(100_000), values)])
    (path,) = _paths(svg)
    points = path[1:].split("L")
    assert len(points) <= MAX_DRAWN_POINTS
    ys = {float(point.split(",")[1]) for point in points}
    assert len(ys) == 2, "the spike survives thinning"


def test_svg_lines_survives_the_widest_float_range() -> None:
    svg = svg_lines([("wide", [0, 1], [-1e308, 1e308])])
    ET.fromstring(svg)
    assert "nan" not in svg.lower() and "inf" not in svg.lower()


def test_svg_lines_cycles_the_palette() -> None:
    series = [(f"s{i}", [0, 1], [float(i), float(i + 1)]) for i in range(len(PALETTE) + 1)]
    svg = svg_lines(series)
    assert svg.count(f'stroke="{PALETTE[0]}"') == 2


# -- summaries and pages -----------------------------------------------------------------------


def test_history_stats_go_by_step_and_count_nan_and_inf() -> None:
    history = _history("loss", [0.5, math.nan, 0.9, math.inf, 0.1], steps=[2, 3, 0, 4, 1])
    stats = history_stats(history)
    assert (stats.count, stats.first_step, stats.last_step) == (5, 0, 4)
    assert stats.first == 0.9 and stats.last == math.inf
    assert stats.min == 0.1 and stats.max == math.inf
    assert (stats.nan, stats.inf) == (1, 1)
    assert stats.to_dict()["last"] == "Infinity"
    empty = history_stats(_history("e", []))
    assert empty.count == 0 and empty.first is None and empty.min is None


def test_compare_flags_differences_missing_fields_and_shared_metrics() -> None:
    a = _run(
        "a" * 32,
        "a",
        params={"model": "xgb", "depth": "5"},
        metrics={"auc": _summary("auc", 0.9), "nan": _summary("nan", math.nan)},
    )
    b = _run(
        "b" * 32,
        "b",
        params={"model": "rf", "depth": "5", "extra": "1"},
        metrics={"auc": _summary("auc", 0.9), "nan": _summary("nan", math.nan)},
    )
    c = _run("c" * 32, "c", params={"model": "xgb", "depth": "5"}, metrics={})
    comparison = compare([a, b, c])
    rows = {(r.section, r.key): r for r in comparison.rows}
    assert rows["param", "model"].differs and not rows["param", "depth"].differs
    assert rows["param", "extra"].differs and rows["param", "extra"].values == (None, "1", None)
    assert rows["metric", "auc"].differs, "c has no auc"
    assert not rows["attribute", "status"].differs
    assert comparison.shared_metrics == ("auc", "nan")
    assert not compare([a, b]).rows[-1].differs, "NaN equals NaN here"
    assert comparison.to_dict()["rows"][-1]["values"] == ["NaN", "NaN", None]


def test_pages_are_self_contained_and_escaped() -> None:
    run = _run(
        "d" * 32,
        "<b>run</b>",
        params={"<script>": "x"},
        metrics={"<script>": _summary("<script>", 1.0)},
    )
    other = _run("e" * 32, "other", metrics={"<script>": _summary("<script>", 2.0)})
    spiky = [0.0] * 5000
    spiky[2500] = 9.0
    histories = [_history("<script>", [1.0, math.nan, 2.0]), _history("long", spiky)]
    page = render_history_html(run, histories)
    compared = render_compare_html(
        [run, other],
        {run.id: {"<script>": histories[0]}, other.id: {"<script>": _history("<script>", [2.0])}},
    )
    for html in (page, compared):
        assert html.startswith("<!DOCTYPE html>")
        assert "<svg" in html
        assert "<script" not in html and "&lt;script&gt;" in html
        assert "http://" not in html and "https://" not in html
        assert "<b>run" not in html
    assert page.count("<svg") == 2
    assert "5,000 points drawn as about 2,000" in page and "1 NaN point(s) left out" in page
    assert compared.count("<svg") == 1 and 'class="diff"' in compared
