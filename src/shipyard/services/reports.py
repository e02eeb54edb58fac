"""HTML reports: one self-contained page per profile, and the pieces other reports reuse.

A report is a single HTML file with its CSS inline, its plots as inline SVG and no script,
font or link that reaches the network; a Content-Security-Policy forbids any. Everything that
comes from data or users is escaped. ``html_page``, ``svg_bars``, ``svg_hbars`` and
``format_value`` are shared with the dataset diff and drift reports.
"""

from __future__ import annotations

import html
import itertools
import math
import re
from collections.abc import Mapping, Sequence
from types import MappingProxyType

from shipyard.domain.diffs import DatasetDiff
from shipyard.domain.profiles import ColumnProfile, TableProfile

__all__ = [
    "escape",
    "format_value",
    "html_page",
    "render_diff_html",
    "render_profile_html",
    "svg_bars",
    "svg_hbars",
]

_NO_META: Mapping[str, str] = MappingProxyType({})
_BAR = "#4c78a8"
_BULLET = re.compile(r"^\s*[-*+]\s+")
_AXIS = "#888"
_CSS = """
:root { color-scheme: light; --muted: #666; --line: #ddd; --accent: #4c78a8; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       margin: 0 auto; max-width: 1200px; padding: 24px; color: #222; background: #fafafa; }
h1 { margin: 0 0 8px; font-size: 24px; } h2 { margin: 32px 0 12px; font-size: 18px; }
h3 { margin: 0 0 4px; font-size: 16px; word-break: break-all; }
table { border-collapse: collapse; }
th, td { text-align: left; padding: 3px 10px 3px 0; border-bottom: 1px solid var(--line);
         vertical-align: top; }
th { font-weight: 600; color: var(--muted); }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
code { background: #eee; padding: 0 3px; border-radius: 3px; }
.muted { color: var(--muted); }
.badge { display: inline-block; padding: 0 6px; margin-right: 4px; border-radius: 8px;
         background: #e8eef6; color: #234; font-size: 12px; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(380px, 1fr)); gap: 16px; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 14px; }
.card table { width: 100%; margin: 8px 0; }
svg { display: block; margin-top: 8px; overflow: visible; }
svg text { font: 11px system-ui, sans-serif; fill: #444; }
"""


def escape(value: object) -> str:
    """Text made safe for HTML content and attribute values (quotes included)."""
    return html.escape(str(value), quote=True)


def format_value(value: object) -> str:
    """Format a statistic for people: grouped integers, 6 significant digits, "—" for none.

    Args:
        value: an int, float, string or None.

    Returns:
        Plain text (not yet escaped).
    """
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.0f}" if value.is_integer() and abs(value) < 1e15 else f"{value:.6g}"
    return str(value)


def html_page(title: str, body: str) -> str:
    """Wrap report HTML in a complete, self-contained page.

    Args:
        title: the page title (plain text; escaped here).
        body: the HTML of the page body (already safe).

    Returns:
        The page, with inline CSS and a policy that blocks scripts and network access.
    """
    policy = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{policy}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n"
        f"<body>\n{body}\n</body>\n</html>\n"
    )


