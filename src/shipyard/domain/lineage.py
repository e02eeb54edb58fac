"""Lineage: typed edges between records of any kind, walked in both directions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

__all__ = ["KINDS", "RELATIONS", "Edge", "Node"]

KINDS = frozenset(
    {"dataset_version", "run", "model_version", "deployment", "monitor_run", "pipeline_run"}
)
RELATIONS = frozenset(
    {"consumed_by", "produced", "deployed_as", "created", "derived_from", "monitored_by"}
)


@dataclass(frozen=True, slots=True)
class Node:
    """One record in the lineage graph, such as ``dataset_version customers@3``."""

    kind: str
    id: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.id}"


@dataclass(frozen=True, slots=True)
class Edge:
    """A directed edge ``source -relation-> target``."""

    source: Node
    target: Node
    relation: str
    created_at: datetime
    created_by: str

    def to_dict(self) -> dict[str, str]:
        """JSON-safe form."""
        return {
            "from_kind": self.source.kind,
            "from_id": self.source.id,
            "to_kind": self.target.kind,
            "to_id": self.target.id,
            "relation": self.relation,
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
        }
