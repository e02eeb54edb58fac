"""The prediction log over HTTP: write it, read it (and query it with DuckDB here), label it.

A serving process pointed at a server logs as locally (an in-memory queue, batches written
in the background); each batch file is sent to its deployment on the server, which checks
it and stores it (``RemoteBatches``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import quote

from shipyard.client.http import ApiClient
from shipyard.domain.references import validate_name
from shipyard.errors import NotSupportedError
from shipyard.services.prediction_window import LogWindow
from shipyard.services.predictions import PredictionLog, PredictionService

__all__ = ["RemoteBatches", "RemotePredictionService"]


class RemoteBatches:
    """A ``BatchSink`` that sends each batch file to the deployment's server.

    Args:
        client: the connection to the server.
    """

    def __init__(self, client: ApiClient) -> None:
        self._client = client

    def store_batch(
        self,
        *,
        deployment_id: str,
        name: str,
        data: bytes,
        rows: int,
        first_at: datetime,
        last_at: datetime,
    ) -> None:
        """Send the Parquet file to the deployment.

        The server reads rows, times and the model from the file and the deployment; it
        trusts none of the other arguments.
        """
        self._client.send(
            "POST",
            f"/deployments/{quote(deployment_id, safe='')}/predictions",
            content=data,
            headers={"content-type": "application/octet-stream"},
        )


class RemotePredictionService(PredictionService):
    """The prediction service of a remote project.

    ``read``, ``sql``, ``feedback`` and ``feedback_file`` as locally: ``sql`` and
    ``feedback_file`` are the local code over the other two.
    """

    def __init__(self, client: ApiClient) -> None:  # no store here: the server holds the log
        self._client = client

    def log(self, *, deployment_id: str, name: str, **options: Any) -> PredictionLog:
        """A new writer for one deployment's predictions, sending batches to the server."""
        return PredictionLog(
            RemoteBatches(self._client), deployment_id=deployment_id, name=name, **options
        )

    def read(
        self,
        name: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        deployment_id: str | None = None,
    ) -> Any:
        """The logged rows of a model as a ``pyarrow.Table`` (see ``PredictionService.read``)."""
        import pyarrow as pa

        validate_name(name, what="model name")
        params: dict[str, str] = {}
        if since is not None:
            params["since"] = since.isoformat()
        if until is not None:
            params["until"] = until.isoformat()
        if deployment_id is not None:
            params["deployment_id"] = deployment_id
        with self._client.stream("GET", f"/predictions/{name}", params=params) as answer:
            data = answer.read()
        return pa.ipc.open_stream(data).read_all()

    def window(
        self,
        name: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        deployment_id: str | None = None,
    ) -> LogWindow:
        """Not here: a window is queried where the log is (``read`` brings the rows over)."""
        raise NotSupportedError(
            "a remote project",
            "querying a prediction-log window in place (the server does, for `shipyard "
            "monitor run`); use read() to fetch the rows",
        )

    def feedback(
        self, name: str, labels: Mapping[str, Any], *, deployment_id: str | None = None
    ) -> int:
        """Store ground-truth labels by request id, on the server."""
        validate_name(name, what="model name")
        body = {"labels": dict(labels), "deployment_id": deployment_id}
        answer = self._client.call("POST", f"/predictions/{name}/feedback", body=body)
        return int(answer["stored"])

    def _require_model(self, name: str) -> None:
        # The server checks the model when the labels arrive (404 for an unknown one).
        validate_name(name, what="model name")