def svg_bars(
    labels: Sequence[str],
    values: Sequence[float],
    width: int = 360,
    height: int = 120,
    *,
    axis: tuple[str, str] | None = None,
    color: str = _BAR,
) -> str:
    """Vertical bars, one per value, each with a tooltip ``label: value``.

    Args:
        labels: one label per bar (shown on hover).
        values: the bar heights; negative values draw as empty bars.
        width: the plot width in pixels.
        height: the plot height in pixels, captions included.
        axis: captions under the left and right ends of the axis, such as a histogram's
            first and last edges.
        color: the bar fill colour.

    Returns:
        An ``<svg>`` element.
    """
    plot = height - (16 if axis else 2)
    top = max((v for v in values if math.isfinite(v)), default=0.0) or 1.0
    step = width / max(len(values), 1)
    parts = [_svg_open(width, height, f"bar chart of {len(values)} values")]
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        bar = max(0.0, plot * value / top) if math.isfinite(value) else 0.0
        if 0 < bar < 1:
            bar = 1.0  # a small but non-zero count stays visible
        parts.append(
            f'<rect x="{i * step:.2f}" y="{plot - bar:.2f}" width="{max(step - 1, 0.5):.2f}" '
            f'height="{bar:.2f}" fill="{escape(color)}"><title>{escape(label)}: '
            f"{escape(format_value(value))}</title></rect>"
        )
    parts.append(f'<line x1="0" y1="{plot}" x2="{width}" y2="{plot}" stroke="{_AXIS}"/>')
    if axis:
        parts.append(f'<text x="0" y="{height - 2}">{escape(axis[0])}</text>')
        parts.append(
            f'<text x="{width}" y="{height - 2}" text-anchor="end">{escape(axis[1])}</text>'
        )
    return "".join(parts) + "</svg>"


