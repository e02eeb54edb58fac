"""Monitor runs over HTTP: ``MonitoringService``'s methods, computed where the data is.

``run`` asks the server to monitor: the prediction log and the reference datasets are there,
so the run is computed and stored there, as the token's user. When it alerts and this
project's ``[monitoring]`` names a retraining pipeline, the retraining loop runs here, where
the pipeline code is: the run's window is read from the server and everything the loop makes
(the dataset version, the pipeline run, the promotion request) is recorded there. Reports
come back by digest (verified), and ``metrics_text`` is the server's Prometheus text.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from shipyard.client.blobs import RemoteBlobs
from shipyard.client.http import ApiClient
from shipyard.domain.monitoring import MonitorRun
from shipyard.domain.records import from_record
from shipyard.domain.references import validate_name
from shipyard.errors import NotFoundError, NotSupportedError
from shipyard.services.monitoring_metrics import prometheus_lines
from shipyard.settings import Settings

__all__ = ["MAX_QUERY_NAMES", "RemoteMonitoringService"]

# Model names one metrics request carries (the server's MAX_METRICS_MODELS).
MAX_QUERY_NAMES = 40
_RUN_TIMEOUT = 3600.0  # seconds a monitor run may take on the server


class RemoteMonitoringService:
    """The monitoring service of a remote project (see ``MonitoringService``).

    Args:
        client: the connection to the server.
        blobs: the server's content, for the HTML reports (default: over ``client``).
        project: the remote project's services the retraining loop uses (``datasets``,
            ``pipelines``, ``registry``, ``monitoring``); None: no retraining here.
        settings: this project's settings (``[monitoring]`` retraining, notifications).
    """

    def __init__(
        self,
        client: ApiClient,
        blobs: RemoteBlobs | None = None,
        *,
        project: Any = None,
        settings: Settings | None = None,
    ) -> None:
        self._client = client
        self._blobs = blobs if blobs is not None else RemoteBlobs(client)
        self._project = project
        self._settings = settings

    def run(
        self,
        model_ref: str,
        *,
        window: str = "24h",
        reference: str | None = None,
        current: str | None = None,
        retrain: bool = True,
        now: datetime | None = None,
    ) -> MonitorRun:
        """Monitor one model version over a window, on the server (see ``MonitoringService.run``).

        Args:
            model_ref: the model version (``churn@production``, ``churn@3``).
            window: how far back the prediction log is read (``24h``, ``7d``).
            reference: the reference dataset version (default: the training data).
            current: a dataset version to monitor instead of the prediction log.
            retrain: run the retraining loop here when the run alerts and this project's
                ``[monitoring]`` names a retraining pipeline.
            now: the window's end (default: the server's now); a time without a zone is UTC.

        Returns:
            The run the server stored, as the token's user.

        Raises:
            NotFoundError: for an unknown model or dataset version.
            InvalidArgumentError: for a bad reference or window, or when no reference can be
                found (pass one).
        """
        body: dict[str, Any] = {
            "model": model_ref,
            "window": "".join(window.split()),  # "1 h" as parse_duration reads it
            "reference": reference,
            "current": current,
            "retrain": False,  # never on the server: the loop runs here (below)
        }
        if now is not None:
            body["now"] = (now if now.tzinfo else now.replace(tzinfo=UTC)).isoformat()
        # The server reads the whole window of the log: allow it far longer than a read.
        found = self._client.call("POST", "/monitoring/runs", body=body, timeout=_RUN_TIMEOUT)
        run = from_record(MonitorRun, found)
        settings = self._settings
        if retrain and run.status == "alert" and settings and settings.retrain_pipeline:
            if self._project is None:
                raise NotSupportedError("this remote monitoring service", "retraining")
            from shipyard.services.monitoring_loop import retrain_loop

            window, label = self.window(run.id)
            outcome = retrain_loop(self._project, settings, run, window, label)
            run = dataclasses.replace(run, retrain=outcome)
        return run

    def window(self, run_id: str) -> tuple[Any, str]:
        """The rows a run judged, as the retraining loop trains on them, and the label.

        Raises:
            NotFoundError: if there is no such run.
        """
        import pyarrow as pa

        path = f"/monitoring/runs/{quote(run_id, safe='')}/window"
        with self._client.stream("GET", path) as answer:
            table = pa.ipc.open_stream(answer.read()).read_all()
        label = (table.schema.metadata or {}).get(b"shipyard.label", b"label").decode()
        return table.replace_schema_metadata(None), label

    def link_dataset(self, run: MonitorRun, dataset: str) -> None:
        """Record on the server that the retraining loop made ``dataset`` from ``run``."""
        path = f"/monitoring/runs/{quote(run.id, safe='')}/datasets"
        self._client.call("POST", path, body={"dataset": dataset})

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

    def report_html(self, run_id: str) -> str:
        """The stored self-contained HTML report of a run, downloaded by its digest (verified).

        Raises:
            NotFoundError: if there is no such run or it has no stored HTML report.
        """
        run = self.show(run_id)
        if run.html_digest is None:
            raise NotFoundError(f"monitor run {run_id} has no stored HTML report")
        return self._blobs.read_bytes(run.html_digest).decode()

    def metrics_text(self, names: Sequence[str] | None = None) -> str:
        """The latest run of each model as Prometheus gauges (text exposition format).

        Args:
            names: only these models; None for every monitored model.
        """
        wanted = None if names is None else sorted(set(names))
        if wanted is not None and not wanted:  # no model asked for: the headers alone
            return "\n".join(prometheus_lines([])) + "\n"
        if wanted is not None and len(wanted) > MAX_QUERY_NAMES:
            # Too many for one URL: every model's text, then only these models' series (the
            # headers stay, as the local text has them for any names).
            labels = tuple(f'{{model="{validate_name(n, what="model name")}",' for n in wanted)
            every = self._metrics(None).splitlines()
            kept = [
                line for line in every if line.startswith("#") or any(x in line for x in labels)
            ]
            return "\n".join(kept) + "\n"
        return self._metrics(wanted)

    def _metrics(self, names: list[str] | None) -> str:
        params = {} if names is None else {"model": names}
        with self._client.stream("GET", "/monitoring/metrics", params=params) as answer:
            answer.read()
            return answer.text
