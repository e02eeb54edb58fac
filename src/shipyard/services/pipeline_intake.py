"""The records remote pipeline drivers send to a server, checked before they are written.

A driver on a laptop or a CI job runs its pipeline where it is and sends the server what a
local driver writes to its store: the run's start, batches of task rows with a heartbeat,
the run's end, and questions for cached results. The server writes them through the same
``SqlRunBook`` after checking that the caller started the run, that the run has not ended,
and that every digest named (results, logs) is content the server holds. Cached results are
looked up among the caller's own runs only: a result is a pickle, and loading one another
user recorded would let them run code on this caller's machine.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import select

from shipyard.errors import (
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    PipelineRunNotFoundError,
)
from shipyard.services.pipeline_book import SqlRunBook
from shipyard.services.transfers import TransferService
from shipyard.stores.metadata import SqlMetadataStore
from shipyard.stores.metadata.schema import pipeline_runs

__all__ = ["ENDED_BY_DRIVER", "PipelineIntake"]

# States only the driver sets; a run in one of them takes no more records. ("crashed" is
# what a reader concluded from silence: a driver that is alive after all may still write.)
ENDED_BY_DRIVER = frozenset({"succeeded", "failed", "cancelled"})


class PipelineIntake:
    """Writes a remote driver's pipeline records as ``user``, after checking them.

    Args:
        metadata: the metadata store.
        transfers: the content the server holds (digests must name stored content).
        user: the caller, recorded as who started the runs.
    """

    def __init__(self, metadata: SqlMetadataStore, transfers: TransferService, user: str) -> None:
        self._metadata = metadata
        self._transfers = transfers
        self._user = user
        self._book = SqlRunBook(metadata, user)

    def begin(self, fields: Mapping[str, Any]) -> str:
        """Record a run the caller starts now; its id.

        Raises:
            PipelineRunNotFoundError: when ``resumed_from`` names no run.
        """
        resumed = fields.get("resumed_from")
        if resumed is not None:
            self._owner(resumed)  # raises when it does not exist
        return self._book.begin(fields)

    def write(
        self,
        run_id: str,
        tasks: Sequence[Mapping[str, Any]],
        run: Mapping[str, Any],
        *,
        beat: bool,
    ) -> bool:
        """Write a batch of the caller's run; whether the run's cancel flag is set.

        Raises:
            PipelineRunNotFoundError: if no run has this id.
            PermissionDeniedError: if another user started the run.
            ConflictError: if the run has ended.
            NotFoundError: if a result or log digest is not stored content.
        """
        self.require_open(run_id)
        named = [t[c] for t in tasks for c in ("result_digest", "log_digest") if t.get(c)]
        if run.get("result_digest"):
            named.append(run["result_digest"])
        lacking = self._transfers.missing(named) if named else []
        if lacking:
            raise NotFoundError(
                f"{len(lacking)} digest(s) named by the records are not stored content, "
                f"upload them first: {', '.join(lacking[:5])}"
            )
        return self._book.write(run_id, tasks, run, beat=beat)

    def require_open(self, run_id: str) -> None:
        """Check that the caller started this run and that it has not ended.

        Raises:
            PipelineRunNotFoundError: if no run has this id.
            PermissionDeniedError: if another user started the run.
            ConflictError: if the run has ended.
        """
        owner, status = self._owner(run_id)
        if owner != self._user:
            raise PermissionDeniedError(
                f"pipeline run {run_id} was started by {owner}; only its driver records it"
            )
        if status in ENDED_BY_DRIVER:
            raise ConflictError(f"pipeline run {run_id} has ended ({status}); it takes no records")

    def lookup(self, cache_key: str) -> str | None:
        """A stored result for this cache key among the caller's own runs."""
        digest = self._book.lookup(cache_key, created_by=self._user)
        if digest is None or self._transfers.missing([digest]):
            return None
        return digest

    def _owner(self, run_id: str) -> tuple[str, str]:
        with self._metadata.read() as conn:
            row = conn.execute(
                select(pipeline_runs.c.created_by, pipeline_runs.c.status).where(
                    pipeline_runs.c.id == run_id
                )
            ).first()
        if row is None:
            raise PipelineRunNotFoundError(run_id)
        return row[0], row[1]