def svg_hbars(
    labels: Sequence[str],
    values: Sequence[float],
    width: int = 360,
    *,
    bar_height: int = 18,
    label_width: int = 130,
    color: str = _BAR,
) -> str:
    """Horizontal bars with the label on the left and the value on the right.

    Args:
        labels: one label per bar; long labels are cut, with the full text on hover.
        values: the bar lengths; negative values draw as empty bars.
        width: the plot width in pixels.
        bar_height: pixels per bar, gap included.
        label_width: pixels kept for the labels.
        color: the bar fill colour.

    Returns:
        An ``<svg>`` element.
    """
    height = bar_height * len(values) + 2
    span = max(width - label_width - 60, 10)
    top = max((v for v in values if math.isfinite(v)), default=0.0) or 1.0
    chars = max(label_width // 7, 4)
    parts = [_svg_open(width, height, f"bar chart of {len(values)} values")]
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        y = i * bar_height
        bar = max(0.0, span * value / top) if math.isfinite(value) else 0.0
        short = label if len(label) <= chars else label[: chars - 1] + "…"
        parts.append(
            f"<g><title>{escape(label)}: {escape(format_value(value))}</title>"
            f'<text x="{label_width - 6}" y="{y + bar_height * 0.7:.1f}" text-anchor="end">'
            f"{escape(short)}</text>"
            f'<rect x="{label_width}" y="{y + 2}" width="{max(bar, 1.0):.2f}" '
            f'height="{bar_height - 4}" fill="{escape(color)}"/>'
            f'<text x="{label_width + bar + 4:.2f}" y="{y + bar_height * 0.7:.1f}">'
            f"{escape(format_value(value))}</text></g>"
        )
    return "".join(parts) + "</svg>"


def _svg_open(width: int, height: int, label: str) -> str:
    return (
        f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="{escape(label)}">'
    )


def render_profile_html(
    profile: TableProfile,
    *,
    title: str,
    description_md: str = "",
    meta: Mapping[str, str] = _NO_META,
) -> str:
    """Render a table profile as one self-contained HTML page.

    Args:
        profile: the profile to show.
        title: the page heading, such as ``customers@3``.
        description_md: a description in a small Markdown subset (paragraphs, ``#``
            headings, ``-`` lists, ``code``, ``**bold**``, ``*italic*``).
        meta: key/value pairs shown under the title (source, created by, digest...).

    Returns:
        The HTML page.

    Example:
        >>> page = render_profile_html(profile, title="customers@3")  # doctest: +SKIP
    """
    meta_rows = "".join(
        f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in meta.items()
    )
    header = (
        f"<header><h1>{escape(title)}</h1>"
        f'<p class="muted">{format_value(profile.rows)} rows, '
        f"{format_value(len(profile.schema))} columns"
        + (
            f"; estimated statistics (≈) from a sample of {format_value(profile.sample_rows)} rows"
            if profile.sample_rows is not None
            else ""
        )
        + "</p>"
        + (f"<table>{meta_rows}</table>" if meta_rows else "")
        + "</header>"
    )
    description = f"<section>{_markdown(description_md)}</section>" if description_md else ""
    cards = "".join(_card(i, c) for i, c in enumerate(profile.columns))
    body = (
        f"{header}{description}<h2>Schema</h2>{_schema_table(profile)}"
        f'<h2>Columns</h2><div class="cards">{cards}</div>'
    )
    return html_page(title, body)


def _schema_table(profile: TableProfile) -> str:
    rows = []
    for i, field in enumerate(profile.schema):
        column = profile.columns[i] if i < len(profile.columns) else None
        rows.append(
            f'<tr><td class="num">{i + 1}</td><td><a href="#col-{i}">{escape(field.name)}</a></td>'
            f"<td><code>{escape(field.type)}</code></td>"
            f"<td>{'yes' if field.nullable else 'no'}</td>"
            f"<td>{escape(column.kind) if column else '—'}</td>"
            f'<td class="num">{f"{column.na_share:.1%}" if column else "—"}</td></tr>'
        )
    head = "<tr><th>#</th><th>name</th><th>type</th><th>nullable</th><th>kind</th><th>missing</th>"
    return f"<table>{head}</tr>{''.join(rows)}</table>"


def _card(index: int, c: ColumnProfile) -> str:
    stats: list[tuple[str, object]] = [
        ("rows", c.count),
        ("nulls", f"{format_value(c.nulls)} ({c.na_share:.1%} missing)"),
        ("distinct", f"{'≈ ' if c.distinct_approx else ''}{format_value(c.distinct)}"),
    ]
    if c.kind in ("numeric", "temporal"):
        stats += [("min", c.min), ("max", c.max)]
    if c.kind == "numeric":
        stats += [("mean", c.mean), ("std", c.std)]
        stats += list(c.quantiles.items())
        if c.nan_count or c.inf_count:
            stats += [("NaN", c.nan_count), ("±inf", c.inf_count)]
    table = "".join(
        f'<tr><th>{escape(k)}</th><td class="num">{escape(format_value(v))}</td></tr>'
        for k, v in stats
    )
    return (
        f'<section class="card" id="col-{index}"><h3>{escape(c.name)}</h3>'
        f'<span class="badge">{escape(c.kind)}</span><code>{escape(c.type)}</code>'
        f"<table>{table}</table>{_plot(c)}</section>"
    )


def _plot(c: ColumnProfile) -> str:
    if c.histogram is not None:
        edges, counts = c.histogram.edges, c.histogram.counts
        labels = [
            f"[{format_value(lo)}, {format_value(hi)}{']' if i == len(counts) - 1 else ')'}"
            for i, (lo, hi) in enumerate(itertools.pairwise(edges))
        ]
        axis = (format_value(edges[0]), format_value(edges[-1]))
        return svg_bars(labels, [float(n) for n in counts], axis=axis)
    if c.top:
        more = len(c.top) < c.distinct
        caption = (
            f'<p class="muted">top {len(c.top)} of {format_value(c.distinct)}</p>' if more else ""
        )
        return caption + svg_hbars([v for v, _ in c.top], [float(n) for _, n in c.top])
    return ""


def _markdown(text: str) -> str:
    """A small, safe Markdown subset: every character is escaped before any tag is added."""
    out = []
    for block in re.split(r"\n[ \t]*\n", text.strip()):
        lines = block.splitlines()
        heading = re.fullmatch(r"(#{1,4})\s+(.*)", block.strip())
        if heading and len(lines) == 1:
            level = min(len(heading.group(1)) + 2, 6)  # the page owns h1 and h2
            out.append(f"<h{level}>{_inline(heading.group(2))}</h{level}>")
        elif all(_BULLET.match(line) for line in lines):
            items = "".join(f"<li>{_inline(_BULLET.sub('', line))}</li>" for line in lines)
            out.append(f"<ul>{items}</ul>")
        else:
            out.append(f"<p>{_inline(' '.join(line.strip() for line in lines))}</p>")
    return "".join(out)


def _inline(text: str) -> str:
    escaped = html.escape(text, quote=True)
    escaped = re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)
    escaped = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", escaped)
    return re.sub(r"(?<![*\w])\*([^*]+)\*(?![*\w])", r"<em>\1</em>", escaped)


