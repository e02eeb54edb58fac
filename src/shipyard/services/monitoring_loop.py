"""What an alert sets off: notifications, and the retraining loop.

The loop adds the alerting window (with its labels, where feedback gave them) as a new
version of a dataset, runs the configured pipeline with that version's reference as a
parameter, and when the pipeline's result names a model version, files a promotion request
for it. The request waits for an approver: nothing reaches production unseen.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

from shipyard.domain.monitoring import MonitorRun
from shipyard.domain.notifications import NotificationEvent, parse_sink
from shipyard.errors import ShipyardError
from shipyard.settings import Settings

__all__ = ["model_reference", "notify", "retrain_loop"]

log = logging.getLogger(__name__)


def notify(settings: Settings, run: MonitorRun, *, timeout: float = 30.0) -> list[str]:
    """Send an ``alert`` event for a run to ``monitoring.notify`` and ``+alert`` sinks.

    Args:
        settings: the project's settings.
        run: the run whose alerts fired.
        timeout: seconds to wait for the deliveries.

    Returns:
        The failed deliveries, one line each (empty when all went through).
    """
    from shipyard.services.notifications import Notifier, SmtpSettings

    sinks = []
    for spec in settings.monitor_notify:
        sink = parse_sink(spec)
        sinks.append(type(sink)(sink.kind, sink.target, sink.events | {"alert"}, sink.spec))
    sinks += [s for s in (parse_sink(x) for x in settings.notify) if "alert" in s.events]
    if not sinks:
        return []
    notifier = Notifier(
        sinks, smtp=SmtpSettings.from_settings(settings), timeout=settings.notify_timeout
    )
    event = NotificationEvent(
        kind="alert",
        pipeline=run.model_ref,
        run_id=run.id,
        status=run.status,
        task_key=None,
        message="; ".join(a.message for a in run.alerts),
        at=run.created_at,
    )
    notifier.send(event)
    notifier.flush(timeout)
    return [str(d) for d in notifier.failures]


def model_reference(result: Any) -> str | None:
    """The model version a pipeline's result names: ``"wine@4"``, a version, or a mapping.

    A mapping names it under ``model_version`` or ``model``; an object by its ``ref``.
    """
    if isinstance(result, dict):
        result = result.get("model_version", result.get("model"))
    ref = getattr(result, "ref", result)
    if isinstance(ref, str) and "@" in ref:
        return ref
    return None


def retrain_loop(
    project: Any, settings: Settings, run: MonitorRun, window: Any, label: str
) -> dict[str, Any]:
    """Window -> dataset version -> retraining pipeline -> model version -> request.

    Never raises for a failing step: what happened is returned, the error included.

    Args:
        project: the project's services.
        settings: ``[monitoring]`` names the pipeline, parameter, dataset and target.
        run: the stored monitor run that alerted.
        window: the window's feature, prediction and label columns: a table, or a Parquet
            file (streamed, for windows of any size).
        label: the training data's label column name (the window's labels are renamed to it).

    Returns:
        ``dataset``, ``pipeline_run``, ``pipeline_status``, ``model_version``,
        ``promotion_request``, ``error`` (the keys reached).
    """
    outcome: dict[str, Any] = {}
    try:
        name = settings.retrain_dataset or f"{run.name}-monitored"
        description = f"Window of {run.model_ref} that raised alerts in monitor run {run.id}."
        if isinstance(window, Path):  # a Parquet file of any size: trimmed by DuckDB, streamed
            with tempfile.TemporaryDirectory(prefix="retrain-", dir=window.parent) as tmp:
                data = _without_predictions(window, Path(tmp) / f"{name}.parquet")
                added = project.datasets.add(name, data, description=description)
        else:
            drop = [c for c in window.column_names if _is_prediction(c)]
            added = project.datasets.add(name, window.drop_columns(drop), description=description)
        dataset = added.version.ref
        outcome["dataset"] = dataset
        project.monitoring.link_dataset(run, dataset)
        target = str(settings.retrain_pipeline)
        pipeline_run = project.pipelines.run(target, {settings.retrain_param: dataset})
        outcome["pipeline_run"] = pipeline_run.id
        outcome["pipeline_status"] = pipeline_run.status
        if pipeline_run.status != "succeeded":
            outcome["error"] = f"the retraining pipeline {target} ended {pipeline_run.status}"
            return outcome
        ref = model_reference(project.pipelines.result(pipeline_run.id))
        if ref is None:
            outcome["error"] = (
                f"the retraining pipeline {target} returned no model version: return "
                "'name@N', a ModelVersion or {'model_version': …}"
            )
            return outcome
        version = project.registry.resolve(ref)
        outcome["model_version"] = version.ref
        if settings.promote_to:
            reasons = ", ".join(a.rule for a in run.alerts)
            request = project.registry.request(
                version.ref,
                settings.promote_to,
                f"retrained on {dataset} after monitor run {run.id} alerted ({reasons})",
            )
            outcome["promotion_request"] = request.id
            outcome["promote_to"] = settings.promote_to
    except ShipyardError as exc:
        log.warning("the retraining loop of monitor run %s stopped: %s", run.id, exc)
        outcome["error"] = str(exc)
    return outcome


def _is_prediction(column: str) -> bool:
    return column == "prediction" or column.startswith("probability_")


def _without_predictions(window: Path, dest: Path) -> Path:
    """Copy a window file without the model's outputs: what a training set holds."""
    import duckdb
    import pyarrow.parquet as pq

    from shipyard.services.sql_quoting import sql_name, sql_text

    names = [n for n in pq.read_schema(window).names if not _is_prediction(n)]
    listed = ", ".join(sql_name(n) for n in names)
    con = duckdb.connect(config={"memory_limit": "1GB", "preserve_insertion_order": False})
    try:
        con.execute(
            f"COPY (SELECT {listed} FROM read_parquet({sql_text(str(window))})) "
            f"TO {sql_text(str(dest))} "
            "(FORMAT parquet, COMPRESSION zstd)"
        )
    finally:
        con.close()
    return dest
