"""A drift report as one self-contained HTML page.

The page has the verdict, a table of every column's test, data quality issues, model
quality, and per column the reference and current distributions side by side: histograms on
the same edges (numeric) or the same categories (categorical). It uses ``html_page`` and the
SVG bar charts of ``shipyard.services.reports``: no script, no network.
"""

from __future__ import annotations

import itertools

from shipyard.domain.drift import ColumnDrift, ColumnSummary, DriftReport
from shipyard.services.reports import escape, format_value, html_page, svg_bars, svg_hbars

__all__ = ["render_drift_html"]

_REFERENCE = "#4c78a8"
_CURRENT = "#f58518"
_DRIFT_CSS = (
    "<style>.drift{color:#b00020;font-weight:600}.ok{color:#2e7d32}"
    ".pair{display:grid;grid-template-columns:1fr 1fr;gap:8px}</style>"
)


def _number(value: float | None) -> str:
    return "—" if value is None else escape(format_value(value))


def _verdict(drifted: bool) -> str:
    return '<span class="drift">drift</span>' if drifted else '<span class="ok">no drift</span>'


def _plot(summary: ColumnSummary, color: str, caption: str) -> str:
    if summary.edges and summary.counts:
        edges = summary.edges
        labels = [
            f"[{format_value(lo)}, {format_value(hi)})" for lo, hi in itertools.pairwise(edges)
        ]
        axis = (format_value(edges[0]), format_value(edges[-1]))
        chart = svg_bars(labels, list(summary.counts), width=260, axis=axis, color=color)
    elif summary.values:
        labels = list(summary.values) + (["(other)"] if summary.other else [])
        values = list(summary.counts) + ([summary.other] if summary.other else [])
        chart = svg_hbars(labels, values, width=260, label_width=90, color=color)
    else:
        chart = '<p class="muted">no values</p>'
    return f'<div><p class="muted">{escape(caption)}</p>{chart}</div>'


def _card(index: int, column: ColumnDrift) -> str:
    stats = [
        ("test", column.method or "not tested"),
        ("statistic", _number(column.statistic)),
        ("p-value", _number(column.p_value)),
        ("threshold", _number(column.threshold)),
    ]
    rows = "".join(f'<tr><th>{k}</th><td class="num">{escape(v)}</td></tr>' for k, v in stats)
    note = f'<p class="muted">{escape(column.note)}</p>' if column.note else ""
    plots = _plot(column.reference, _REFERENCE, "reference") + _plot(
        column.current, _CURRENT, "current"
    )
    return (
        f'<section class="card" id="col-{index}"><h3>{escape(column.name)}</h3>'
        f'<span class="badge">{escape(column.kind)}</span>{_verdict(column.drifted)}'
        f'<table>{rows}</table>{note}<div class="pair">{plots}</div></section>'
    )


def _columns_table(columns: list[ColumnDrift]) -> str:
    rows = "".join(
        f'<tr><td><a href="#col-{i}">{escape(c.name)}</a></td><td>{escape(c.kind)}</td>'
        f"<td>{escape(c.method or '—')}</td><td class='num'>{_number(c.statistic)}</td>"
        f"<td class='num'>{_number(c.p_value)}</td><td class='num'>{_number(c.threshold)}</td>"
        f"<td>{_verdict(c.drifted) if c.method else escape(c.note)}</td></tr>"
        for i, c in enumerate(columns)
    )
    head = (
        "<tr><th>column</th><th>kind</th><th>test</th><th>statistic</th><th>p-value</th>"
        "<th>threshold</th><th>result</th></tr>"
    )
    return f"<table>{head}{rows}</table>"


def render_drift_html(report: DriftReport, *, title: str | None = None) -> str:
    """Render a drift report as one self-contained HTML page.

    Args:
        report: the report.
        title: the page heading (default: ``reference → current``).

    Returns:
        The HTML page.
    """
    title = title or f"Drift: {report.reference} → {report.current}"
    columns = list(report.columns) + ([report.prediction] if report.prediction else [])
    tested = [c for c in report.columns if c.method]
    parts = [
        _DRIFT_CSS,
        f"<header><h1>{escape(title)}</h1>",
        f'<p class="muted">reference {format_value(report.reference_rows)} rows, current '
        f"{format_value(report.current_rows)} rows</p></header>",
    ]
    if report.status == "no_data":
        parts.append("<p><strong>No data:</strong> the current window holds no rows.</p>")
    else:
        parts.append(
            f"<p>Dataset: {_verdict(report.dataset_drift)} — "
            f"{sum(c.drifted for c in tested)} of {len(tested)} columns drifted "
            f"({report.drifted_share:.0%}; threshold {report.drift_share:.0%}).</p>"
        )
    if report.prediction is not None:
        parts.append(f"<p>Prediction: {_verdict(report.prediction.drifted)}</p>")
    if report.quality.issues:
        items = "".join(f"<li>{escape(issue)}</li>" for issue in report.quality.issues)
        parts.append(f"<h2>Data quality</h2><ul>{items}</ul>")
    if report.model is not None:
        rows = "".join(
            f"<tr><td>{escape(m.name)}</td><td class='num'>{_number(m.value)}</td>"
            f"<td class='num'>{_number(m.baseline)}</td>"
            f"<td>{'<span class=drift>degraded</span>' if m.degraded else 'ok'}</td></tr>"
            for m in report.model.metrics
        )
        parts.append(
            f"<h2>Model quality</h2><p class='muted'>{report.model.rows:,} labelled rows</p>"
            f"<table><tr><th>metric</th><th>value</th><th>baseline</th><th></th></tr>"
            f"{rows}</table>"
        )
    if columns:
        parts.append(f"<h2>Columns</h2>{_columns_table(columns)}")
        cards = "".join(_card(i, c) for i, c in enumerate(columns))
        parts.append(f'<h2>Distributions</h2><div class="cards">{cards}</div>')
    return html_page(title, "\n".join(parts))
