"""Lineage: typed edges between records of any kind, walked in both directions."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shipyard.errors import InvalidArgumentError

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

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Edge:
        """Read the form ``to_dict`` writes.

        Raises:
            InvalidArgumentError: when a field is missing or not text.
        """
        try:
            fields = {k: data[k] for k in ("from_kind", "from_id", "to_kind", "to_id")}
            relation, at, by = data["relation"], data["created_at"], data["created_by"]
        except KeyError as exc:
            raise InvalidArgumentError(f"malformed lineage edge: missing {exc}") from None
        if not all(isinstance(v, str) for v in (*fields.values(), relation, at, by)):
            raise InvalidArgumentError("malformed lineage edge: every field is text")
        return cls(
            Node(fields["from_kind"], fields["from_id"]),
            Node(fields["to_kind"], fields["to_id"]),
            relation,
            datetime.fromisoformat(at),
            by,
        )
