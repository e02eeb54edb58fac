"""Lineage: one generic edge table, written by every service and walked both ways here."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, Connection, RowMapping, and_, or_, select

from shipyard.domain.ids import new_id, utcnow
from shipyard.domain.lineage import KINDS, RELATIONS, Edge, Node
from shipyard.errors import InvalidArgumentError
from shipyard.stores.metadata import SqlMetadataStore
from shipyard.stores.metadata.schema import lineage_edges

__all__ = ["LineageGraph", "LineageService"]

_BATCH = 200  # nodes per query: SQLite refuses expression trees deeper than 1,000
_MAX_NODES = 10_000  # a walk stops here: lineage of one record never needs more


@dataclass(frozen=True, slots=True)
class LineageGraph:
    """The records reachable from a root, upstream and downstream, and the edges between."""

    root: Node
    upstream: tuple[Edge, ...] = field(default_factory=tuple)
    downstream: tuple[Edge, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, object]:
        """JSON-safe form."""
        return {
            "root": {"kind": self.root.kind, "id": self.root.id},
            "upstream": [e.to_dict() for e in self.upstream],
            "downstream": [e.to_dict() for e in self.downstream],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LineageGraph:
        """Read the form ``to_dict`` writes."""
        root = data["root"]
        return cls(
            Node(str(root["kind"]), str(root["id"])),
            tuple(Edge.from_dict(e) for e in data["upstream"]),
            tuple(Edge.from_dict(e) for e in data["downstream"]),
        )


class LineageService:
    """Records and walks lineage edges."""

    def __init__(self, metadata: SqlMetadataStore) -> None:
        self._metadata = metadata

    def link(
        self, conn: Connection, source: Node, relation: str, target: Node, *, actor: str
    ) -> None:
        """Add ``source -relation-> target`` inside the caller's write transaction.

        Adding an edge that exists already changes nothing.

        Raises:
            InvalidArgumentError: for an unknown kind or relation.
        """
        for node in (source, target):
            if node.kind not in KINDS:
                raise InvalidArgumentError(
                    f"unknown lineage kind {node.kind!r}; known: {', '.join(sorted(KINDS))}"
                )
        if relation not in RELATIONS:
            raise InvalidArgumentError(
                f"unknown lineage relation {relation!r}; known: {', '.join(sorted(RELATIONS))}"
            )
        values = {
            "id": new_id(),
            "from_kind": source.kind,
            "from_id": source.id,
            "to_kind": target.kind,
            "to_id": target.id,
            "relation": relation,
            "created_at": utcnow(),
            "created_by": actor,
        }
        self._metadata.insert_ignore(conn, lineage_edges, [values])

    def kinds_of(self, node_id: str) -> list[str]:
        """The kinds of the lineage nodes with this exact id (in any edge), sorted."""
        e = lineage_edges.c
        found: set[str] = set()
        with self._metadata.read() as conn:
            for kind, ident in ((e.from_kind, e.from_id), (e.to_kind, e.to_id)):
                found.update(
                    conn.execute(select(kind).where(ident == node_id).distinct()).scalars()
                )
        return sorted(found)

    def graph(self, root: Node, *, depth: int = 20) -> LineageGraph:
        """Everything upstream and downstream of ``root``, breadth first, ``depth`` hops."""
        with self._metadata.read() as conn:
            up = self._walk(conn, root, upstream=True, depth=depth)
            down = self._walk(conn, root, upstream=False, depth=depth)
        return LineageGraph(root, tuple(up), tuple(down))

    def _walk(self, conn: Connection, root: Node, *, upstream: bool, depth: int) -> list[Edge]:
        seen = {root}
        frontier = [root]
        edges: list[Edge] = []
        near, far = ("to", "from") if upstream else ("from", "to")
        for _ in range(depth):
            if not frontier or len(seen) > _MAX_NODES:
                break
            rows: list[Any] = []
            for start in range(0, len(frontier), _BATCH):  # bounded expression size
                batch = frontier[start : start + _BATCH]
                rows += conn.execute(select(lineage_edges).where(_any_of(near, batch))).all()
            frontier = []
            for row in rows:
                edge = _edge(row._mapping)
                edges.append(edge)
                node = Node(row._mapping[f"{far}_kind"], row._mapping[f"{far}_id"])
                if node not in seen:
                    seen.add(node)
                    frontier.append(node)
        return edges


def _any_of(side: str, nodes: Iterable[Node]) -> ColumnElement[bool]:
    kind, ident = lineage_edges.c[f"{side}_kind"], lineage_edges.c[f"{side}_id"]
    return or_(*(and_(kind == n.kind, ident == n.id) for n in nodes))


def _edge(row: RowMapping) -> Edge:
    return Edge(
        source=Node(row["from_kind"], row["from_id"]),
        target=Node(row["to_kind"], row["to_id"]),
        relation=row["relation"],
        created_at=row["created_at"],
        created_by=row["created_by"],
    )
