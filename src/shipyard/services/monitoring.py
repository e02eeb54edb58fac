"""Monitoring: drift, data quality, model quality and operations of a model's traffic.

``MonitoringService.run("churn@production", window="24h")`` compares the model's logged
predictions of the window with the dataset version it was trained on (found through
lineage: dataset version -consumed_by-> run -produced-> model version), judges the labelled
rows against the training run's metrics, stores the run with a JSON and an HTML report,
checks the alert rules of ``[monitoring]`` and, on an alert, notifies and starts the
retraining loop (``shipyard.services.monitoring_loop``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import tempfile
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import RowMapping, select

from shipyard.domain.checks import parse_duration
from shipyard.domain.drift import DataQuality, DriftOptions, DriftReport
from shipyard.domain.ids import new_id, utcnow
from shipyard.domain.lineage import Node
from shipyard.domain.models import ModelVersion
from shipyard.domain.monitoring import (
    Alert,
    MonitorRun,
    MonitorStatus,
    SkippedRule,
    evaluate,
    parse_rules,
    skipped_rules,
)
from shipyard.domain.predictions import BASE_COLUMNS, LABEL, PREDICTION
from shipyard.domain.references import validate_name
from shipyard.errors import InvalidArgumentError, NotFoundError
from shipyard.services.monitoring_metrics import error_metrics, prometheus_lines, window_metrics
from shipyard.settings import Settings
from shipyard.stores.artifacts.content import ContentStore
from shipyard.stores.metadata import SqlMetadataStore
from shipyard.stores.metadata.schema import monitor_runs

__all__ = ["MonitoringService"]

_log = logging.getLogger(__name__)

_MODEL_METRICS = ("accuracy", "f1", "roc_auc", "rmse", "mae", "r2")
_LABEL_NAMES = ("target", "label", "y", "class")
_LOG_OWN = (PREDICTION, "probability_", "output_")  # log columns no reference has


class MonitoringService:
    """Monitor runs: compute, store, show, list, export; alerts and the retraining loop.

    Args:
        metadata: the metadata store.
        content: the content-addressed blob store (reports).
        settings: the project's settings (``[monitoring]``, notifications).
        services: the project (``datasets``, ``registry``, ``runs``, ``lineage``,
            ``predictions``, ``pipelines``), read lazily.
        user: who runs are recorded as.
        cache: folder for cached reference sketches.
    """

    def __init__(
        self,
        metadata: SqlMetadataStore,
        content: ContentStore,
        settings: Settings,
        services: Any,
        *,
        user: str,
        cache: Path,
    ) -> None:
        self._metadata = metadata
        self._content = content
        self._settings = settings
        self._project = services
        self._user = user
        self._cache = cache

    # -- running ---------------------------------------------------------------------------

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
        """Monitor one model version over a window and store the run.

        Args:
            model_ref: the model version (``churn@production``, ``churn@3``).
            window: how far back the prediction log is read (``24h``, ``7d``).
            reference: the reference dataset version (default: the training data, found
                through lineage).
            current: a dataset version to monitor instead of the prediction log.
            retrain: run the retraining loop on an alert when ``[monitoring]`` configures it.
            now: the window's end (default: now).

        Returns:
            The stored run; ``run.retrain`` says what the retraining loop did.

        Raises:
            NotFoundError: for an unknown model or dataset version.
            InvalidArgumentError: for a bad window or alert rule, or when no reference can
                be found (pass one).
        """
        from shipyard.services.drift import DriftService

        rules = parse_rules(self._settings.monitor_alerts)
        span = parse_duration(window)
        version = self._project.registry.resolve(model_ref)
        ref = reference or self.training_dataset(version)
        features = [c.name for c in version.signature.inputs] if version.signature else None
        target = self._target(ref, features)
        until = now or utcnow()
        start: datetime | None = until - span
        end: datetime | None = until
        if current is not None:
            current_label = self._project.datasets.resolve(current).ref
            start = end = None
            seconds = None
        else:
            current_label = "predictions"
            seconds = span.total_seconds()
        options = DriftOptions(
            columns=tuple(features) if features else None,
            label=target or LABEL,
        )
        baseline = self._baseline(version)
        drift = DriftService(self._project.datasets, self._cache)
        self._cache.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="monitor-", dir=self._cache) as tmp:
            file = Path(tmp) / "window.parquet"
            try:
                data: Any = current_label  # a dataset version: its files, streamed
                ops: dict[str, float] = {}
                deployment = None
                if current is None:  # the log's window, streamed by DuckDB into one Parquet file
                    ops, deployment = self._export_window(
                        version, target, file, (start, end, seconds)
                    )
                    data = [file]
                    counts = self._project.deployments.request_counts(
                        version.name, version.version, start, end
                    )
                    ops |= error_metrics(counts)
                report = drift.compare(ref, data, options, baseline=baseline)
                report = _without_log_columns(report, features, target)
                metrics = window_metrics(report) | ops
                alerts = evaluate(rules, metrics)
                skipped = skipped_rules(rules, metrics)
                status: MonitorStatus = "no_data" if report.current_rows == 0 else "ok"
                if alerts and status == "ok":
                    status = "alert"
            except (InvalidArgumentError, NotFoundError):
                raise  # bad input: nothing is stored
            except Exception as exc:  # the store, a blob, DuckDB: a failed run in the history
                self._store_failed(version, ref, current_label, (start, end), exc)
                raise
            run = self._store(
                MonitorRun(
                    id=new_id(),
                    name=version.name,
                    version=version.version,
                    deployment_id=deployment,
                    reference=report.reference,
                    current=current_label,
                    window_start=start,
                    window_end=end,
                    rows=report.current_rows,
                    status=status,
                    metrics=metrics,
                    alerts=alerts,
                    report_digest=None,
                    html_digest=None,
                    created_at=utcnow(),
                    created_by=self._user,
                    skipped=skipped,
                ),
                report,
            )
            if alerts:
                from shipyard.services.monitoring_loop import notify, retrain_loop

                notify(self._settings, run)
                if retrain and status == "alert" and self._settings.retrain_pipeline:
                    rows = file if current is None else self.window(run.id)[0]
                    outcome = retrain_loop(
                        self._project, self._settings, run, rows, target or LABEL
                    )
                    run = dataclasses.replace(run, retrain=outcome)
        return run

    def _store_failed(
        self,
        version: ModelVersion,
        reference: str,
        current: str,
        window: tuple[datetime | None, datetime | None],
        exc: BaseException,
    ) -> None:
        """Record a run that failed, with why; a failure to record it is only logged."""
        run = MonitorRun(
            id=new_id(),
            name=version.name,
            version=version.version,
            deployment_id=None,
            reference=reference,
            current=current,
            window_start=window[0],
            window_end=window[1],
            rows=0,
            status="failed",
            metrics={},
            alerts=(),
            report_digest=None,
            html_digest=None,
            created_at=utcnow(),
            created_by=self._user,
            error=f"{type(exc).__name__}: {exc}"[:2000],
        )
        try:
            with self._metadata.write() as conn:
                conn.execute(monitor_runs.insert().values(**_row(run)))
        except Exception as failure:  # the store itself may be what failed
            _log.warning(
                "could not record the failed monitor run of %s: %s", run.model_ref, failure
            )

    def _export_window(
        self,
        version: ModelVersion,
        target: str | None,
        dest: Path,
        window: tuple[datetime | None, datetime | None, float | None],
    ) -> tuple[dict[str, float], str | None]:
        """Write the version's logged rows of the window to ``dest`` as drift reads them.

        Args:
            version: the model version whose rows are kept.
            target: the training label's name (the log's labels are renamed to it).
            dest: the Parquet file to write.
            window: its start, end and length in seconds.

        Returns:
            The operations metrics and the deployment of the newest row.
        """
        start, end, seconds = window
        features = [c.name for c in version.signature.inputs] if version.signature else None
        with self._project.predictions.window(version.name, since=start, until=end) as log:
            columns = _drift_columns(log.columns(), features, target)
            log.export(dest, columns, version=version.version)
            ops = log.operations(version=version.version, seconds=seconds)
            deployment = log.deployment(version=version.version)
        return ops, deployment

    def training_dataset(self, version: ModelVersion) -> str:
        """The dataset version a model version was trained on, through lineage.

        Raises:
            InvalidArgumentError: when lineage names none (pass a reference instead).
        """
        if version.run_id:
            graph = self._project.lineage.graph(Node("run", version.run_id), depth=1)
            found = sorted(
                (e for e in graph.upstream if e.source.kind == "dataset_version"),
                key=lambda e: e.created_at,
            )
            if found:
                return str(found[-1].source.id)
        raise InvalidArgumentError(
            f"no training dataset of {version.ref} is known through lineage (its run used "
            "none): pass the reference, e.g. --reference wine@1"
        )

    def _target(self, reference: str, features: Sequence[str] | None) -> str | None:
        """The training label: the reference's one column that is no model input.

        With several such columns, the one named ``target``, ``label``, ``y`` or ``class``.
        """
        if not features:
            return None
        schema = self._project.datasets.resolve(reference).schema
        names: list[str] = [str(c.name) for c in schema] if schema else []
        rest = [n for n in names if n not in features]
        if len(rest) == 1:
            return rest[0]
        usual = [n for n in _LABEL_NAMES if n in rest]  # beside ids and other extras
        return usual[0] if usual else None

    def _baseline(self, version: ModelVersion) -> dict[str, float]:
        if not version.run_id:
            return {}
        run = self._project.runs.get(version.run_id)
        return {k: float(m.value) for k, m in run.metrics.items() if k in _MODEL_METRICS}

    def _store(self, run: MonitorRun, report: DriftReport) -> MonitorRun:
        from shipyard.services.monitoring_reports import render_monitor_html

        history = self.history(run.name, limit=30)
        page = render_monitor_html(run, report, history)
        body = {"run": run.to_dict(), "report": report.to_dict()}
        report_blob = self._content.put_bytes(json.dumps(body, allow_nan=False).encode())
        html_blob = self._content.put_bytes(page.encode())
        run = dataclasses.replace(
            run, report_digest=report_blob.digest, html_digest=html_blob.digest
        )
        row = _row(run)
        with self._metadata.write() as conn:
            conn.execute(monitor_runs.insert().values(**row))
            node = Node("monitor_run", run.id)
            lineage = self._project.lineage
            mv = Node("model_version", run.model_ref)
            lineage.link(conn, mv, "monitored_by", node, actor=self._user)
            if run.deployment_id:
                dep = Node("deployment", run.deployment_id)
                lineage.link(conn, dep, "monitored_by", node, actor=self._user)
        return run

    def window(self, run_id: str) -> tuple[Any, str]:
        """The rows a stored run judged, as the retraining loop trains on them, and the label.

        The same window read again: the run's prediction-log window (or its dataset
        version), the model's input columns, the prediction and the labels named as in the
        training data.

        Raises:
            NotFoundError: if there is no such run, or its model version or data went.
        """
        run = self.show(run_id)
        version = self._project.registry.resolve(f"{run.name}@{run.version}")
        features = [c.name for c in version.signature.inputs] if version.signature else None
        target = self._target(run.reference, features)
        if run.current != "predictions":
            table = self._project.datasets.get(run.current).to_arrow()
            columns = _drift_columns(table.column_names, features, target)
            table = table.select(list(columns)).rename_columns(list(columns.values()))
            return table, target or LABEL
        import pyarrow.parquet as pq

        self._cache.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="window-", dir=self._cache) as tmp:
            file = Path(tmp) / "window.parquet"
            span = (run.window_start, run.window_end, None)
            self._export_window(version, target, file, span)
            return pq.read_table(file), target or LABEL

    def link_dataset(self, run: MonitorRun, dataset: str) -> None:
        """Record that the retraining loop made ``dataset`` from this run's window."""
        with self._metadata.write() as conn:
            self._project.lineage.link(
                conn,
                Node("monitor_run", run.id),
                "created",
                Node("dataset_version", dataset),
                actor=run.created_by,
            )

    # -- reading ---------------------------------------------------------------------------

    def show(self, run_id: str) -> MonitorRun:
        """One monitor run.

        Raises:
            NotFoundError: if there is no such run.
        """
        with self._metadata.read() as conn:
            row = conn.execute(select(monitor_runs).where(monitor_runs.c.id == run_id)).first()
        if row is None:
            raise NotFoundError(
                f"monitor run {run_id!r} does not exist; `shipyard monitor history MODEL` "
                "lists them"
            )
        return _run(row._mapping)

    def history(self, model: str, *, limit: int = 20) -> list[MonitorRun]:
        """The newest monitor runs of a model (a name or ``name@ref``), newest first.

        Raises:
            InvalidArgumentError: for a bad name or limit.
        """
        if limit < 1:
            raise InvalidArgumentError(f"limit must be at least 1, got {limit}")
        name = validate_name(model.split("@", 1)[0], what="model name")
        m = monitor_runs.c
        query = (
            select(monitor_runs)
            .where(m.name == name)
            .order_by(m.created_at.desc(), m.id.desc())
            .limit(limit)
        )
        with self._metadata.read() as conn:
            return [_run(r._mapping) for r in conn.execute(query)]

    def latest(self, names: Sequence[str] | None = None) -> list[MonitorRun]:
        """The newest run of each model (of ``names``, or of every monitored model)."""
        m = monitor_runs.c
        with self._metadata.read() as conn:
            wanted = (
                list(names)
                if names is not None
                else list(conn.execute(select(m.name).distinct()).scalars())
            )
            found = []
            for name in sorted(wanted):
                row = conn.execute(
                    select(monitor_runs)
                    .where(m.name == name)
                    .order_by(m.created_at.desc(), m.id.desc())
                    .limit(1)
                ).first()
                if row is not None:
                    found.append(_run(row._mapping))
        return found

    def report(self, run_id: str) -> dict[str, Any]:
        """The stored JSON report of a run: ``{"run": …, "report": DriftReport.to_dict()}``."""
        run = self.show(run_id)
        if run.report_digest is None:
            raise NotFoundError(f"monitor run {run_id} has no stored report")
        data: dict[str, Any] = json.loads(self._content.read_bytes(run.report_digest))
        return data

    def report_html(self, run_id: str) -> str:
        """The stored self-contained HTML report of a run."""
        run = self.show(run_id)
        if run.html_digest is None:
            raise NotFoundError(f"monitor run {run_id} has no stored HTML report")
        return self._content.read_bytes(run.html_digest).decode()

    def metrics_text(self, names: Sequence[str] | None = None) -> str:
        """The latest run of each model as Prometheus gauges (text exposition format)."""
        return "\n".join(prometheus_lines(self.latest(names))) + "\n"


