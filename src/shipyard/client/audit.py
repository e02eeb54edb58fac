"""The audit log over HTTP (approvers and admins): list entries, verify the chain."""

from __future__ import annotations

from shipyard.client.http import ApiClient
from shipyard.domain.audit import AuditEntry
from shipyard.domain.records import from_record
from shipyard.services.audit import ChainCheck

__all__ = ["RemoteAuditService"]


class RemoteAuditService:
    """The audit service of a remote project: ``list`` and ``verify``."""

    def __init__(self, client: ApiClient) -> None:
        self._client = client

    def list(
        self, *, after: int = 0, limit: int = 100, entity_kind: str | None = None
    ) -> list[AuditEntry]:
        """Entries with ``seq`` greater than ``after``, oldest first (cursor paging)."""
        params: dict[str, object] = {"after": after, "limit": limit}
        if entity_kind is not None:
            params["entity_kind"] = entity_kind
        return [
            from_record(AuditEntry, e) for e in self._client.call("GET", "/audit", params=params)
        ]

    def verify(self) -> ChainCheck:
        """Re-compute every hash on the server; report the first broken entry."""
        return from_record(ChainCheck, self._client.call("GET", "/audit/verify"))
