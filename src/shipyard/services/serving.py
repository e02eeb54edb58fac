"""Serving: load a model version to answer predictions, and follow an alias as it moves.

``ModelServer`` resolves a reference (``churn@champion``), loads the version through ONNX
Runtime when it carries a parity-checked ONNX export (else its native flavor), checks
input against the signature and predicts, micro-batching single rows. ``ServingSession``
is one running deployment around it: the deployment record and its heartbeat, the
prediction log and feedback. Both are plain Python; ``shipyard.server.serving`` puts HTTP
in front of them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from shipyard.domain.deployments import RequestCounts
from shipyard.domain.lineage import Node
from shipyard.domain.models import ModelVersion
from shipyard.domain.predictions import InputBlock
from shipyard.domain.references import Reference
from shipyard.errors import InvalidArgumentError, NotSupportedError
from shipyard.services.flavors.base import LoadedModel
from shipyard.services.lineage import LineageService
from shipyard.services.models import ModelService
from shipyard.services.registry import RegistryService
from shipyard.services.serving_batching import BatchOptions, MicroBatcher
from shipyard.services.serving_inputs import Frame, InputSchema

__all__ = [
    "RUNTIMES",
    "BatchOptions",
    "DeploymentRecorder",
    "ModelServer",
    "Output",
    "PredictionRecorder",
    "ServedModel",
    "ServingSession",
]

RUNTIMES = ("auto", "onnx", "native")
_PROBABILITIES = ("probabilities", "output_probability")
# Flavors whose models predict row by row, so that a batch answers each row as alone would;
# a PythonModel may look at the whole input, so it is never batched with other requests.
_BATCHING_FLAVORS = frozenset({"sklearn", "onnx"})


@dataclass(frozen=True, slots=True)
class Output:
    """Predictions for some rows, and class probabilities when the model gives them.

    Plain lists (converted once per model call), so that cutting a micro-batch into its
    requests and writing JSON cost little.
    """

    predictions: list[Any]
    probabilities: list[list[float]] | None = None

    @classmethod
    def of(cls, labels: Any, probabilities: Any = None) -> Output:
        """From the model's arrays."""
        labels = np.asarray(labels)
        if labels.ndim == 0 or (labels.ndim == 2 and labels.shape[1] == 1):
            labels = labels.reshape(-1)
        proba = None
        if probabilities is not None:
            array = np.asarray(probabilities)
            proba = array.tolist() if array.ndim == 2 else None
        return cls(labels.tolist(), proba)

    def split(self, offsets: list[int]) -> list[Output]:
        """One ``Output`` per slice ending at each offset."""
        starts = [0, *offsets[:-1]]
        labels, proba = self.predictions, self.probabilities
        if proba is None:
            return [Output(labels[a:b]) for a, b in zip(starts, offsets, strict=True)]
        return [Output(labels[a:b], proba[a:b]) for a, b in zip(starts, offsets, strict=True)]

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form: ``predictions`` and, when known, ``probabilities``."""
        if self.probabilities is None:
            return {"predictions": self.predictions}
        return {"predictions": self.predictions, "probabilities": self.probabilities}


class ServedModel:
    """One loaded model version, ready to predict.

    Attributes:
        version: the registered version.
        runtime: ``onnx`` or ``native``.
        schema: its input checks.
        batcher: the micro-batcher of single-row requests, when batching is on and the
            runtime answers row by row (ONNX, scikit-learn).
    """

    def __init__(
        self,
        version: ModelVersion,
        runtime: str,
        model: LoadedModel,
        *,
        batching: BatchOptions,
        executor: ThreadPoolExecutor,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        self.version = version
        self.runtime = runtime
        self.schema = InputSchema(version.signature)
        self.inline = runtime == "onnx"  # fast enough to run on the event loop
        self.executor = executor
        self._model = model
        self._session: Any = model.native if runtime == "onnx" else None
        self._input = self._session.get_inputs()[0].name if self._session is not None else ""
        outputs = [o.name for o in self._session.get_outputs()] if self._session else []
        self._proba_index = next(
            (i for i, n in enumerate(outputs) if n in _PROBABILITIES and i > 0),
            1 if len(outputs) > 1 else None,
        )
        self._native_proba = _native_proba(model) if runtime == "native" else None
        self.batcher: MicroBatcher[Output] | None = (
            MicroBatcher(
                self.predict,
                Output.split,
                batching,
                executor=None if self.inline else executor,
                on_batch=on_batch,
            )
            if batching.enabled and (runtime == "onnx" or version.flavor in _BATCHING_FLAVORS)
            else None
        )

    def predict(self, frame: Frame) -> Output:
        """Predict validated rows."""
        if self._session is not None:
            assert frame.matrix is not None
            values = self._session.run(None, {self._input: frame.matrix.astype(np.float32)})
            index = self._proba_index
            return Output.of(values[0], values[index] if index is not None else None)
        data = frame.to_pandas()
        labels = self._model.predict(data)
        return Output.of(labels, self._native_proba(data) if self._native_proba else None)


def _native_proba(model: LoadedModel) -> Callable[[Any], Any] | None:
    """The loaded model's ``predict_proba`` when its native model has one (classifiers)."""
    proba: Callable[[Any], Any] | None = getattr(model, "predict_proba", None)
    try:
        native = model.native
    except NotSupportedError:  # a flavor that does not expose its model
        return None
    return proba if proba is not None and hasattr(native, "predict_proba") else None


