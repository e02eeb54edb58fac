"""Run reports: what the ``runs`` commands show, and the HTML pages with line charts.

The reading side of tracking for people: one run with its artifacts, several runs side by
side with their differences, and metric histories summarised (count, first, last, min, max)
or drawn. Pages follow ``shipyard.services.reports``: one self-contained HTML file, CSS
inline, charts as inline SVG, no script and nothing fetched from the network; every text that
comes from a run is escaped.

Charts draw at most ``MAX_DRAWN_POINTS`` points a series: longer series are cut into buckets
and keep each bucket's lowest and highest point, so a spike survives however long the run.
NaN points are left out (the line breaks there); infinities are drawn at the plot's edge and
counted in a note under the chart.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from shipyard.domain.metrics import MetricHistory
from shipyard.domain.runs import Run, RunArtifact
from shipyard.errors import InvalidArgumentError, NotFoundError
from shipyard.services.reports import escape, format_value, html_page

if TYPE_CHECKING:
    from shipyard.services.runs import RunService

__all__ = [
    "MAX_DRAWN_POINTS",
    "PALETTE",
    "ComparisonRow",
    "HistoryStats",
    "RunComparison",
    "RunDetails",
    "compare",
    "compare_runs",
    "describe_run",
    "downsample",
    "history_stats",
    "load_compare_histories",
    "load_histories",
    "render_compare_html",
    "render_history_html",
    "resolve_run",
    "short_id",
    "svg_lines",
]

MAX_DRAWN_POINTS = 2000
# Tableau 10: distinct for the common kinds of colour blindness, readable on white.
PALETTE = (
    "#4c78a8",
    "#f58518",
    "#54a24b",
    "#e45756",
    "#72b7b2",
    "#b279a2",
    "#eeca3b",
    "#9d755d",
    "#ff9da6",
    "#bab0ac",
)
_SHORT = 8  # the random tail of a UUIDv7: unique in practice, and what default names end with
_SUFFIX = re.compile(r"[0-9a-f]{4,31}")
_AXIS = "#888"
_GRID = "#e6e6e6"
_LEGEND_ROW = 16
_CSS = """
tr.diff td { background: #fff4d6; }
tr.diff th { color: #8a5a00; }
.chart { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 14px;
         margin-bottom: 16px; }
"""


def short_id(run_id: str) -> str:
    """The short form of a run id that lists show and ``resolve_run`` accepts."""
    return run_id[-_SHORT:]


# -- loading ---------------------------------------------------------------------------------


def resolve_run(runs: RunService, ref: str) -> Run:
    """The run with this id, or the one run whose id ends with ``ref`` (4 or more hex digits).

    Raises:
        NotFoundError: if no run matches.
        InvalidArgumentError: if a short form matches several runs.
    """
    text = ref.strip().lower()
    if len(text) == 32 or not _SUFFIX.fullmatch(text):
        return runs.get(ref)
    page = runs.search(filter=f"run_id like '%{text}'", max_results=2)
    if not page:
        raise NotFoundError(f"run {ref!r} does not exist; `shipyard runs list` shows the ids")
    if len(page) > 1:
        raise InvalidArgumentError(f"run id {ref!r} matches several runs; give more digits")
    return page[0]


@dataclass(frozen=True, slots=True)
class RunDetails:
    """A run and the files it logged."""

    run: Run
    artifacts: tuple[RunArtifact, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form: the run's fields, plus ``artifacts``."""
        return {
            **self.run.to_dict(),
            "artifacts": [
                {"path": a.path, "digest": a.digest, "size": a.size} for a in self.artifacts
            ],
        }


def describe_run(runs: RunService, ref: str) -> RunDetails:
    """A run (by id or short id) with its artifacts.

    Raises:
        NotFoundError: if no run matches.
    """
    run = resolve_run(runs, ref)
    return RunDetails(run, tuple(runs.artifacts(run.id)))


def load_histories(
    runs: RunService, ref: str, keys: Sequence[str] = ()
) -> tuple[Run, list[MetricHistory]]:
    """A run and the full histories of some of its metrics (default: all, by key).

    Raises:
        NotFoundError: if no run matches, or it has no metric named in ``keys``.
    """
    run = resolve_run(runs, ref)
    wanted = list(dict.fromkeys(keys)) or sorted(run.metrics)
    missing = [k for k in wanted if k not in run.metrics]
    if missing:
        names = sorted(run.metrics)
        logged = ", ".join(names[:20]) + (f" and {len(names) - 20} more" if len(names) > 20 else "")
        raise NotFoundError(f"run {run.id} has no metric {missing[0]!r} (it logged: {logged})")
    return run, [runs.metrics.history(run.id, key) for key in wanted]


# -- summaries -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HistoryStats:
    """A metric history in numbers: first and last by step, range, NaN and infinity counts."""

    key: str
    count: int
    first_step: int | None
    last_step: int | None
    first: float | None
    last: float | None
    min: float | None
    max: float | None
    nan: int
    inf: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (NaN and infinities as strings)."""
        return {
            "key": self.key,
            "count": self.count,
            "first_step": self.first_step,
            "last_step": self.last_step,
            "first": _json_number(self.first),
            "last": _json_number(self.last),
            "min": _json_number(self.min),
            "max": _json_number(self.max),
            "nan": self.nan,
            "inf": self.inf,
        }


def history_stats(history: MetricHistory) -> HistoryStats:
    """Summarise a history; first and last go by step, then time, like a run's latest value."""
    values = history.values
    if len(values) == 0:
        return HistoryStats(history.key, 0, None, None, None, None, None, None, 0, 0)
    order = np.lexsort((history.timestamps, history.steps))
    nan = np.isnan(values)
    numbers = values[~nan]
    return HistoryStats(
        key=history.key,
        count=len(values),
        first_step=int(history.steps[order[0]]),
        last_step=int(history.steps[order[-1]]),
        first=float(values[order[0]]),
        last=float(values[order[-1]]),
        min=float(numbers.min()) if len(numbers) else None,
        max=float(numbers.max()) if len(numbers) else None,
        nan=int(nan.sum()),
        inf=int(np.isinf(values).sum()),
    )


@dataclass(frozen=True, slots=True)
class ComparisonRow:
    """One line of a comparison: a field's value in each run, and whether they differ."""

    section: str  # "attribute", "param" or "metric"
    key: str
    values: tuple[object, ...]  # None where a run has no such field
    differs: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "section": self.section,
            "key": self.key,
            "values": [_json_number(v) if isinstance(v, float) else v for v in self.values],
            "differs": self.differs,
        }


@dataclass(frozen=True, slots=True)
class RunComparison:
    """Runs side by side: attributes, every param and every metric's latest value."""

    runs: tuple[Run, ...]
    rows: tuple[ComparisonRow, ...]
    shared_metrics: tuple[str, ...]  # metric keys two or more of the runs logged

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "runs": [
                {"id": r.id, "name": r.name, "experiment": r.experiment, "status": r.status}
                for r in self.runs
            ],
            "rows": [row.to_dict() for row in self.rows],
            "shared_metrics": list(self.shared_metrics),
        }


