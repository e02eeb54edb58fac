"""The append-only, hash-chained audit log: every write records who, what, when, before, after."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select

from shipyard.domain.audit import GENESIS, AuditEntry, canonical_json, entry_hash
from shipyard.domain.ids import utcnow
from shipyard.stores.metadata import SqlMetadataStore
from shipyard.stores.metadata.schema import audit_log, model_versions, promotion_requests

__all__ = ["AuditService", "ChainCheck"]

# Plain driver SQL: every audited write runs it (SQLAlchemy's compiled path costs more).
_LAST_ENTRY = "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1"
# Records the registry never writes without an entry of this action, in the same transaction.
_CREATIONS = ("model.register", "model.request")


@dataclass(frozen=True, slots=True)
class ChainCheck:
    """The result of verifying the chain: entries checked and the first broken one."""

    entries: int
    broken_at: int | None
    reason: str | None

    @property
    def ok(self) -> bool:
        """Whether every entry is intact and in sequence."""
        return self.broken_at is None


class AuditService:
    """Writes and verifies the audit log."""

    def __init__(self, metadata: SqlMetadataStore) -> None:
        self._metadata = metadata

    def record(
        self,
        conn: Connection,
        *,
        actor: str,
        action: str,
        entity_kind: str,
        entity_id: str,
        before: Any = None,
        after: Any = None,
    ) -> AuditEntry:
        """Append an entry inside the caller's write transaction.

        The entry commits or rolls back with the change it describes.
        """
        self._metadata.lock(conn, "audit_log")
        last = conn.exec_driver_sql(_LAST_ENTRY).first()
        seq, prev_hash = (last[0] + 1, last[1]) if last else (1, GENESIS)
        at = utcnow()
        before_text = None if before is None else canonical_json(before)
        after_text = None if after is None else canonical_json(after)
        digest = entry_hash(
            seq=seq,
            at=at,
            actor=actor,
            action=action,
            entity_kind=entity_kind,
            entity_id=entity_id,
            before=before_text,
            after=after_text,
            prev_hash=prev_hash,
        )
        self._metadata.insert_row(
            conn,
            audit_log,
            {
                "seq": seq,
                "at": at,
                "actor": actor,
                "action": action,
                "entity_kind": entity_kind,
                "entity_id": entity_id,
                "before": before_text,
                "after": after_text,
                "prev_hash": prev_hash,
                "hash": digest,
            },
        )
        return AuditEntry(
            seq, at, actor, action, entity_kind, entity_id, before, after, prev_hash, digest
        )

    def list(
        self, *, after: int = 0, limit: int = 100, entity_kind: str | None = None
    ) -> list[AuditEntry]:
        """Entries with ``seq`` greater than ``after``, oldest first (cursor paging)."""
        query = select(audit_log).where(audit_log.c.seq > after)
        if entity_kind is not None:
            query = query.where(audit_log.c.entity_kind == entity_kind)
        query = query.order_by(audit_log.c.seq).limit(limit)
        with self._metadata.read() as conn:
            return [_entry(row._mapping) for row in conn.execute(query)]

    def verify(self) -> ChainCheck:
        """Re-compute every hash; report the first entry edited, deleted or out of order.

        A chain cut short at its end still chains, so the registry's records are checked
        against it too: every model version must have its ``model.register`` entry and every
        promotion request its ``model.request`` entry. Entries deleted from the end of the
        log leave records behind that no entry describes, and are reported as missing.
        """
        expected_seq, prev_hash, count = 1, GENESIS, 0
        recorded: dict[str, set[str]] = {action: set() for action in _CREATIONS}
        for row in self._rows():
            count += 1
            if row["seq"] != expected_seq:
                return ChainCheck(count, expected_seq, f"entry {expected_seq} is missing")
            if row["prev_hash"] != prev_hash:
                return ChainCheck(count, row["seq"], "does not chain to the entry before")
            fields = {k: row[k] for k in ("seq", "at", "actor", "action", "before", "after")}
            actual = entry_hash(
                entity_kind=row["entity_kind"],
                entity_id=row["entity_id"],
                prev_hash=row["prev_hash"],
                **fields,
            )
            if actual != row["hash"]:
                return ChainCheck(count, row["seq"], "its content was changed after it was written")
            if row["action"] in recorded:
                recorded[row["action"]].add(row["entity_id"])
            expected_seq, prev_hash = expected_seq + 1, row["hash"]
        unrecorded = self._unrecorded(recorded)
        if unrecorded:
            return ChainCheck(
                count,
                expected_seq,
                f"entries after {count} are missing: {unrecorded} has no audit entry",
            )
        return ChainCheck(count, None, None)

    def _unrecorded(self, recorded: dict[str, set[str]]) -> str | None:
        """The first registry record whose creating entry is not in the log, if any."""
        with self._metadata.read() as conn:
            for name, version in conn.execute(
                select(model_versions.c.name, model_versions.c.version).order_by(
                    model_versions.c.created_at
                )
            ):
                if f"{name}@{version}" not in recorded["model.register"]:
                    return f"model version {name}@{version}"
            for (request_id,) in conn.execute(
                select(promotion_requests.c.id).order_by(promotion_requests.c.requested_at)
            ):
                if request_id not in recorded["model.request"]:
                    return f"promotion request {request_id}"
        return None

    def _rows(self) -> Iterator[dict[str, Any]]:
        after = 0
        while True:
            query = select(audit_log).where(audit_log.c.seq > after).order_by(audit_log.c.seq)
            with self._metadata.read() as conn:
                rows = [dict(r._mapping) for r in conn.execute(query.limit(5000))]
            if not rows:
                return
            yield from rows
            after = rows[-1]["seq"]


def _entry(row: Any) -> AuditEntry:
    return AuditEntry(
        seq=row["seq"],
        at=row["at"],
        actor=row["actor"],
        action=row["action"],
        entity_kind=row["entity_kind"],
        entity_id=row["entity_id"],
        before=None if row["before"] is None else json.loads(row["before"]),
        after=None if row["after"] is None else json.loads(row["after"]),
        prev_hash=row["prev_hash"],
        hash=row["hash"],
    )
