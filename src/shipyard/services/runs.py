"""Runs: start, log to, end and read experiment runs; logging is buffered and batched.

Durability: ``log_param``, ``set_tag`` and ``log_artifact`` are committed before they
return. ``log_metric`` appends to an in-memory buffer that a background thread commits in
one transaction at least every ``FLUSH_SECONDS`` (and at once when it holds
``FLUSH_POINTS`` points); ``run.flush()`` commits it on demand and ending the run commits
everything. So when ``log_metric`` returns, the point is in the process; within a second it
is in the store; after the run ends (normally or by an exception) all of it is.
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

from sqlalchemy import select

from shipyard.domain.ids import new_id, utcnow
from shipyard.domain.lineage import Node
from shipyard.domain.models import ModelVersion
from shipyard.domain.references import validate_name
from shipyard.domain.runs import FINAL_STATUSES, Experiment, Run, RunArtifact
from shipyard.errors import ConflictError, InvalidArgumentError, NotFoundError
from shipyard.services.datasets import DatasetService
from shipyard.services.lineage import LineageService
from shipyard.services.metrics import MetricPoint, MetricStore
from shipyard.services.models import ModelService
from shipyard.services.objects import LocalFile, ObjectService, StoredFile
from shipyard.services.run_artifacts import ArtifactReads
from shipyard.services.run_search import RunPage
from shipyard.services.run_writes import (
    insert_artifacts,
    require_running,
    write_params,
    write_tags,
)
from shipyard.services.transfers import require_stored
from shipyard.stores.metadata import SqlMetadataStore
from shipyard.stores.metadata.schema import experiments as experiments_table
from shipyard.stores.metadata.schema import (
    run_artifacts,
    runs,
)

__all__ = [
    "FLUSH_POINTS",
    "FLUSH_SECONDS",
    "ActiveRun",
    "RunService",
    "RunWriter",
    "check_key",
    "param_text",
]

FLUSH_SECONDS = 1.0
FLUSH_POINTS = 50_000
HEARTBEAT = timedelta(seconds=30)
STALE_AFTER = timedelta(minutes=5)  # a remote run silent this long is taken as killed
MAX_KEY = 255
MAX_PARAM = 6000


class RunService(ArtifactReads):
    """Experiments and runs in the metadata store."""

    def __init__(
        self,
        metadata: SqlMetadataStore,
        objects: ObjectService,
        lineage: LineageService,
        models: ModelService,
        datasets: DatasetService,
        *,
        user: str,
        scratch: Path,
    ) -> None:
        self._metadata = metadata
        self._objects = objects
        self._lineage = lineage
        self._models = models
        self._datasets = datasets
        self._user = user
        self._scratch = scratch
        self.metrics = MetricStore(metadata)
        self._local = threading.local()

    # -- experiments ------------------------------------------------------------------------

    def experiment(self, name: str, *, create: bool = True) -> Experiment:
        """The experiment with this name, created on first use unless ``create`` is False.

        Raises:
            NotFoundError: if it does not exist and ``create`` is False.
        """
        validate_name(name, what="experiment name")
        query = select(experiments_table).where(experiments_table.c.name == name)
        with self._metadata.read() as conn:
            row = conn.execute(query).first()
        if row is None:
            if not create:
                raise NotFoundError(f"experiment {name!r} does not exist")
            with self._metadata.write() as conn:
                self._metadata.insert_ignore(
                    conn,
                    experiments_table,
                    [
                        {
                            "id": new_id(),
                            "name": name,
                            "created_at": utcnow(),
                            "created_by": self._user,
                        }
                    ],
                )
                row = conn.execute(query).first()
        if row is None:  # pragma: no cover - inserted just above
            raise NotFoundError(f"experiment {name!r} could not be created")
        return Experiment(row.id, row.name, row.created_at, row.created_by)

    def experiments(self) -> list[Experiment]:
        """Every experiment, by name."""
        with self._metadata.read() as conn:
            rows = conn.execute(select(experiments_table).order_by(experiments_table.c.name)).all()
        return [Experiment(r.id, r.name, r.created_at, r.created_by) for r in rows]

    # -- runs -------------------------------------------------------------------------------

    def start_run(
        self,
        experiment: str = "default",
        *,
        name: str | None = None,
        parent: str | ActiveRun | None = None,
        tags: Mapping[str, str] | None = None,
        capture: bool = True,
    ) -> ActiveRun:
        """Start a run; use it as a context manager so that it ends, also on errors.

        Args:
            experiment: the experiment's name (created on first use).
            name: a human name for the run (default: generated).
            parent: the parent run (or its id) for a nested run; inside a ``with`` block
                of another run of this service the parent is that run.
            tags: tags to set at once.
            capture: record git, entry point, packages, host and resource use.

        Returns:
            The running run.
        """
        exp = self.experiment(experiment)
        stack: list[ActiveRun] = self._stack()
        parent_id = parent.id if isinstance(parent, ActiveRun) else parent
        if parent_id is None and stack:
            parent_id = stack[-1].id
        if parent_id is not None:
            self.get(parent_id)
        run_id = new_id()
        environment = None
        if capture:
            from shipyard.services.environment import capture_environment

            environment = capture_environment()
        now = utcnow()
        with self._metadata.write() as conn:
            conn.execute(
                runs.insert().values(
                    id=run_id,
                    experiment_id=exp.id,
                    name=name or f"run-{run_id[-8:]}",
                    parent_id=parent_id,
                    status="running",
                    user=self._user,
                    start_time=now,
                    end_time=None,
                    heartbeat_at=now,
                    host=socket.gethostname(),
                    pid=os.getpid(),
                    environment=json.dumps(environment) if environment else None,
                    resources=None,
                )
            )
        run = ActiveRun(self, run_id, exp.name, capture=capture)
        if tags:
            run.set_tags(tags)
        return run

    def active_run(self) -> ActiveRun | None:
        """The innermost run this thread opened with ``with start_run(...)``, if any."""
        stack = self._stack()
        return stack[-1] if stack else None

    def _stack(self) -> list[ActiveRun]:
        stack: list[ActiveRun] | None = getattr(self._local, "stack", None)
        if stack is None:
            stack = self._local.stack = []
        return stack

    def get(self, run_id: str) -> Run:
        """A run with its params, tags and latest metrics.

        Raises:
            NotFoundError: if no run has this id.
        """
        found = self.load([run_id])
        if not found:
            raise NotFoundError(f"run {run_id!r} does not exist")
        return found[0]

    def load(self, run_ids: Sequence[str], *, reap: bool = True) -> list[Run]:
        """Runs by id, in the order given (unknown ids are left out).

        Args:
            run_ids: the runs.
            reap: mark those whose process is gone as killed first (a caller that has just
                reaped every running run passes False).
        """
        ids = list(dict.fromkeys(run_ids))
        if not ids:
            return []
        if reap:
            self._reap(ids)
        from shipyard.services.run_search import load_runs

        with self._metadata.read() as conn:
            return load_runs(conn, ids, self._metadata)

    def _reap(self, run_ids: Sequence[str]) -> None:
        """Mark runs whose process is gone as killed, so none stays "running" forever."""
        from shipyard.services.environment import process_alive

        query = select(runs.c.id, runs.c.host, runs.c.pid, runs.c.start_time, runs.c.heartbeat_at)
        with self._metadata.read() as conn:
            running = conn.execute(
                query.where(runs.c.id.in_(list(run_ids)), runs.c.status == "running")
            ).all()
        now = utcnow()
        dead = []
        for row in running:
            alive = process_alive(row.pid, row.host, row.start_time.timestamp())
            if alive is False or (alive is None and now - row.heartbeat_at > STALE_AFTER):
                dead.append(row.id)
        if dead:
            with self._metadata.write() as conn:
                conn.execute(
                    runs.update()
                    .where(runs.c.id.in_(dead), runs.c.status == "running")
                    .values(status="killed", end_time=now)
                )

    def search(
        self,
        experiments: str | Sequence[str] | None = None,
        filter: str | None = None,
        order_by: Sequence[str] | str | None = None,
        max_results: int = 1000,
        page_token: str | None = None,
    ) -> RunPage:
        """Find runs, MLflow-style, with a strict filter language.

        Args:
            experiments: experiment name(s); default: every experiment.
            filter: e.g. ``"metrics.auc > 0.9 and params.max_depth = '5'"``.
            order_by: e.g. ``["metrics.auc desc", "start_time"]``.
            max_results: at most this many runs in this page.
            page_token: the ``next_page_token`` of the previous page.

        Returns:
            A page of runs; ``.to_pandas()`` makes it a DataFrame.

        Raises:
            InvalidArgumentError: for a malformed filter, ordering or token.
        """
        from shipyard.services.run_search import RunQuery, search_runs

        query = RunQuery.build(experiments, filter, order_by, max_results, page_token)
        with self._metadata.read() as conn:
            running = list(
                conn.execute(select(runs.c.id).where(runs.c.status == "running")).scalars()
            )
        if running:  # reaped first, so a search by status sees the truth
            self._reap(running)
        self._metadata.refresh_statistics()
        found, token = search_runs(self._metadata, query)
        return RunPage(found, token)

    def artifacts(self, run_id: str) -> list[RunArtifact]:
        """The files a run logged."""
        query = (
            select(run_artifacts)
            .where(run_artifacts.c.run_id == run_id)
            .order_by(run_artifacts.c.path)
        )
        with self._metadata.read() as conn:
            return [RunArtifact(r.path, r.digest, r.size) for r in conn.execute(query)]

    # -- writes used by ActiveRun ------------------------------------------------------------

    def _write_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        values = {check_key(k): param_text(v) for k, v in params.items()}
        with self._metadata.write() as conn:
            require_running(conn, run_id)
            write_params(conn, run_id, values)

    def _write_tags(self, run_id: str, tags: Mapping[str, Any]) -> None:
        values = {check_key(k): str(v) for k, v in tags.items()}
        if not values:
            return
        with self._metadata.write() as conn:
            require_running(conn, run_id)
            write_tags(conn, run_id, values)

    def _write_metrics(
        self, run_id: str, points: Sequence[MetricPoint], *, heartbeat: bool
    ) -> None:
        with self._metadata.write() as conn:
            self._metadata.lock(conn, f"run:{run_id}")
            self.metrics.append(conn, run_id, points)
            if heartbeat:
                conn.execute(runs.update().where(runs.c.id == run_id).values(heartbeat_at=utcnow()))

    def _write_artifacts(self, run_id: str, files: Sequence[LocalFile]) -> list[RunArtifact]:
        stored, _ = self._objects.hash(files)
        staged = self._objects.stage(files, stored)
        with self._metadata.write() as conn:
            require_running(conn, run_id)
            self._objects.commit(conn, staged)
            insert_artifacts(conn, run_id, stored)
        return [RunArtifact(f.name, f.digest, f.size) for f in stored]

    def record_artifacts(self, run_id: str, files: Sequence[StoredFile]) -> list[RunArtifact]:
        """Record content stored already (uploaded by digest) as artifacts of a running run.

        The sizes recorded are the stored objects' own, never the caller's claim.

        Raises:
            UnsafePathError: for an artifact path that is absolute or climbs out.
            NotFoundError: when a digest is not stored content (upload it first).
            InvalidArgumentError: when a size differs from the stored content's.
            ConflictError: when the run is not running.
        """
        names = [_check_artifact_path(f.name) for f in files]
        require_stored(self._objects, files, "artifact")
        stored = [StoredFile(n, f.size, f.digest) for n, f in zip(names, files, strict=True)]
        with self._metadata.write() as conn:
            require_running(conn, run_id)
            insert_artifacts(conn, run_id, stored)
        return [RunArtifact(f.name, f.digest, f.size) for f in stored]

    def link_input(self, run_id: str, dataset_ref: str) -> None:
        """Record that a run consumed a dataset version (what ``use_dataset`` writes).

        Raises:
            DatasetNotFoundError: when the reference names no version.
        """
        self._link_input(run_id, dataset_ref)

    def _link_input(self, run_id: str, dataset_ref: str) -> None:
        # name@latest or a label becomes the numbered version it means now: lineage must
        # keep pointing at the same data when the label moves.
        version = self._datasets.resolve(dataset_ref)
        with self._metadata.write() as conn:
            self._lineage.link(
                conn,
                Node("dataset_version", version.ref),
                "consumed_by",
                Node("run", run_id),
                actor=self._user,
            )

    def _finish(self, run_id: str, status: str, resources: Mapping[str, Any] | None) -> None:
        with self._metadata.write() as conn:
            conn.execute(
                runs.update()
                .where(runs.c.id == run_id)
                .values(
                    status=status,
                    end_time=utcnow(),
                    resources=json.dumps(resources) if resources else None,
                )
            )


class RunWriter(Protocol):
    """Where an ``ActiveRun`` sends its writes: ``RunService`` locally, the HTTP client remotely."""

    _scratch: Path

    @property
    def _models(self) -> ModelService: ...

    def _stack(self) -> list[ActiveRun]: ...

    def _write_params(self, run_id: str, params: Mapping[str, Any]) -> None: ...

    def _write_tags(self, run_id: str, tags: Mapping[str, Any]) -> None: ...

    def _write_metrics(
        self, run_id: str, points: Sequence[MetricPoint], *, heartbeat: bool
    ) -> None: ...

    def _write_artifacts(self, run_id: str, files: Sequence[LocalFile]) -> list[RunArtifact]: ...

    def _link_input(self, run_id: str, dataset_ref: str) -> None: ...

    def _finish(self, run_id: str, status: str, resources: Mapping[str, Any] | None) -> None: ...


class ActiveRun:
    """A run in progress: log params, metrics, tags and artifacts to it.

    Use it as a context manager: leaving the block ends the run as ``finished``, or as
    ``failed`` (``killed`` on KeyboardInterrupt) when the block raises.
    """

    def __init__(self, service: RunWriter, run_id: str, experiment: str, *, capture: bool) -> None:
        self._service = service
        self.id = run_id
        self.experiment = experiment
        self._buffer: list[MetricPoint] = []
        self._steps: dict[str, int] = {}
        self._lock = threading.Lock()
        self._ended = False
        self._last_heartbeat = time.monotonic()
        self._meter: Any = None
        if capture:
            from shipyard.services.environment import ResourceMeter

            self._meter = ResourceMeter.start()
        self._start_flusher()

    def __repr__(self) -> str:
        return f"<run {self.id} of {self.experiment}{' (ended)' if self._ended else ''}>"

    # -- logging -------------------------------------------------------------------------------

    def log_param(self, key: str, value: Any) -> None:
        """Record a parameter; logging it again with another value is an error."""
        self.log_params({key: value})

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Record several parameters in one transaction.

        Raises:
            ConflictError: if a param was logged before with another value, or the run ended.
        """
        self._check_open()
        self._service._write_params(self.id, params)

    def set_tag(self, key: str, value: Any) -> None:
        """Set a tag; tags, unlike params, may change."""
        self.set_tags({key: value})

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Set several tags in one transaction."""
        self._check_open()
        self._service._write_tags(self.id, tags)

    def log_metric(
        self, key: str, value: float, step: int | None = None, timestamp: float | None = None
    ) -> None:
        """Record one point of a metric; NaN and infinities are kept as such.

        Args:
            key: the metric's name.
            value: its value.
            step: the training step (default: the number of points logged for this key).
            timestamp: seconds since the epoch (default: now).
        """
        if self._ended:
            self._check_open()
        key, number = check_key(key), _value(key, value)
        moment = time.time() if timestamp is None else timestamp
        with self._lock:
            at = self._next_step(key, step)
            self._buffer.append((key, at, moment, number))
            full = len(self._buffer) >= FLUSH_POINTS
        if full:
            self.flush()

    def log_metrics(
        self, metrics: Mapping[str, float], step: int | None = None, timestamp: float | None = None
    ) -> None:
        """Record one point of several metrics at the same step and time."""
        self._check_open()
        moment = time.time() if timestamp is None else timestamp
        checked = [(check_key(k), _value(k, v)) for k, v in metrics.items()]
        with self._lock:
            for key, number in checked:
                self._buffer.append((key, self._next_step(key, step), moment, number))
            full = len(self._buffer) >= FLUSH_POINTS
        if full:
            self.flush()

    def _next_step(self, key: str, step: int | None) -> int:
        # Without a step, a point gets the one after the last step of its key.
        if step is None:
            step = self._steps.get(key, -1) + 1
        elif isinstance(step, bool) or not isinstance(step, int):
            raise InvalidArgumentError(f"step must be an integer, not {step!r}")
        self._steps[key] = step
        return step

    def flush(self) -> None:
        """Commit buffered metric points now.

        Raises:
            ShipyardError: if the store refuses the write; the points stay buffered and the
                next flush (or the run's end) tries again.
        """
        with self._lock:
            points, self._buffer = self._buffer, []
        if points:
            beat = time.monotonic() - self._last_heartbeat > HEARTBEAT.total_seconds()
            try:
                self._service._write_metrics(self.id, points, heartbeat=beat)
            except BaseException:
                with self._lock:  # put them back in front of anything logged meanwhile
                    self._buffer[:0] = points
                raise
            if beat:
                self._last_heartbeat = time.monotonic()

    def _start_flusher(self) -> None:
        self._wake = threading.Event()
        self._flusher = threading.Thread(
            target=self._flush_loop, name=f"shipyard-run-{self.id[-8:]}", daemon=True
        )
        self._flusher.start()

    def _flush_loop(self) -> None:
        while not self._wake.wait(FLUSH_SECONDS):
            try:
                self.flush()
                if time.monotonic() - self._last_heartbeat > HEARTBEAT.total_seconds():
                    self._service._write_metrics(self.id, [], heartbeat=True)
                    self._last_heartbeat = time.monotonic()
            except Exception:
                continue

    def log_artifact(
        self, local_path: Path | str, artifact_path: str | None = None
    ) -> list[RunArtifact]:
        """Store a file or a folder (recursively) under ``artifact_path`` in the run.

        Raises:
            NotFoundError: if the path does not exist.
        """
        self._check_open()
        path = Path(local_path)
        if not path.exists():
            raise NotFoundError(f"{path} does not exist")
        prefix = _check_artifact_path(artifact_path) if artifact_path else ""
        if path.is_dir():
            files = [
                LocalFile(p, "/".join(filter(None, [prefix, p.relative_to(path).as_posix()])))
                for p in sorted(path.rglob("*"))
                if p.is_file()
            ]
        else:
            files = [LocalFile(path, "/".join(filter(None, [prefix, path.name])))]
        return self._service._write_artifacts(self.id, files)

    def log_artifacts(
        self, local_dir: Path | str, artifact_path: str | None = None
    ) -> list[RunArtifact]:
        """Store every file of a folder."""
        return self.log_artifact(local_dir, artifact_path)

    def log_dict(self, data: Any, artifact_file: str) -> RunArtifact:
        """Store a JSON-serialisable value as a JSON file (``.yaml``/``.yml`` not supported)."""
        text = json.dumps(data, indent=2, sort_keys=True, default=str)
        return self._log_bytes(text.encode(), artifact_file)

    def log_text(self, text: str, artifact_file: str) -> RunArtifact:
        """Store a text as a file."""
        return self._log_bytes(text.encode(), artifact_file)

    def log_table(self, table: Any, artifact_file: str) -> RunArtifact:
        """Store a table (pyarrow, pandas or polars) as Parquet (or ``.csv``/``.json``)."""
        import pyarrow as pa
        import pyarrow.csv as pcsv
        import pyarrow.parquet as pq

        if not isinstance(table, pa.Table):
            module = type(table).__module__.split(".")[0]
            if module == "pandas":
                table = pa.Table.from_pandas(table, preserve_index=False)
            elif module == "polars":
                table = table.to_arrow()
            else:
                raise InvalidArgumentError("log_table takes a pyarrow, pandas or polars table")
        with tempfile.TemporaryDirectory(dir=self._scratch_dir()) as tmp:
            target = Path(tmp) / Path(artifact_file).name
            if artifact_file.endswith(".csv"):
                pcsv.write_csv(table, target)
            elif artifact_file.endswith(".json"):
                target.write_text(json.dumps(table.to_pylist(), default=str))
            else:
                pq.write_table(table, target)
            return self._log_file(target, artifact_file)

    def log_figure(self, figure: Any, artifact_file: str) -> RunArtifact:
        """Store a matplotlib figure (PNG, SVG or PDF by the file's suffix)."""
        if not hasattr(figure, "savefig"):
            raise InvalidArgumentError("log_figure takes a matplotlib figure")
        with tempfile.TemporaryDirectory(dir=self._scratch_dir()) as tmp:
            target = Path(tmp) / Path(artifact_file).name
            figure.savefig(target)
            return self._log_file(target, artifact_file)

    def log_model(self, model: Any, name: str, **options: Any) -> ModelVersion:
        """Store a model and register it as the next version of ``name``, made by this run.

        Takes the options of ``ModelService.log_model`` (flavor, signature, input_example,
        training_sample, requirements, description, tags, onnx).
        """
        self._check_open()
        return self._service._models.log_model(model, name, run_id=self.id, **options)

    def use_dataset(self, dataset: Any) -> None:
        """Record that this run consumed a dataset version (a ``DatasetHandle`` or ``name@N``)."""
        self._check_open()
        ref = getattr(dataset, "ref", dataset)
        if not isinstance(ref, str):
            raise InvalidArgumentError("use_dataset takes a dataset version or a 'name@N' string")
        self._service._link_input(self.id, ref)

    def _log_bytes(self, data: bytes, artifact_file: str) -> RunArtifact:
        with tempfile.TemporaryDirectory(dir=self._scratch_dir()) as tmp:
            target = Path(tmp) / "content"
            target.write_bytes(data)
            return self._log_file(target, artifact_file)

    def _log_file(self, path: Path, artifact_file: str) -> RunArtifact:
        self._check_open()
        name = _check_artifact_path(artifact_file)
        return self._service._write_artifacts(self.id, [LocalFile(path, name)])[0]

    def _scratch_dir(self) -> Path:
        scratch = self._service._scratch
        scratch.mkdir(parents=True, exist_ok=True)
        return scratch

    # -- ending --------------------------------------------------------------------------------

    def end(self, status: str = "finished") -> None:
        """Flush everything and end the run; ending twice is a no-op."""
        if self._ended:
            return
        if status not in FINAL_STATUSES:
            raise InvalidArgumentError(f"a run ends as {', '.join(sorted(FINAL_STATUSES))}")
        self._wake.set()
        self._flusher.join(timeout=10)
        try:
            self.flush()
            resources = self._meter.stop() if self._meter is not None else None
            self._service._finish(self.id, status, resources)
        except BaseException:
            self._start_flusher()  # still open: keep flushing what is logged from now on
            raise
        self._ended = True

    def _check_open(self) -> None:
        if self._ended:
            raise ConflictError(f"run {self.id} has ended; start a new run to log more")

    def __enter__(self) -> ActiveRun:
        self._service._stack().append(self)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        stack = self._service._stack()
        if stack and stack[-1] is self:
            stack.pop()
        if exc_type is None:
            self.end("finished")
        elif issubclass(exc_type, KeyboardInterrupt):
            self.end("killed")
        else:
            self.end("failed")


def check_key(key: object) -> str:
    """A param, tag or metric key as given, once checked (non-empty text, no NUL, not too long)."""
    if not isinstance(key, str) or not key or len(key) > MAX_KEY or "\0" in key:
        raise InvalidArgumentError(
            f"key {key!r} must be a non-empty string of at most {MAX_KEY} characters"
        )
    return key


def param_text(value: Any) -> str:
    """A param value as the text it is stored as (refused over ``MAX_PARAM`` characters)."""
    text = (
        value
        if isinstance(value, str)
        else json.dumps(value, default=str)
        if isinstance(value, (list, dict, tuple))
        else str(value)
    )
    if len(text) > MAX_PARAM:
        raise InvalidArgumentError(f"a param value has at most {MAX_PARAM} characters")
    return text


def _value(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        try:
            return float(value)
        except (TypeError, ValueError):
            raise InvalidArgumentError(f"metric {key!r}: {value!r} is not a number") from None
    return float(value)


def _check_artifact_path(path: str) -> str:
    clean = path.strip("/")
    parts = clean.split("/")
    if not clean or any(p in ("", ".", "..") for p in parts) or "\\" in clean or "\0" in clean:
        raise InvalidArgumentError(
            f"artifact path {path!r} must be a relative path without '.', '..' or empty parts"
        )
    return clean
