"""Monitor runs over HTTP: the read methods of ``MonitoringService``."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from shipyard.client.http import ApiClient
from shipyard.domain.monitoring import MonitorRun
from shipyard.domain.records import from_record

__all__ = ["RemoteMonitoringService"]


class RemoteMonitoringService:
    """The monitoring service of a remote project (see ``MonitoringService``).

    Args:
        client: the connection to the server.
    """

    def __init__(self, client: ApiClient) -> None:
        self._client = client

    def show(self, run_id: str) -> MonitorRun:
        """One monitor run.

        Raises:
            NotFoundError: if there is no such run.
        """
        return from_record(
            MonitorRun, self._client.call("GET", f"/monitoring/runs/{quote(run_id, safe='')}")
        )

    def history(self, model: str, *, limit: int = 20) -> list[MonitorRun]:
        """The newest monitor runs of a model (a name or ``name@ref``), newest first.

        Raises:
            InvalidArgumentError: for a bad name or limit.
        """
        params = {"model": model, "limit": limit}
        found = self._client.call("GET", "/monitoring/runs", params=params)
        return [from_record(MonitorRun, r) for r in found]

    def report(self, run_id: str) -> dict[str, Any]:
        """The stored JSON report of a run: ``{"run": …, "report": DriftReport.to_dict()}``.

        Raises:
            NotFoundError: if there is no such run or it has no stored report.
        """
        found: dict[str, Any] = self._client.call(
            "GET", f"/monitoring/runs/{quote(run_id, safe='')}/report"
        )
        return found
