"""Tracking over HTTP: start_run, log_metric, log_params, set_tag and end, unchanged.

The run object is the local ``ActiveRun``: metric points are buffered in the process and a
background thread sends them in one request at least every second (and at once when
``FLUSH_POINTS`` are waiting); ending the run sends the rest. Params and tags are sent
before the call returns, as locally.
"""

from __future__ import annotations

import os
import socket
import tempfile
import threading
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from shipyard.client.audit import RemoteAuditService
from shipyard.client.blobs import RemoteBlobs
from shipyard.client.datasets import RemoteDatasetService, RemoteObjects, default_cache
from shipyard.client.deployments import RemoteDeploymentService
from shipyard.client.http import ApiClient
from shipyard.client.lineage import RemoteLineageService
from shipyard.client.models import RemoteModelService, RemoteRegistryService
from shipyard.client.monitoring import RemoteMonitoringService
from shipyard.client.packaging import RemotePackageService
from shipyard.client.pipelines import RemotePipelineService
from shipyard.client.predictions import RemotePredictionService
from shipyard.client.schedules import RemoteScheduleService
from shipyard.client.users import RemoteTokenService, RemoteUserService
from shipyard.domain.ids import host_label
from shipyard.domain.metrics import MetricHistory
from shipyard.domain.numbers import float_from_json, json_float
from shipyard.domain.records import from_record
from shipyard.domain.runs import Experiment, MetricSummary, Run, RunArtifact
from shipyard.services.gc_pause import gc_paused
from shipyard.services.metrics import MetricPoint
from shipyard.services.objects import LocalFile
from shipyard.services.run_artifacts import ArtifactReads
from shipyard.services.run_search import RunPage
from shipyard.services.runs import ActiveRun, check_key, param_text
from shipyard.settings import Settings

__all__ = ["RemoteProject", "RemoteRunService"]


class RemoteRunService(ArtifactReads):
    """The run service of a remote project: the public methods of ``RunService`` over HTTP."""

    def __init__(self, client: ApiClient, blobs: RemoteBlobs, models: RemoteModelService) -> None:
        self._client = client
        self._blobs = blobs
        self._objects = RemoteObjects(blobs)
        self._model_service = models
        self._local = threading.local()
        self._scratch = Path(tempfile.gettempdir()) / "shipyard-remote"

    # -- what ActiveRun calls ------------------------------------------------------------------

    def start_run(
        self,
        experiment: str = "default",
        *,
        name: str | None = None,
        parent: str | ActiveRun | None = None,
        tags: Mapping[str, str] | None = None,
        capture: bool = True,
    ) -> ActiveRun:
        """Start a run on the server (see ``RunService.start_run``)."""
        stack = self._stack()
        parent_id = parent.id if isinstance(parent, ActiveRun) else parent
        if parent_id is None and stack:
            parent_id = stack[-1].id
        body = {
            "experiment": experiment,
            "name": name,
            "parent_id": parent_id,
            "tags": {check_key(k): str(v) for k, v in (tags or {}).items()},
            "host": _hostname(),
            "pid": os.getpid(),
        }
        created = self._client.call("POST", "/runs", body=body)
        # ActiveRun writes through the RunWriter seam, which this class provides over HTTP.
        return ActiveRun(self, created["id"], experiment, capture=capture)

    def active_run(self) -> ActiveRun | None:
        """The innermost run this thread opened with ``with start_run(...)``, if any."""
        stack = self._stack()
        return stack[-1] if stack else None

    def _stack(self) -> list[ActiveRun]:
        stack: list[ActiveRun] | None = getattr(self._local, "stack", None)
        if stack is None:
            stack = self._local.stack = []
        return stack

    def _write_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        values = {check_key(k): param_text(v) for k, v in params.items()}
        self._client.call("POST", f"/runs/{run_id}/batch", body={"params": values})

    def _write_tags(self, run_id: str, tags: Mapping[str, Any]) -> None:
        values = {check_key(k): str(v) for k, v in tags.items()}
        if values:
            self._client.call("POST", f"/runs/{run_id}/batch", body={"tags": values})

    def _write_metrics(
        self, run_id: str, points: Sequence[MetricPoint], *, heartbeat: bool
    ) -> None:
        # Every batch is a heartbeat on the server; an empty one is only that.
        metrics = [
            {"key": k, "step": s, "timestamp": t, "value": json_float(v)} for k, s, t, v in points
        ]
        self._client.call("POST", f"/runs/{run_id}/batch", body={"metrics": metrics})

    def _finish(self, run_id: str, status: str, resources: Mapping[str, Any] | None) -> None:
        self._client.call("POST", f"/runs/{run_id}/end", body={"status": status})

    def _write_artifacts(self, run_id: str, files: Sequence[LocalFile]) -> list[RunArtifact]:
        # The content goes up by digest (only what the server lacks), then one request
        # records the files under their paths in the run.
        stored = self._blobs.upload_files(files)
        body = {"files": [{"path": f.name, "digest": f.digest, "size": f.size} for f in stored]}
        answer = self._client.call("POST", f"/runs/{run_id}/artifacts", body=body)
        return [from_record(RunArtifact, a) for a in answer]

    def _link_input(self, run_id: str, dataset_ref: str) -> None:
        self._client.call("POST", f"/runs/{run_id}/inputs", body={"dataset": dataset_ref})

    @property
    def _models(self) -> RemoteModelService:
        return self._model_service

    # -- reads --------------------------------------------------------------------------------

    def get(self, run_id: str) -> Run:
        """A run with its params, tags and latest metrics.

        Raises:
            NotFoundError: if no run has this id.
        """
        return _run(self._client.call("GET", f"/runs/{run_id}"))

    def search(
        self,
        experiments: str | Sequence[str] | None = None,
        filter: str | None = None,
        order_by: Sequence[str] | str | None = None,
        max_results: int = 1000,
        page_token: str | None = None,
    ) -> RunPage:
        """Find runs with the filter language (see ``RunService.search``)."""
        params: dict[str, Any] = {"max_results": max_results}
        if experiments:
            params["experiment"] = [experiments] if isinstance(experiments, str) else experiments
        if filter:
            params["filter"] = filter
        if order_by:
            params["order_by"] = [order_by] if isinstance(order_by, str) else list(order_by)
        if page_token:
            params["page_token"] = page_token
        with gc_paused():  # a page of thousands of runs is tens of thousands of objects
            page = self._client.call("GET", "/runs", params=params)
            return RunPage([_run(r) for r in page["runs"]], page["next_page_token"])

    def artifacts(self, run_id: str) -> list[RunArtifact]:
        """The files a run logged."""
        answer = self._client.call("GET", f"/runs/{run_id}/artifacts")
        return [from_record(RunArtifact, a) for a in answer]

    def experiments(self) -> list[Experiment]:
        """Every experiment, by name."""
        return [
            Experiment(e["id"], e["name"], datetime.fromisoformat(e["created_at"]), e["created_by"])
            for e in self._client.call("GET", "/experiments")
        ]

    def history(self, run_id: str, key: str) -> MetricHistory:
        """Every point of one metric of a run, in logging order."""
        import numpy as np

        data = self._client.call("GET", f"/runs/{run_id}/metric-history", params={"key": key})
        return MetricHistory(
            key,
            np.asarray(data["steps"], dtype=np.int64),
            np.asarray(data["timestamps"], dtype=np.float64),
            np.asarray([float_from_json(v) for v in data["values"]], dtype=np.float64),
        )

    @property
    def metrics(self) -> RemoteMetrics:
        """Metric histories, as ``RunService.metrics`` reads them."""
        return RemoteMetrics(self)