# -- helpers of one module ---------------------------------------------------------------------


def _drift_columns(
    names: Sequence[str], features: Sequence[str] | None, target: str | None
) -> dict[str, str]:
    """The window's columns drift reads, each to its name there (the label named as in training).

    The model's inputs (every non-log column when unknown), the log's own prediction columns
    and the label.
    """
    keep = [
        n
        for n in names
        if (features is None and n not in BASE_COLUMNS and n != LABEL)
        or (features is not None and n in features)
        or n.startswith(_LOG_OWN)
    ]
    columns = {n: n for n in keep}
    if LABEL in names:
        columns[LABEL] = target if target and target not in keep else LABEL
    return columns


def _without_log_columns(
    report: DriftReport, features: Sequence[str] | None, target: str | None
) -> DriftReport:
    """Drop schema findings about columns monitoring leaves out on purpose.

    Those are the log's own prediction columns ("new") and, when the model's inputs are
    known, reference columns that are neither an input nor the label, such as ids ("missing").
    """
    kept = {*(features or ()), *([target] if target else [])}

    def extra(name: str, change: str) -> bool:
        if change == "new":  # the log's own columns, or a dataset window's other columns
            return name.startswith(_LOG_OWN) or (features is not None and name not in kept)
        return change == "missing" and features is not None and name not in kept

    dropped = {c.name for c in report.quality.schema if extra(c.name, c.change)}
    if not dropped:
        return report
    words = {"new": "is new", "missing": "is missing"}
    quality = DataQuality(
        schema=tuple(c for c in report.quality.schema if c.name not in dropped),
        columns=report.quality.columns,
        issues=tuple(
            i
            for i in report.quality.issues
            if not any(i.startswith(f"column {n!r} {w}") for n in dropped for w in words.values())
        ),
    )
    return dataclasses.replace(report, quality=quality)


