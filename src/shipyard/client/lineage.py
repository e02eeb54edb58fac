"""Lineage over HTTP: ``graph`` and ``kinds_of``, as the local service answers them."""

from __future__ import annotations

from shipyard.client.http import ApiClient
from shipyard.domain.lineage import Node
from shipyard.services.lineage import LineageGraph

__all__ = ["RemoteLineageService"]


class RemoteLineageService:
    """The reading side of the lineage service of a remote project."""

    def __init__(self, client: ApiClient) -> None:
        self._client = client

    def graph(self, root: Node, *, depth: int = 20) -> LineageGraph:
        """Everything upstream and downstream of ``root``, ``depth`` hops each way."""
        params = {"kind": root.kind, "id": root.id, "depth": depth}
        return LineageGraph.from_dict(self._client.call("GET", "/lineage", params=params))

    def kinds_of(self, node_id: str) -> list[str]:
        """The kinds of the lineage nodes with this exact id, sorted."""
        return [str(k) for k in self._client.call("GET", "/lineage/kinds", params={"id": node_id})]
