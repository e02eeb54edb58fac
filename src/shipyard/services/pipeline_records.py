"""Pipeline and task run rows: written in batches by a ticker, read with zombie detection.

A driver never writes a row per task state change. State changes land in a map of dirty
rows; a ticker thread writes them all in one transaction every ``TICK`` seconds, together
with the run's heartbeat, and reads the run's cancel flag in the same transaction. Logs
are stored to the artifact store by the ticker too, off the tasks' path.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import RowMapping

from shipyard.domain.ids import utcnow
from shipyard.domain.pipelines import PipelineRun, TaskRun
from shipyard.services.pipeline_book import RunBook
from shipyard.services.pipeline_caching import ResultStore
from shipyard.stores.metadata import SqlMetadataStore
from shipyard.stores.metadata.schema import pipeline_runs, task_runs

__all__ = [
    "HEARTBEAT",
    "STALE_AFTER",
    "TICK",
    "RunRecorder",
    "pipeline_run_from_row",
    "reap_zombies",
    "task_run_from_row",
]

TICK = 0.5  # seconds between batched writes (and cancel checks)
HEARTBEAT = 2.0  # seconds between heartbeats
STALE_AFTER = 30.0  # a running run without a heartbeat for this long is crashed


class RunRecorder:
    """Batches one run's task changes and writes them on a ticker thread.

    A change only marks the task dirty (a dictionary store); its row is read from the
    task when the batch is written, so a task that starts and ends within one tick costs
    one row write.

    Args:
        book: where the rows go (the metadata store, or a server).
        content: where logs go.
        run_id: the pipeline run.
        row_of: a dirty task's row (every column but the run id) and, once it ended,
            its logs.
        on_cancel: called (once) when the run's cancel flag is seen.
    """

    def __init__(
        self,
        book: RunBook,
        content: ResultStore,
        run_id: str,
        row_of: Callable[[Any], tuple[dict[str, Any], bytes | None]],
        on_cancel: Callable[[], None],
    ) -> None:
        self._book = book
        self._content = content
        self._run_id = run_id
        self._row_of = row_of
        self._on_cancel = on_cancel
        self._lock = threading.Lock()
        self._dirty: dict[str, Any] = {}
        self._log_digests: dict[str, str] = {}
        self._stop = threading.Event()
        self._write_lock = threading.Lock()
        self._beat_at = time.monotonic()
        self._cancel_seen = False
        self._thread = threading.Thread(target=self._tick, name="shipyard-ticker", daemon=True)

    def start(self) -> None:
        """Start ticking."""
        self._thread.start()

    def task_changed(self, task: Any) -> None:
        """Mark a task (anything with a ``key``) as changed."""
        with self._lock:
            self._dirty[task.key] = task

    def flush(self, run_values: Mapping[str, Any] | None = None) -> None:
        """Write changed tasks now, with ``run_values`` for the pipeline run's row."""
        with self._write_lock:
            with self._lock:
                dirty, self._dirty = self._dirty, {}
            rows = []
            try:
                for key, task in dirty.items():
                    row, logs = self._row_of(task)
                    if logs and key not in self._log_digests:
                        self._log_digests[key] = self._content.put_bytes(logs).digest
                    row["log_digest"] = self._log_digests.get(key)
                    rows.append(row)
                beat = time.monotonic() - self._beat_at >= HEARTBEAT
                cancel = self._book.write(self._run_id, rows, run_values or {}, beat=beat)
            except BaseException:
                with self._lock:  # not written: the next flush writes them again
                    self._dirty = {**dirty, **self._dirty}
                raise
            if beat or run_values:
                self._beat_at = time.monotonic()
        if cancel and not self._cancel_seen:
            self._cancel_seen = True
            self._on_cancel()

    def close(self, run_values: Mapping[str, Any]) -> None:
        """Stop ticking and write everything left with the run's final values."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self.flush(run_values)

    def _tick(self) -> None:
        while not self._stop.wait(TICK):
            try:
                self.flush()
            except Exception:  # a failed tick is retried by the next one
                continue


def pipeline_run_from_row(row: RowMapping) -> PipelineRun:
    """A ``PipelineRun`` from its row."""
    return PipelineRun(
        id=row["id"],
        pipeline=row["pipeline"],
        target=row["target"],
        status=row["status"],
        params=json.loads(row["params"]),
        executor=row["executor"],
        created_by=row["created_by"],
        host=row["host"],
        pid=row["pid"],
        created_at=row["created_at"],
        started_at=row["started_at"],
        ended_at=row["ended_at"],
        heartbeat_at=row["heartbeat_at"],
        cancel_requested=bool(row["cancel_requested"]),
        error=row["error"],
        resumed_from=row["resumed_from"],
        schedule=row["schedule"],
        result_digest=row["result_digest"],
    )


def task_run_from_row(row: RowMapping) -> TaskRun:
    """A ``TaskRun`` from its row."""
    return TaskRun(
        pipeline_run_id=row["pipeline_run_id"],
        key=row["key"],
        task=row["task"],
        status=row["status"],
        attempt=row["attempt"],
        upstream=tuple(json.loads(row["upstream"])),
        cache_key=row["cache_key"],
        result_digest=row["result_digest"],
        log_digest=row["log_digest"],
        pid=row["pid"],
        started_at=row["started_at"],
        ended_at=row["ended_at"],
        error=row["error"],
    )


def reap_zombies(metadata: SqlMetadataStore, rows: Sequence[RowMapping]) -> set[str]:
    """Mark crashed the running runs among ``rows`` whose driver is gone; their ids.

    A driver is gone when it ran on this host and its process no longer exists, or when
    its heartbeat is older than ``STALE_AFTER`` seconds.
    """
    now = utcnow()
    host = socket.gethostname()
    dead: dict[str, str] = {}
    for row in rows:
        if row["status"] not in ("running", "pending"):
            continue
        beat: datetime | None = row["heartbeat_at"] or row["created_at"]
        if row["host"] == host and row["pid"] and not _alive(row["pid"]):
            dead[row["id"]] = f"its driver (pid {row['pid']} on {host}) is gone"
        elif beat is not None and now - beat > timedelta(seconds=STALE_AFTER):
            dead[row["id"]] = f"no heartbeat from its driver since {beat.isoformat()}"
    if not dead:
        return set()
    with metadata.write() as conn:
        for run_id, reason in dead.items():
            conn.execute(
                pipeline_runs.update()
                .where(
                    pipeline_runs.c.id == run_id, pipeline_runs.c.status.in_(["running", "pending"])
                )
                .values(status="crashed", ended_at=now, error=f"crashed: {reason}")
            )
            conn.execute(
                task_runs.update()
                .where(
                    task_runs.c.pipeline_run_id == run_id,
                    task_runs.c.status.in_(["pending", "running", "retrying"]),
                )
                .values(status="crashed", ended_at=now)
            )
    return set(dead)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed child its parent has not reaped yet is a zombie: gone for us
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True