def _row(run: MonitorRun) -> dict[str, Any]:
    metrics = {k: v for k, v in run.metrics.items() if v == v and abs(v) != float("inf")}
    return {
        "id": run.id,
        "name": run.name,
        "version": run.version,
        "deployment_id": run.deployment_id,
        "reference": run.reference,
        "current": run.current,
        "window_start": run.window_start,
        "window_end": run.window_end,
        "rows": run.rows,
        "status": run.status,
        "metrics": json.dumps(metrics, sort_keys=True),
        "alerts": json.dumps([a.to_dict() for a in run.alerts]),
        "report_digest": run.report_digest,
        "html_digest": run.html_digest,
        "created_at": run.created_at,
        "created_by": run.created_by,
        "error": run.error,
        "skipped_rules": json.dumps([r.to_dict() for r in run.skipped]),
    }


def _run(row: RowMapping | Mapping[str, Any]) -> MonitorRun:
    return MonitorRun(
        id=row["id"],
        name=row["name"],
        version=row["version"],
        deployment_id=row["deployment_id"],
        reference=row["reference"],
        current=row["current"],
        window_start=row["window_start"],
        window_end=row["window_end"],
        rows=int(row["rows"]),
        status=row["status"],
        metrics={k: float(v) for k, v in json.loads(row["metrics"]).items()},
        alerts=tuple(Alert.from_dict(a) for a in json.loads(row["alerts"])),
        report_digest=row["report_digest"],
        html_digest=row["html_digest"],
        created_at=row["created_at"],
        created_by=row["created_by"],
        error=row.get("error"),
        skipped=tuple(map(SkippedRule.from_dict, json.loads(row.get("skipped_rules") or "[]"))),
    )
