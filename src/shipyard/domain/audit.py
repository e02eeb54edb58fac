"""The audit log's entries and the hash that chains each to the one before."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shipyard.domain.ids import as_utc

__all__ = ["GENESIS", "AuditEntry", "canonical_json", "entry_hash"]

GENESIS = "0" * 64  # the "previous hash" of the first entry


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """Who did what to which record, when, with the state before and after."""

    seq: int
    at: datetime
    actor: str
    action: str
    entity_kind: str
    entity_id: str
    before: Any
    after: Any
    prev_hash: str
    hash: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "seq": self.seq,
            "at": self.at.isoformat(),
            "actor": self.actor,
            "action": self.action,
            "entity_kind": self.entity_kind,
            "entity_id": self.entity_id,
            "before": self.before,
            "after": self.after,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no spaces: the same value always gives the same text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def entry_hash(
    *,
    seq: int,
    at: datetime,
    actor: str,
    action: str,
    entity_kind: str,
    entity_id: str,
    before: str | None,
    after: str | None,
    prev_hash: str,
) -> str:
    """SHA-256 over every field of an entry and the previous entry's hash."""
    fields = [
        seq,
        as_utc(at).isoformat(),
        actor,
        action,
        entity_kind,
        entity_id,
        before,
        after,
        prev_hash,
    ]
    return hashlib.sha256(canonical_json(fields).encode()).hexdigest()
