"""A pipeline run as a self-contained HTML page: its tasks on a timeline (a Gantt chart)."""

from __future__ import annotations

from collections.abc import Sequence

from shipyard.domain.pipelines import PipelineRun, TaskRun
from shipyard.services.reports import escape, format_value, html_page

__all__ = ["STATUS_COLORS", "render_run_html"]

STATUS_COLORS = {
    "succeeded": "#59a14f",
    "cached": "#76b7b2",
    "failed": "#e15759",
    "cancelled": "#bab0ac",
    "crashed": "#b07aa1",
    "running": "#4e79a7",
    "retrying": "#f28e2b",
    "pending": "#dddddd",
}
_ROW = 22
_LABEL = 180
_WIDTH = 900
_MAX_ROWS = 2_000  # a bigger DAG is drawn in part; the table below still lists it all


def render_run_html(run: PipelineRun, tasks: Sequence[TaskRun]) -> str:
    """The page for ``shipyard pipelines show RUN --html FILE``.

    Args:
        run: the pipeline run.
        tasks: its task runs.

    Returns:
        A complete HTML page with an inline SVG timeline and a task table.
    """
    start = run.started_at or run.created_at
    ends = [t.ended_at for t in tasks if t.ended_at] + [run.ended_at or run.heartbeat_at or start]
    span = max((max(e for e in ends if e) - start).total_seconds(), 1e-3)
    drawn = [t for t in tasks if t.started_at is not None][:_MAX_ROWS]
    height = _ROW * len(drawn) + 30
    bars = []
    scale = (_WIDTH - _LABEL - 10) / span
    for row, t in enumerate(drawn):
        assert t.started_at is not None
        x = _LABEL + (t.started_at - start).total_seconds() * scale
        end = t.ended_at or run.ended_at or run.heartbeat_at or t.started_at
        width = max(1.0, (end - t.started_at).total_seconds() * scale)
        y = row * _ROW + 4
        color = STATUS_COLORS.get(t.status, "#999")
        title = f"{t.key}: {t.status}, {format_value(t.duration)} s, attempt {t.attempt}"
        bars.append(
            f'<text x="4" y="{y + 13}" font-size="12">{escape(t.key[:28])}</text>'
            f'<rect x="{x:.1f}" y="{y}" width="{width:.1f}" height="{_ROW - 6}" '
            f'fill="{color}"><title>{escape(title)}</title></rect>'
        )
    axis_y = _ROW * len(drawn) + 20
    ticks = "".join(
        f'<text x="{_LABEL + i * (_WIDTH - _LABEL - 10) / 4:.0f}" y="{axis_y}" '
        f'font-size="11" fill="#666">{span * i / 4:.2f}s</text>'
        for i in range(5)
    )
    svg = (
        f'<svg width="{_WIDTH}" height="{height}" viewBox="0 0 {_WIDTH} {height}" role="img" '
        f'aria-label="timeline of pipeline run {escape(run.id)}">{"".join(bars)}{ticks}</svg>'
    )
    legend = " ".join(
        f'<span class="pill" style="background:{c}">{escape(s)}</span>'
        for s, c in STATUS_COLORS.items()
    )
    rows = "".join(
        f"<tr><td>{escape(t.key)}</td><td>{escape(t.status)}</td><td>{t.attempt}</td>"
        f"<td>{escape(format_value(t.duration))}</td><td>{escape(', '.join(t.upstream))}</td>"
        f"<td>{escape((t.error or '').strip().splitlines()[-1] if t.error else '')}</td></tr>"
        for t in tasks
    )
    body = (
        f"<h1>Pipeline {escape(run.pipeline)} — run {escape(run.id)}</h1>"
        f'<p class="muted">{escape(run.status)} · {escape(format_value(run.duration))} s · '
        f"target {escape(run.target)} · executor {escape(run.executor)} · "
        f"{len(tasks)} task(s)</p>"
        + (f"<pre>{escape(run.error)}</pre>" if run.error else "")
        + f"<h2>Timeline</h2><p>{legend}</p>{svg}"
        + "<h2>Tasks</h2><table><tr><th>task</th><th>status</th><th>attempt</th>"
        "<th>seconds</th><th>upstream</th><th>error</th></tr>" + rows + "</table>"
    )
    return html_page(f"pipeline run {run.id}", body)