def compare(runs: Sequence[Run]) -> RunComparison:
    """Lay runs side by side; a field differs when any two runs disagree or one lacks it."""
    rows: list[ComparisonRow] = []

    def add(section: str, key: str, values: Sequence[object]) -> None:
        distinct = {("nan",) if isinstance(v, float) and math.isnan(v) else (v,) for v in values}
        rows.append(ComparisonRow(section, key, tuple(values), len(distinct) > 1))

    add("attribute", "experiment", [r.experiment for r in runs])
    add("attribute", "status", [r.status for r in runs])
    add("attribute", "start_time", [r.start_time.isoformat(timespec="seconds") for r in runs])
    add("attribute", "duration", [r.duration for r in runs])
    for key in sorted({k for r in runs for k in r.params}):
        add("param", key, [r.params.get(key) for r in runs])
    counts: dict[str, int] = {}
    for run in runs:
        for key in run.metrics:
            counts[key] = counts.get(key, 0) + 1
    for key in sorted(counts):
        add("metric", key, [r.metrics[key].value if key in r.metrics else None for r in runs])
    shared = tuple(k for k in sorted(counts) if counts[k] >= 2)
    return RunComparison(tuple(runs), tuple(rows), shared)


def compare_runs(runs: RunService, refs: Sequence[str]) -> RunComparison:
    """Compare two or more runs given by id or short id.

    Raises:
        InvalidArgumentError: if fewer than two distinct runs are named.
        NotFoundError: if a run does not exist.
    """
    found = list({run.id: run for run in (resolve_run(runs, ref) for ref in refs)}.values())
    if len(found) < 2:
        raise InvalidArgumentError("compare needs two or more different runs")
    return compare(found)


