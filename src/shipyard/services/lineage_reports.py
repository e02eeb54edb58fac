"""Lineage for people: which record a reference names, and the graph as a self-contained page.

``resolve_lineage_root`` turns what a person types (``churn@champion``, ``customers@latest``,
a run id) into the lineage node it stands for; ``render_lineage_html`` draws a
``LineageGraph`` as inline SVG, nodes in columns by kind and edges labelled with their
relation, on a page with no script and nothing fetched from the network.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from shipyard.domain.lineage import KINDS, Edge, Node
from shipyard.errors import InvalidArgumentError, NotFoundError
from shipyard.services.datasets import DatasetService
from shipyard.services.lineage import LineageGraph, LineageService
from shipyard.services.registry import RegistryService
from shipyard.services.reports import escape, html_page
from shipyard.services.run_reports import resolve_run
from shipyard.services.runs import RunService

__all__ = ["COLUMN_ORDER", "render_lineage_html", "resolve_lineage_root"]

# Left to right, the way work flows: data, the runs that use it, the models they make, where
# those models serve and what watches them.
COLUMN_ORDER = (
    "dataset_version",
    "pipeline_run",
    "run",
    "model_version",
    "deployment",
    "monitor_run",
)

_BOX_W = 210
_BOX_H = 34
_COL_GAP = 110
_ROW_GAP = 16
_MARGIN = 16
_HEADER = 28
_CHARS = 30  # characters of an id that fit in a box; the full id is in the tooltip
_EXTRA_CSS = """
<style>
.lineage svg text.kind { font-weight: 600; fill: #666; }
.lineage svg text.rel { font-size: 10px; fill: #555; paint-order: stroke; stroke: #fafafa;
                        stroke-width: 3px; }
</style>
"""


def resolve_lineage_root(
    reference: str,
    kind: str | None = None,
    *,
    registry: RegistryService,
    datasets: DatasetService,
    runs: RunService,
    lineage: LineageService | None = None,
) -> Node:
    """The lineage node a reference names, with aliases and ``@latest`` made numbered.

    Without ``kind`` a reference is tried as a model version, then as a dataset version, and
    (when it holds no ``@``) as a run id: a name used by both a model and a dataset means the
    model unless ``kind="dataset_version"`` says otherwise. Kinds no service resolves yet
    (deployments, monitor runs, pipeline runs) take the id as given; without ``kind`` such an
    id is found through the lineage edges that name it.

    Args:
        reference: ``name@N``, ``name@latest``, ``name@ALIAS`` or a run id (or its short form).
        kind: one of ``shipyard.domain.lineage.KINDS``, or None to guess as above.
        registry: resolves model versions.
        datasets: resolves dataset versions.
        runs: resolves run ids.
        lineage: finds the kind of any other id from its edges.

    Returns:
        The node, whose id is the numbered reference (``churn@3``) or the full run id.

    Raises:
        InvalidArgumentError: for an unknown kind or a malformed reference.
        NotFoundError: if nothing of the kind (or of any kind tried) answers to it.
    """
    if kind is not None and kind not in KINDS:
        raise InvalidArgumentError(
            f"unknown lineage kind {kind!r}; kinds are {', '.join(_sorted_kinds(KINDS))}"
        )
    if kind == "model_version":
        return Node(kind, registry.resolve(reference).ref)
    if kind == "dataset_version":
        return Node(kind, datasets.resolve(reference).ref)
    if kind == "run":
        return Node(kind, resolve_run(runs, reference).id)
    if kind is not None:
        return Node(kind, reference)
    try:
        return Node("model_version", registry.resolve(reference).ref)
    except NotFoundError:
        pass
    try:
        return Node("dataset_version", datasets.resolve(reference).ref)
    except NotFoundError:
        pass
    if "@" not in reference:
        try:
            return Node("run", resolve_run(runs, reference).id)
        except (NotFoundError, InvalidArgumentError):
            pass
        # deployments, pipeline runs, monitor runs: whatever kind an edge knows this id as
        kinds = lineage.kinds_of(reference) if lineage is not None else []
        if len(kinds) == 1:
            return Node(kinds[0], reference)
        if kinds:
            raise InvalidArgumentError(
                f"{reference!r} is a {' and a '.join(kinds)}; say which with --kind"
            )
    raise NotFoundError(
        f"no model version, dataset version or run answers to {reference!r}; "
        "`shipyard models list`, `shipyard data list` and `shipyard runs list` show them"
    )


def render_lineage_html(graph: LineageGraph) -> str:
    """A self-contained page drawing a lineage graph as inline SVG, with a table of its edges.

    Args:
        graph: what ``LineageService.graph`` returned.

    Returns:
        The HTML page; every id, kind and relation in it is escaped.
    """
    edges = _unique_edges((*graph.upstream, *graph.downstream))
    title = f"Lineage of {graph.root.kind} {graph.root.id}"
    body = [
        _EXTRA_CSS,
        f"<h1>{escape(title)}</h1>",
        f'<p class="muted">{len(graph.upstream)} upstream and {len(graph.downstream)} '
        "downstream edge(s). Work flows left to right: dataset versions, runs, model "
        "versions, deployments, monitor runs.</p>",
        f'<div class="lineage">{_svg(graph.root, edges)}</div>',
    ]
    if edges:
        body.append(_edge_table(edges))
    else:
        body.append('<p class="muted">No lineage is recorded for this record yet.</p>')
    return html_page(title, "\n".join(body))


def _svg(root: Node, edges: Sequence[Edge]) -> str:
    nodes = {root}
    for edge in edges:
        nodes.update((edge.source, edge.target))
    kinds = _sorted_kinds({n.kind for n in nodes})
    columns = {k: sorted((n for n in nodes if n.kind == k), key=lambda n: n.id) for k in kinds}
    place: dict[Node, tuple[float, float]] = {}
    for col, kind in enumerate(kinds):
        for row, node in enumerate(columns[kind]):
            x = _MARGIN + col * (_BOX_W + _COL_GAP)
            y = _MARGIN + _HEADER + row * (_BOX_H + _ROW_GAP)
            place[node] = (x, y)
    tallest = max(len(c) for c in columns.values())
    width = 2 * _MARGIN + len(kinds) * _BOX_W + (len(kinds) - 1) * _COL_GAP
    height = 2 * _MARGIN + _HEADER + tallest * (_BOX_H + _ROW_GAP)
    parts = [
        f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(f"lineage graph of {len(nodes)} records")}">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" '
        'fill="#888"/></marker></defs>',
    ]
    for col, kind in enumerate(kinds):
        x = _MARGIN + col * (_BOX_W + _COL_GAP)
        parts.append(f'<text class="kind" x="{x}" y="{_MARGIN + 12}">{escape(kind)}</text>')
    parts.extend(_edge_svg(edge, place) for edge in edges)
    parts.extend(_node_svg(node, place[node], node == root) for node in sorted(place, key=str))
    return "".join(parts) + "</svg>"


def _edge_svg(edge: Edge, place: dict[Node, tuple[float, float]]) -> str:
    (sx, sy), (tx, ty) = place[edge.source], place[edge.target]
    sy, ty = sy + _BOX_H / 2, ty + _BOX_H / 2
    if sx < tx:  # left to right, the usual way
        x1, x2 = sx + _BOX_W, tx
        bend = (x2 - x1) / 2
        path = f"M {x1:.1f} {sy:.1f} C {x1 + bend:.1f} {sy:.1f} {x2 - bend:.1f} {ty:.1f}"
    elif sx > tx:  # against the flow, such as a monitor run creating a dataset version
        x1, x2 = sx, tx + _BOX_W
        bend = (x1 - x2) / 2
        path = f"M {x1:.1f} {sy:.1f} C {x1 - bend:.1f} {sy:.1f} {x2 + bend:.1f} {ty:.1f}"
    else:  # within one column: loop out to the right
        x1 = x2 = sx + _BOX_W
        loop = _COL_GAP * 0.6
        path = f"M {x1:.1f} {sy:.1f} C {x1 + loop:.1f} {sy:.1f} {x2 + loop:.1f} {ty:.1f}"
    path += f" {x2:.1f} {ty:.1f}"
    lx = (x1 + x2) / 2 + (_COL_GAP * 0.45 if x1 == x2 else 0)
    ly = (sy + ty) / 2 - 3
    label = (
        f"{edge.source.kind} {edge.source.id} {edge.relation} {edge.target.kind} {edge.target.id}"
    )
    return (
        f"<g><title>{escape(label)}</title>"
        f'<path d="{path}" fill="none" stroke="#888" stroke-width="1.4" '
        'marker-end="url(#arrow)"/>'
        f'<text class="rel" x="{lx:.1f}" y="{ly:.1f}" text-anchor="middle">'
        f"{escape(edge.relation)}</text></g>"
    )


def _node_svg(node: Node, at: tuple[float, float], is_root: bool) -> str:
    x, y = at
    fill, stroke, weight = ("#e8eef6", "#4c78a8", 2.5) if is_root else ("#fff", "#999", 1)
    text = node.id if len(node.id) <= _CHARS else node.id[: _CHARS - 1] + "…"
    return (
        f"<g><title>{escape(f'{node.kind} {node.id}')}</title>"
        f'<rect x="{x}" y="{y}" width="{_BOX_W}" height="{_BOX_H}" rx="5" fill="{fill}" '
        f'stroke="{stroke}" stroke-width="{weight}"/>'
        f'<text x="{x + 8}" y="{y + _BOX_H / 2 + 4:.1f}">{escape(text)}</text></g>'
    )


def _edge_table(edges: Sequence[Edge]) -> str:
    rows = "".join(
        f"<tr><td>{escape(e.source.kind)}</td><td><code>{escape(e.source.id)}</code></td>"
        f"<td>{escape(e.relation)}</td><td>{escape(e.target.kind)}</td>"
        f"<td><code>{escape(e.target.id)}</code></td>"
        f"<td>{escape(e.created_at.strftime('%Y-%m-%d %H:%M'))}</td>"
        f"<td>{escape(e.created_by)}</td></tr>"
        for e in edges
    )
    return (
        "<h2>Edges</h2><table><thead><tr><th>from</th><th></th><th>relation</th><th>to</th>"
        f"<th></th><th>recorded (UTC)</th><th>by</th></tr></thead><tbody>{rows}</tbody></table>"
    )


def _unique_edges(edges: Iterable[Edge]) -> list[Edge]:
    seen: dict[tuple[Node, str, Node], Edge] = {}
    for edge in edges:
        seen.setdefault((edge.source, edge.relation, edge.target), edge)
    return list(seen.values())


def _sorted_kinds(kinds: Iterable[str]) -> list[str]:
    order = {k: i for i, k in enumerate(COLUMN_ORDER)}
    return sorted(kinds, key=lambda k: (order.get(k, len(order)), k))