class RemoteMetrics:
    """The reading side of the metric store over HTTP: ``history(run_id, key)``."""

    def __init__(self, runs: RemoteRunService) -> None:
        self._runs = runs

    def history(self, run_id: str, key: str) -> MetricHistory:
        """Every point of one metric of a run."""
        return self._runs.history(run_id, key)


class RemoteProject:
    """A shipyard server seen from the SDK: ``.runs`` works as in a local project.

    Args:
        uri: the server, such as ``http://127.0.0.1:5000``.
        token: the API token (None for a loopback server without auth).
        settings: the local settings pipelines run with (executor, notification sinks);
            default: those of the working directory.
    """

    def __init__(self, uri: str, token: str | None, settings: Settings | None = None) -> None:
        self.uri = uri
        self.client = ApiClient(uri, token)
        cache = default_cache(uri)
        self.transfers = RemoteBlobs(self.client)
        self.registry = RemoteRegistryService(self.client)
        self.models = RemoteModelService(self.client, self.transfers, self.registry, cache=cache)
        self.runs = RemoteRunService(self.client, self.transfers, self.models)
        self.datasets = RemoteDatasetService(self.client, self.transfers, cache=cache)
        self.pipelines = RemotePipelineService(
            self.client, self.transfers, settings, resolve_dataset=self.datasets.resolve
        )
        self.schedules = RemoteScheduleService(self.client, self.pipelines, settings)
        self.monitoring = RemoteMonitoringService(
            self.client, self.transfers, project=self, settings=settings or Settings.load()
        )
        self.deployments = RemoteDeploymentService(self.client)
        self.users = RemoteUserService(self.client)
        self.tokens = RemoteTokenService(self.client)
        self.audit = RemoteAuditService(self.client)
        self.lineage = RemoteLineageService(self.client)
        self.predictions = RemotePredictionService(self.client)
        self.packages = RemotePackageService(self.client, self.registry, self.models, settings)

    def whoami(self) -> dict[str, Any]:
        """The user the token speaks for and their roles."""
        found: dict[str, Any] = self.client.call("GET", "/whoami")
        return found

    def close(self) -> None:
        """Close the connections to the server."""
        self.client.close()

    def __enter__(self) -> RemoteProject:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _hostname() -> str:
    return host_label(socket.gethostname())


def _moment(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _run(data: Mapping[str, Any]) -> Run:
    # A search page decodes thousands of these: plain floats skip the checked conversion.
    start = _moment(data["start_time"])
    assert start is not None
    metrics = {}
    for k, m in data["metrics"].items():
        value, low, high = m["value"], m["min"], m["max"]
        metrics[k] = MetricSummary(
            m["key"],
            value if type(value) is float else float_from_json(value),
            m["step"],
            m["timestamp"],
            low if low is None or type(low) is float else float_from_json(low),
            high if high is None or type(high) is float else float_from_json(high),
            m["count"],
        )
    return Run(
        id=data["id"],
        experiment=data["experiment"],
        name=data["name"],
        parent_id=data["parent_id"],
        status=data["status"],
        user=data["user"],
        start_time=start,
        end_time=_moment(data["end_time"]),
        host=data["host"],
        pid=data["pid"],
        params=dict(data["params"]),
        tags=dict(data["tags"]),
        metrics=metrics,
        environment=data["environment"],
        resources=data["resources"],
    )