def load_compare_histories(
    runs: RunService, comparison: RunComparison
) -> dict[str, dict[str, MetricHistory]]:
    """The histories of the shared metrics of compared runs, by run id and key."""
    return {
        run.id: {
            key: runs.metrics.history(run.id, key)
            for key in comparison.shared_metrics
            if key in run.metrics
        }
        for run in comparison.runs
    }


# -- charts ----------------------------------------------------------------------------------


def downsample(
    steps: npt.ArrayLike, values: npt.ArrayLike, max_points: int = MAX_DRAWN_POINTS
) -> tuple[npt.NDArray[Any], npt.NDArray[np.float64]]:
    """Thin a series for drawing, keeping every bucket's lowest and highest point.

    The points are cut, in order, into ``(max_points - 2) // 2`` buckets of (nearly) equal
    size; each bucket keeps its minimum and maximum, in their original order, so spikes and
    dips survive. The first and last points are kept too, so the line spans the whole range.
    NaN points are ignored within a bucket; a bucket of only NaN keeps one NaN so that a line
    still breaks there.

    Args:
        steps: the x values.
        values: the y values, as many as ``steps``.
        max_points: the most points to return (4 or more).

    Returns:
        The kept steps and values; the input as arrays when it is short enough already.

    Raises:
        InvalidArgumentError: if the lengths differ or ``max_points`` is below 4.
    """
    x = np.asarray(steps)
    y = np.asarray(values, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise InvalidArgumentError(f"steps and values differ in length ({x.size} != {y.size})")
    if max_points < 4:
        raise InvalidArgumentError(f"max_points must be 4 or more, not {max_points}")
    if len(y) <= max_points:
        return x, y
    edges = np.linspace(0, len(y), (max_points - 2) // 2 + 1).astype(np.int64)
    keep = [0, len(y) - 1]
    for lo, hi in itertools.pairwise(edges.tolist()):
        part = y[lo:hi]
        if np.isnan(part).all():
            keep.append(lo)
            continue
        keep += [lo + int(np.nanargmin(part)), lo + int(np.nanargmax(part))]
    index = np.unique(np.asarray(keep, dtype=np.int64))  # sorted, each point once
    return x[index], y[index]


def svg_lines(
    series: Sequence[tuple[str, Sequence[float] | npt.ArrayLike, Sequence[float] | npt.ArrayLike]],
    width: int = 640,
    height: int = 240,
    *,
    max_points: int = MAX_DRAWN_POINTS,
) -> str:
    """A line chart of one or more series, with axes, ticks and a legend.

    Each series is ``(label, xs, ys)`` and gets the next colour of ``PALETTE``. Points are
    drawn in the order of x; NaN points are left out and break the line; infinite y values
    are drawn at the top or bottom edge and counted in a note; a series with one point shows
    as a dot. Series longer than ``max_points`` are thinned with ``downsample``.

    Args:
        series: the series to draw.
        width: the chart width in pixels.
        height: the height of the plot area with its axes; the legend adds rows below.
        max_points: the most points drawn per series.

    Returns:
        An ``<svg>`` element (labels escaped).

    Example:
        >>> svg = svg_lines([("loss", [0, 1, 2], [1.0, 0.5, 0.25])])
        >>> svg.startswith("<svg")
        True
    """
    left, right, top, bottom = 64, 16, 10, 26
    plot_w, plot_h = max(width - left - right, 10), max(height - top - bottom, 10)
    prepared: list[tuple[str, npt.NDArray[np.float64], npt.NDArray[np.float64]]] = []
    for label, xs, ys in series:
        x, y = downsample(np.asarray(xs, dtype=np.float64), ys, max_points)
        x = x.astype(np.float64)
        if len(x) > 1 and not bool(np.all(np.diff(x) >= 0)):
            order = np.argsort(x, kind="stable")
            x, y = x[order], y[order]
        prepared.append((str(label), x, y))
    drawn_x = [x[np.isfinite(x) & ~np.isnan(y)] for _, x, y in prepared]
    finite_y = [y[np.isfinite(y) & np.isfinite(x)] for _, x, y in prepared]
    all_x = np.concatenate(drawn_x) if drawn_x else np.empty(0)
    all_y = np.concatenate(finite_y) if finite_y else np.empty(0)
    base = top + plot_h + bottom
    legend, legend_height = _legend([label for label, _, _ in prepared], width, base)
    clipped = sum(int((np.isinf(y) & np.isfinite(x)).sum()) for _, x, y in prepared)
    note_y = base + legend_height + 12
    total = base + legend_height + (16 if clipped else 0) + 4
    parts = [
        f'<svg width="{width}" height="{total}" viewBox="0 0 {width} {total}" role="img" '
        f'aria-label="line chart of {len(prepared)} series">'
    ]
    if len(all_x) == 0:
        parts.append(
            f'<text x="{left + plot_w / 2:.1f}" y="{top + plot_h / 2:.1f}" '
            f'text-anchor="middle">no data to draw</text>'
        )
        return "".join(parts) + legend + "</svg>"
    x0, x1 = _padded(float(all_x.min()), float(all_x.max()))
    y_lo = float(all_y.min()) if len(all_y) else 0.0
    y_hi = float(all_y.max()) if len(all_y) else 1.0
    y_ticks = _ticks(*_padded(y_lo, y_hi))
    y0, y1 = min(y_ticks[0], y_lo), max(y_ticks[-1], y_hi)
    if y0 == y1:  # pragma: no cover - _padded keeps them apart
        y1 = y0 + 1.0

    def sx(v: float) -> float:
        return left + (v - x0) / (x1 - x0) * plot_w

    # Infinities get a band of their own at the edge, apart from the largest finite value.
    has_inf = [bool((y == v).any()) for v in (math.inf, -math.inf) for _, _, y in prepared]
    band_top = 16.0 if any(has_inf[: len(prepared)]) else 0.0
    band_bottom = 16.0 if any(has_inf[len(prepared) :]) else 0.0
    inner = plot_h - band_top - band_bottom

    def sy(v: float) -> float:
        if v == math.inf:
            return float(top)
        if v == -math.inf:
            return float(top + plot_h)
        # Halved so that a range as wide as the floats themselves does not overflow.
        share = (v / 2 - y0 / 2) / (y1 / 2 - y0 / 2)
        return top + plot_h - band_bottom - share * inner

    for tick in y_ticks:
        if y0 <= tick <= y1:
            py = sy(tick)
            parts.append(
                f'<line x1="{left}" y1="{py:.2f}" x2="{left + plot_w}" y2="{py:.2f}" '
                f'stroke="{_GRID}"/><text x="{left - 6}" y="{py + 4:.2f}" text-anchor="end">'
                f"{escape(_tick_label(tick))}</text>"
            )
    for band, at, sign in ((band_top, top, "+"), (band_bottom, top + plot_h, "-")):
        if band:
            parts.append(f'<text x="{left - 6}" y="{at + 4}" text-anchor="end">{sign}∞</text>')
    whole = bool(np.all(all_x == np.round(all_x)))
    for tick in _ticks(x0, x1, whole=whole):
        if x0 <= tick <= x1:
            px = sx(tick)
            parts.append(
                f'<line x1="{px:.2f}" y1="{top + plot_h}" x2="{px:.2f}" y2="{top + plot_h + 4}" '
                f'stroke="{_AXIS}"/><text x="{px:.2f}" y="{top + plot_h + 17}" '
                f'text-anchor="middle">{escape(_tick_label(tick))}</text>'
            )
    parts.append(
        f'<path d="M{left},{top}V{top + plot_h}H{left + plot_w}" fill="none" stroke="{_AXIS}"/>'
    )
    for i, (label, x, y) in enumerate(prepared):
        color = PALETTE[i % len(PALETTE)]
        parts.append(f"<g><title>{escape(label)}</title>")
        for segment in _segments(x, y):
            points = [(sx(float(x[j])), sy(float(y[j]))) for j in segment]
            if len(points) == 1:
                px, py = points[0]
                parts.append(f'<circle cx="{px:.2f}" cy="{py:.2f}" r="2.5" fill="{color}"/>')
                continue
            path = "L".join(f"{px:.2f},{py:.2f}" for px, py in points)
            parts.append(
                f'<path d="M{path}" fill="none" stroke="{color}" stroke-width="1.5" '
                'stroke-linejoin="round"/>'
            )
        parts.append("</g>")
    parts.append(legend)
    if clipped:
        parts.append(
            f'<text x="{left}" y="{note_y}">{clipped} infinite value(s) drawn at the edge '
            "of the plot</text>"
        )
    return "".join(parts) + "</svg>"


def _segments(x: npt.NDArray[np.float64], y: npt.NDArray[np.float64]) -> list[list[int]]:
    """Runs of consecutive drawable points: a NaN (or an infinite x) breaks the line."""
    drawable = np.isfinite(x) & ~np.isnan(y)
    segments: list[list[int]] = []
    current: list[int] = []
    for j, ok in enumerate(drawable.tolist()):
        if ok:
            current.append(j)
        elif current:
            segments.append(current)
            current = []
    if current:
        segments.append(current)
    return segments


def _legend(labels: Sequence[str], width: int, y: int) -> tuple[str, int]:
    """Legend items in rows under the plot; the SVG and the height it takes."""
    if not labels:
        return "", 0
    parts: list[str] = []
    x, row = 64, 0
    for i, label in enumerate(labels):
        short = label if len(label) <= 40 else label[:39] + "…"
        item = 16 + 7 * len(short) + 14
        if x + item > width and x > 64:
            x, row = 64, row + 1
        top = y + row * _LEGEND_ROW
        parts.append(
            f"<g><title>{escape(label)}</title>"
            f'<rect x="{x}" y="{top + 2}" width="10" height="10" '
            f'fill="{PALETTE[i % len(PALETTE)]}"/>'
            f'<text x="{x + 14}" y="{top + 11}">{escape(short)}</text></g>'
        )
        x += item
    return "".join(parts), (row + 1) * _LEGEND_ROW


def _padded(lo: float, hi: float) -> tuple[float, float]:
    if lo < hi:
        return lo, hi
    pad = abs(lo) * 0.1 or 1.0
    return lo - pad, hi + pad


def _ticks(lo: float, hi: float, count: int = 5, *, whole: bool = False) -> list[float]:
    """About ``count`` round numbers (1, 2, 2.5 or 5 times a power of ten) covering the range.

    With ``whole``, ticks are whole numbers (training steps have no halves).
    """
    span = hi - lo
    if not math.isfinite(span) or span <= 0:
        return [lo, hi]
    raw = max(span / count, 1.0) if whole else span / count
    magnitude = 10.0 ** math.floor(math.log10(raw))
    factors = (1, 2, 5, 10) if whole else (1, 2, 2.5, 5, 10)
    step = next(m * magnitude for m in factors if m * magnitude >= raw)
    first = math.floor(lo / step)
    last = math.ceil(hi / step)
    return [float(i * step) for i in range(first, last + 1)]


def _tick_label(value: float) -> str:
    if value == 0:
        return "0"
    if value.is_integer() and abs(value) < 1e7:
        return str(int(value))
    return f"{value:.4g}"


def _json_number(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    return value


# -- pages -----------------------------------------------------------------------------------


def _label(run: Run) -> str:
    return f"{run.name} ({short_id(run.id)})"


def _notes(history: MetricHistory) -> str:
    notes = []
    if len(history) > MAX_DRAWN_POINTS:
        notes.append(
            f"{format_value(len(history))} points drawn as about {MAX_DRAWN_POINTS:,} "
            "(each bucket's min and max kept)"
        )
    nan = int(np.isnan(history.values).sum())
    if nan:
        notes.append(f"{format_value(nan)} NaN point(s) left out")
    inf = int(np.isinf(history.values).sum())
    if inf:
        notes.append(f"{format_value(inf)} infinite value(s) drawn at the edge")
    return f'<p class="muted">{escape("; ".join(notes))}</p>' if notes else ""


def _none(text: str) -> str:
    return f'<p class="muted">{escape(text)}</p>'


def _cell(value: object) -> str:
    text = escape(format_value(value))
    return f'<td class="num">{text}</td>' if isinstance(value, (int, float)) else f"<td>{text}</td>"


def render_history_html(run: Run, histories: Sequence[MetricHistory]) -> str:
    """One self-contained page: a run's metric histories as a table and one chart per key.

    Args:
        run: the run.
        histories: the histories to show, in order.

    Returns:
        The HTML page.
    """
    meta = {
        "run": run.id,
        "experiment": run.experiment,
        "status": run.status,
        "started": run.start_time.isoformat(timespec="seconds"),
        "duration": "running" if run.duration is None else f"{run.duration:.1f} s",
    }
    meta_rows = "".join(
        f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in meta.items()
    )
    head = "".join(
        f"<th>{h}</th>"
        for h in ("metric", "points", "first step", "last step", "first", "last", "min", "max")
    )
    rows = []
    for history in histories:
        s = history_stats(history)
        cells = (s.count, s.first_step, s.last_step, s.first, s.last, s.min, s.max)
        rows.append(f"<tr><td>{escape(s.key)}</td>{''.join(_cell(v) for v in cells)}</tr>")
    charts = "".join(
        f'<section class="chart"><h3>{escape(h.key)}</h3>{_notes(h)}'
        f"{svg_lines([(h.key, h.steps, h.values)])}</section>"
        for h in histories
    )
    body = (
        f"<style>{_CSS}</style><h1>{escape(run.name)}</h1><table>{meta_rows}</table>"
        f"<h2>Metrics</h2><table><tr>{head}</tr>{''.join(rows)}</table>"
        f"<h2>Histories</h2>{charts or _none('no metrics logged')}"
    )
    return html_page(f"{run.name}: metric histories", body)


def render_compare_html(
    runs: Sequence[Run], histories_by_run: Mapping[str, Mapping[str, MetricHistory]]
) -> str:
    """One self-contained page comparing runs: a side-by-side table and overlaid charts.

    Args:
        runs: the runs, in column order.
        histories_by_run: histories by run id and metric key; each key gets a chart with
            one line per run that has it.

    Returns:
        The HTML page.
    """
    comparison = compare(runs)
    head = "".join(f"<th>{escape(_label(r))}</th>" for r in runs)
    sections = {"attribute": "Attributes", "param": "Params", "metric": "Metrics (latest)"}
    rows: list[str] = []
    for section, title in sections.items():
        chosen = [row for row in comparison.rows if row.section == section]
        if not chosen:
            continue
        rows.append(f'<tr><th colspan="{len(runs) + 1}"><h3>{title}</h3></th></tr>')
        for row in chosen:
            style = ' class="diff"' if row.differs else ""
            cells = "".join(_cell(v) for v in row.values)
            rows.append(f"<tr{style}><th>{escape(row.key)}</th>{cells}</tr>")
    keys = sorted({k for per_run in histories_by_run.values() for k in per_run})
    charts = []
    for key in keys:
        lines = [
            (_label(r), h.steps, h.values)
            for r in runs
            if (h := histories_by_run.get(r.id, {}).get(key)) is not None
        ]
        charts.append(f'<section class="chart"><h3>{escape(key)}</h3>{svg_lines(lines)}</section>')
    differing = sum(row.differs for row in comparison.rows)
    body = (
        f"<style>{_CSS}</style><h1>{len(runs)} runs compared</h1>"
        f'<p class="muted">{differing} field(s) differ (highlighted)</p>'
        f"<table><tr><th></th>{head}</tr>{''.join(rows)}</table>"
        f"<h2>Shared metrics</h2>{''.join(charts) or _none('no shared metrics')}"
    )
    return html_page(f"compare {', '.join(short_id(r.id) for r in runs)}", body)