class ModelServer:
    """Loads the version a reference names and swaps in a new one when the reference moves.

    Args:
        registry: resolves references.
        models: loads versions (verifying every file against its digest).
        reference: ``name@N``, ``name@latest``, ``name@ALIAS`` or ``name@STAGE``.
        runtime: ``auto`` (ONNX when a parity-checked export is attached, else native),
            ``onnx`` or ``native``.
        batching: micro-batching of single-row requests.
        on_batch: called with each batch's size (for metrics).
    """

    def __init__(
        self,
        registry: RegistryService,
        models: ModelService,
        reference: str,
        *,
        runtime: str = "auto",
        batching: BatchOptions | None = None,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        if runtime not in RUNTIMES:
            raise InvalidArgumentError(f"runtime is one of {', '.join(RUNTIMES)}, not {runtime!r}")
        self.reference = reference
        self.parsed = Reference.parse(reference)
        self.runtime = runtime
        self.batching = batching or BatchOptions()
        self.on_batch = on_batch
        self._registry = registry
        self._models = models
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="shipyard-predict")
        self._current: ServedModel | None = None
        self._lock = threading.Lock()

    @property
    def follows(self) -> bool:
        """Whether the reference can move (an alias, a stage or ``latest``)."""
        return self.parsed.version is None

    @property
    def current(self) -> ServedModel:
        """The version answering requests now."""
        if self._current is None:
            raise InvalidArgumentError("no model loaded yet: call load() first")
        return self._current

    @property
    def loaded(self) -> bool:
        """Whether a version is loaded."""
        return self._current is not None

    def load(self) -> ServedModel:
        """Resolve the reference and load its version.

        Raises:
            NotFoundError: for an unknown model, version or alias.
            CorruptBlobError: if a stored file no longer matches its digest.
            NotSupportedError: for ``runtime="onnx"`` without an attached ONNX export.
        """
        with self._lock:
            served = self._load(self._registry.resolve(self.reference))
            self._current = served
            return served

    def refresh(self) -> ServedModel | None:
        """Load the version the reference names now, if it moved; returns it, else None.

        The swap is one assignment: requests already running finish on the old version,
        later ones get the new one.
        """
        with self._lock:
            version = self._registry.resolve(self.reference)
            if self._current is not None and version.id == self._current.version.id:
                return None
            served = self._load(version)
            self._current = served
            return served

    def _load(self, version: ModelVersion) -> ServedModel:
        runtime = self.runtime
        if runtime == "auto":
            runtime = "onnx" if version.onnx_status == "attached" else "native"
        if runtime == "onnx" and version.onnx_status != "attached":
            raise NotSupportedError(
                f"{version.ref} (ONNX export {version.onnx_status}: "
                f"{version.onnx_reason or 'no reason recorded'})",
                "serving through ONNX Runtime; serve it with --runtime native",
            )
        model = self._models.load(version.ref, runtime=runtime)
        return ServedModel(
            version,
            runtime,
            model,
            batching=self.batching,
            executor=self._executor,
            on_batch=self.on_batch,
        )

    def close(self) -> None:
        """Stop the prediction thread."""
        self._executor.shutdown(wait=True)


class DeploymentRecorder(Protocol):
    """What serving needs of the deployments service (``Shipyard.deployments``)."""

    def start(self, *, name: str, version: int, alias: str | None, url: str, runtime: str) -> Any:
        """Record a running deployment; returns it (with an ``id``)."""

    def switch(self, deployment_id: str, version: int) -> None:
        """The deployment now serves ``version``."""

    def heartbeat(
        self,
        deployment_id: str,
        counts: RequestCounts | None = None,
    ) -> None:
        """The deployment is alive; with its cumulative ``/predict`` counts when given."""

    def stop(
        self,
        deployment_id: str,
        counts: RequestCounts | None = None,
    ) -> None:
        """The deployment stopped; with its last cumulative counts when given."""


class PredictionRecorder(Protocol):
    """What serving needs of the prediction log (``services.predictions.PredictionLog``)."""

    def record(
        self,
        *,
        request_id: str,
        at: float,
        version: int,
        inputs: Sequence[Mapping[str, Any]] | InputBlock,
        outputs: list[Any],
        latency: float,
        probabilities: Sequence[Sequence[float]] | None = None,
    ) -> None:
        """Queue one request's rows (never blocks on I/O)."""

    def counters(self) -> dict[str, int]:
        """Rows queued, written, dropped, sampled out; batches written."""

    def close(self) -> None:
        """Write what is queued and stop."""