def render_diff_html(diff: DatasetDiff) -> str:
    """One self-contained page showing what changed between two versions.

    Args:
        diff: the diff to render.

    Returns:
        The HTML text.
    """
    parts = [f"<h1>{escape(diff.old)} → {escape(diff.new)}</h1>"]
    if diff.same_content:
        parts.append("<p>The two versions hold the same content.</p>")
    rows_old = format_value(diff.rows_old)
    rows_new = format_value(diff.rows_new)
    parts.append(f"<p class='muted'>rows: {escape(rows_old)} → {escape(rows_new)}</p>")
    if diff.files:
        body = "".join(
            f"<tr><td>{escape(f.path)}</td><td>{escape(f.change)}</td>"
            f"<td class='num'>{escape(format_value(f.old_size))}</td>"
            f"<td class='num'>{escape(format_value(f.new_size))}</td></tr>"
            for f in diff.files
        )
        parts.append(
            "<h2>Files</h2><table><tr><th>file</th><th>change</th><th>old bytes</th>"
            f"<th>new bytes</th></tr>{body}</table>"
        )
    if diff.schema:
        body = "".join(
            f"<tr><td>{escape(c.name)}</td><td>{escape(c.change)}</td>"
            f"<td>{escape(c.old_type or '')}</td><td>{escape(c.new_type or '')}</td></tr>"
            for c in diff.schema
        )
        parts.append(
            "<h2>Schema</h2><table><tr><th>column</th><th>change</th><th>old type</th>"
            f"<th>new type</th></tr>{body}</table>"
        )
    if diff.rows is not None:
        r = diff.rows
        labels = ["added", "removed", "changed", "unchanged"]
        values = [float(r.added), float(r.removed), float(r.changed), float(r.unchanged)]
        key = ", ".join(r.key) if r.key else "whole rows (no key)"
        parts.append(f"<h2>Rows</h2><p class='muted'>matched by {escape(key)}</p>")
        parts.append(svg_hbars(labels, values))
        for kind, samples in r.samples.items():
            if samples:
                items = "".join(f"<li><code>{escape(sample)}</code></li>" for sample in samples)
                parts.append(f"<h3>{escape(kind)} (sample)</h3><ul>{items}</ul>")
    if diff.columns:
        body = "".join(
            f"<tr><td>{escape(c.name)}</td><td class='num'>{escape(format_value(c.mean_old))}</td>"
            f"<td class='num'>{escape(format_value(c.mean_new))}</td>"
            f"<td class='num'>{escape(format_value(c.mean_shift))}</td>"
            f"<td class='num'>{c.na_old:.1%} → {c.na_new:.1%}</td>"
            f"<td class='num'>{escape(format_value(c.psi))}</td></tr>"
            for c in diff.columns
        )
        parts.append(
            "<h2>Columns</h2><table><tr><th>column</th><th>old mean</th><th>new mean</th>"
            "<th>shift (std)</th><th>NA</th><th>PSI</th></tr>" + body + "</table>"
        )
        scored = [c for c in diff.columns if c.psi is not None]
        if scored:
            parts.append("<h3>PSI by column</h3>")
            parts.append(svg_hbars([c.name for c in scored], [float(c.psi or 0) for c in scored]))
    return html_page(f"{diff.old} → {diff.new}", "\n".join(parts))
