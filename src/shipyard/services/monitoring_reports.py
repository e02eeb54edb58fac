"""The self-contained HTML report of a monitor run: M1's drift page plus the run's context.

The page holds the run's status and fired alerts, the drift score of every feature, the
operations numbers, the quality of earlier runs over time, and then the reference-vs-current
distributions drawn by ``shipyard.services.drift_reports``.
"""

from __future__ import annotations

from collections.abc import Sequence

from shipyard.domain.drift import DriftReport
from shipyard.domain.monitoring import MonitorRun
from shipyard.services.drift_reports import render_drift_html
from shipyard.services.reports import escape, format_value, svg_bars

__all__ = ["render_monitor_html"]

_OVER_TIME = ("drift_share", "missing_rate", "accuracy", "roc_auc", "rmse", "latency_p99_ms")


def _summary(run: MonitorRun) -> str:
    alerts = "".join(f"<li>{escape(a.message)}</li>" for a in run.alerts)
    window = (
        f"{run.window_start:%Y-%m-%d %H:%M} → {run.window_end:%Y-%m-%d %H:%M} UTC"
        if run.window_start and run.window_end
        else escape(run.current)
    )
    parts = [
        f"<section><h2>Monitor run {escape(run.id)}</h2>",
        f"<p>Model <strong>{escape(run.model_ref)}</strong>, reference {escape(run.reference)}, "
        f"window {window}, {run.rows:,} rows — status <strong>{escape(run.status)}</strong></p>",
    ]
    if alerts:
        parts.append(f"<h3>Alerts</h3><ul>{alerts}</ul>")
    skipped = "".join(f"<li>{escape(r.message)}</li>" for r in run.skipped)
    if skipped:
        parts.append(f'<h3>Rules not evaluated</h3><ul class="skipped">{skipped}</ul>')
    ops = [
        (k, run.metrics[k])
        for k in (
            "requests",
            "throughput_rps",
            "latency_p50_ms",
            "latency_p95_ms",
            "latency_p99_ms",
        )
        if k in run.metrics
    ]
    if ops:
        rows = "".join(
            f"<tr><td>{escape(k)}</td><td class='num'>{escape(format_value(v))}</td></tr>"
            for k, v in ops
        )
        parts.append(f"<h3>Operations</h3><table>{rows}</table>")
    scores = sorted(
        ((k[12:], v) for k, v in run.metrics.items() if k.startswith("drift_score.")),
        key=lambda kv: -kv[1],
    )
    if scores:
        parts.append("<h3>Drift score per feature</h3>")
        parts.append(svg_bars([n for n, _ in scores], [v for _, v in scores], width=480))
    return "".join(parts) + "</section>"


def _over_time(history: Sequence[MonitorRun]) -> str:
    runs = list(reversed(history))  # oldest first
    parts = []
    for metric in _OVER_TIME:
        points = [(r.created_at, r.metrics[metric]) for r in runs if metric in r.metrics]
        if len(points) < 2:
            continue
        labels = [f"{t:%Y-%m-%d %H:%M}" for t, _ in points]
        parts.append(f"<h3>{escape(metric)} over time</h3>")
        parts.append(svg_bars(labels, [v for _, v in points], width=480, height=90))
    return f"<section><h2>Quality over time</h2>{''.join(parts)}</section>" if parts else ""


def render_monitor_html(
    run: MonitorRun, report: DriftReport, history: Sequence[MonitorRun] = ()
) -> str:
    """One self-contained HTML page for a monitor run.

    Args:
        run: the run (its metrics and alerts).
        report: the drift report of its window.
        history: earlier runs of the same model, newest first (this run included or not).

    Returns:
        The HTML page.
    """
    page = render_drift_html(report, title=f"Monitoring {run.model_ref}: {run.status}")
    extra = _summary(run) + _over_time([run, *[h for h in history if h.id != run.id]])
    marker = "</header>"
    if marker in page:
        return page.replace(marker, marker + extra, 1)
    return page.replace("<body>", "<body>" + extra, 1)