@dataclass
class ServingSession:
    """One running deployment of a ``ModelServer``.

    Args:
        server: the loaded model server.
        lineage: for the source run and dataset versions shown in the metadata.
        deployments: records the deployment; None serves without a record.
        make_log: builds the prediction log for a deployment id; None logs nothing.
        feedback_sink: stores ground-truth labels ``(name, labels, deployment_id) -> stored``.
        url: where the server listens.
    """

    server: ModelServer
    lineage: LineageService
    deployments: DeploymentRecorder | None = None
    make_log: Callable[[str], PredictionRecorder] | None = None
    feedback_sink: Callable[[str, Mapping[str, Any], str | None], int] | None = None
    url: str = ""
    deployment_id: str | None = None
    log: PredictionRecorder | None = None
    log_errors: int = 0
    switches: int = 0
    started_at: float = field(default_factory=time.time)
    _lineage_cache: dict[str, dict[str, Any]] = field(default_factory=dict)

    def start(self) -> None:
        """Record the deployment as running and open the prediction log."""
        served = self.server.current
        if self.deployments is not None:
            alias = self.server.parsed.label
            deployment = self.deployments.start(
                name=served.version.name,
                version=served.version.version,
                alias=alias,
                url=self.url,
                runtime=served.runtime,
            )
            self.deployment_id = str(deployment.id)
        if self.make_log is not None and self.deployment_id is not None:
            self.log = self.make_log(self.deployment_id)

    def heartbeat(self, counts: RequestCounts | None = None) -> None:
        """Tell the deployment record the server is alive (and its counts since it started)."""
        if self.deployments is not None and self.deployment_id is not None:
            self.deployments.heartbeat(self.deployment_id, counts)

    def refresh(self) -> ServedModel | None:
        """Follow the reference: load and switch to the version it names now, if it moved."""
        served = self.server.refresh()
        if served is not None:
            self.switches += 1
            if self.deployments is not None and self.deployment_id is not None:
                self.deployments.switch(self.deployment_id, served.version.version)
        return served

    def record(
        self,
        request_id: str,
        at: float,
        version: int,
        frame: Frame,
        output: Output,
        latency: float,
    ) -> None:
        """Queue one request in the prediction log (an in-memory append)."""
        if self.log is None:
            return
        try:
            self.log.record(
                request_id=request_id,
                at=at,
                version=version,
                inputs=(
                    InputBlock(frame.names, frame.matrix)
                    if frame.matrix is not None
                    else frame.to_records()
                ),
                outputs=output.predictions,
                latency=latency,
                probabilities=output.probabilities,  # monitoring's ROC AUC reads them
            )
        except Exception:  # the log must never fail a prediction; counted in /metrics
            self.log_errors += 1

    def feedback(self, labels: Mapping[str, Any]) -> int:
        """Store ground-truth labels by request id; returns how many were stored.

        Raises:
            NotSupportedError: when the session has no feedback store.
        """
        if self.feedback_sink is None:
            raise NotSupportedError("this server", "feedback (no prediction store)")
        if not isinstance(labels, Mapping) or not labels:
            raise InvalidArgumentError('send {"labels": {"<request_id>": <label>, ...}}')
        name = self.server.current.version.name
        return self.feedback_sink(name, labels, self.deployment_id)

    def lineage_of(self, version: ModelVersion) -> dict[str, Any]:
        """The run that produced ``version`` and the dataset versions that run consumed."""
        cached = self._lineage_cache.get(version.ref)
        if cached is not None:
            return cached
        graph = self.lineage.graph(Node("model_version", version.ref), depth=2)
        runs = sorted({e.source.id for e in graph.upstream if e.relation == "produced"})
        datasets = sorted(
            {
                e.source.id
                for e in graph.upstream
                if e.source.kind == "dataset_version" and e.relation == "consumed_by"
            }
        )
        found = {"run": runs[0] if runs else version.run_id, "datasets": datasets}
        self._lineage_cache[version.ref] = found
        return found

    def metadata(self) -> dict[str, Any]:
        """What ``/metadata`` shows: model, version, alias, signature, runtime, lineage."""
        served = self.server.current
        version = served.version
        return {
            "model": version.name,
            "version": version.version,
            "reference": self.server.reference,
            "alias": self.server.parsed.label,
            "runtime": served.runtime,
            "flavor": version.flavor,
            "signature": version.signature.to_dict() if version.signature else None,
            "onnx": {"status": version.onnx_status, "max_diff": version.onnx_max_diff},
            "lineage": self.lineage_of(version),
            "deployment_id": self.deployment_id,
            "batching": {
                "enabled": served.batcher is not None,
                "max_batch": self.server.batching.max_batch,
                "max_wait_us": self.server.batching.max_wait_us,
            },
        }

    def close(self, counts: RequestCounts | None = None) -> None:
        """Flush the prediction log and record the deployment as stopped (with its counts)."""
        try:
            if self.log is not None:
                self.log.close()
        finally:
            if self.deployments is not None and self.deployment_id is not None:
                self.deployments.stop(self.deployment_id, counts)
            self.server.close()
