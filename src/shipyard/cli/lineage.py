"""``shipyard lineage``: where a model, dataset version or run came from and what it fed."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import typer
from rich.text import Text
from rich.tree import Tree

from shipyard.cli.context import JsonOption, open_services
from shipyard.cli.output import console, emit_json, errors_to_exit
from shipyard.domain.lineage import Edge, Node
from shipyard.services.lineage import LineageGraph
from shipyard.services.lineage_reports import render_lineage_html, resolve_lineage_root

__all__ = ["show"]


def show(
    ctx: typer.Context,
    reference: str = typer.Argument(
        ..., help="NAME@N, NAME@latest or NAME@ALIAS of a model or dataset version, or a run id."
    ),
    kind: str | None = typer.Option(
        None,
        "--kind",
        "-k",
        help="What REFERENCE names: model_version (tried first), dataset_version, run, "
        "pipeline_run, deployment or monitor_run.",
    ),
    depth: int = typer.Option(20, "--depth", "-d", min=1, help="Hops to follow each way."),
    html: Path | None = typer.Option(
        None, "--html", help="Also write a self-contained HTML page drawing the graph."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Show lineage: upstream (what it came from) and downstream (what it fed), as a tree."""
    with errors_to_exit():
        project = open_services(ctx)
        root = resolve_lineage_root(
            reference,
            kind,
            registry=project.registry,
            datasets=project.datasets,
            runs=project.runs,
            lineage=project.lineage,
        )
        graph = project.lineage.graph(root, depth=depth)
    if html is not None:
        html.parent.mkdir(parents=True, exist_ok=True)
        html.write_text(render_lineage_html(graph), encoding="utf-8")
    if as_json:
        emit_json(graph.to_dict())
        return
    console.print(_tree(graph))
    if html is not None:
        console.print(f"wrote {html}")


def _label(node: Node, relation: str | None = None) -> Text:
    text = Text()
    text.append(node.kind, style="dim")
    text.append(" ")
    text.append(node.id, style="bold")
    if relation is not None:
        text.append(f"  ({relation})", style="cyan")
    return text


def _tree(graph: LineageGraph) -> Tree:
    tree = Tree(_label(graph.root))
    for title, edges, upstream in (
        ("upstream: what it came from", graph.upstream, True),
        ("downstream: what it fed", graph.downstream, False),
    ):
        branch = tree.add(Text(title, style="italic"))
        if not edges:
            branch.add(Text("(none recorded)", style="dim"))
            continue
        _grow(branch, graph.root, edges, upstream=upstream, expanded={graph.root})
    return tree


def _grow(
    branch: Tree, node: Node, edges: Sequence[Edge], *, upstream: bool, expanded: set[Node]
) -> None:
    """Add the neighbours of ``node`` on one side; a node shown already is not expanded again."""
    if upstream:
        nexts = [(e.source, e.relation) for e in edges if e.target == node]
    else:
        nexts = [(e.target, e.relation) for e in edges if e.source == node]
    for neighbour, relation in sorted(set(nexts), key=lambda p: (p[0].kind, p[0].id, p[1])):
        if neighbour in expanded:
            label = _label(neighbour, relation)
            label.append("  (shown above)", style="dim")
            branch.add(label)
            continue
        expanded.add(neighbour)
        _grow(
            branch.add(_label(neighbour, relation)),
            neighbour,
            edges,
            upstream=upstream,
            expanded=expanded,
        )
