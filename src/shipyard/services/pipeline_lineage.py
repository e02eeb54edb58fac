"""Lineage from pipeline runs to the runs, dataset versions and model versions made in them.

The executor sets ``CURRENT_PIPELINE_RUN`` while a task runs (in a thread, a task process
or a Ray worker). A listener on the metadata store's engine (and one on the store, for the
rows it writes as plain driver SQL) sees each insert of a run, dataset version or model
version and, when it happens inside a pipeline run's task, adds the edge ``pipeline_run
-created-> record`` in the same transaction. The services that create those records need
not know about pipelines.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, Engine, event
from sqlalchemy.sql.dml import Insert

from shipyard.domain.ids import new_id, utcnow
from shipyard.domain.pipelines import CURRENT_PIPELINE_RUN
from shipyard.stores.metadata import SqlMetadataStore
from shipyard.stores.metadata.schema import lineage_edges

__all__ = ["install_lineage_hook"]

_KINDS = {"runs": "run", "dataset_versions": "dataset_version", "model_versions": "model_version"}
_hooked: weakref.WeakSet[Engine] = weakref.WeakSet()


def install_lineage_hook(metadata: SqlMetadataStore, actor: str) -> None:
    """Link records created inside pipeline tasks to their pipeline run (once per engine)."""
    engine = metadata.engine
    if engine in _hooked:
        return
    _hooked.add(engine)

    def after_execute(
        conn: Connection,
        statement: Any,
        multiparams: Any,
        params: Any,
        options: Any,
        result: Any,
    ) -> None:
        if CURRENT_PIPELINE_RUN.get() is None or not isinstance(statement, Insert):
            return
        if statement.table.name not in _KINDS:
            return
        rows = [statement.compile().params]
        if isinstance(multiparams, list) and multiparams and isinstance(multiparams[0], dict):
            rows = [{**rows[0], **row} for row in multiparams]
        elif isinstance(params, dict) and params:
            # One row given to execute() (``conn.execute(table.insert(), row)``) comes as
            # ``params``, not ``multiparams``.
            rows = [{**rows[0], **params}]
        _link(metadata, actor, conn, statement.table.name, rows)

    def after_insert_row(conn: Connection, table: str, row: Mapping[str, Any]) -> None:
        # rows written as plain driver SQL (``insert_row``: the registry's model versions)
        if CURRENT_PIPELINE_RUN.get() is not None and table in _KINDS:
            _link(metadata, actor, conn, table, [row])

    event.listen(engine, "after_execute", after_execute)
    metadata.add_row_listener(after_insert_row)


def _link(
    metadata: SqlMetadataStore,
    actor: str,
    conn: Connection,
    table: str,
    rows: list[Mapping[str, Any]],
) -> None:
    """Edges from the current pipeline run to the records these rows of ``table`` create."""
    run_id, kind = CURRENT_PIPELINE_RUN.get(), _KINDS[table]
    edges = []
    for row in rows:
        if kind == "run":
            target = row.get("id")
        elif row.get("name") is not None and row.get("version") is not None:
            target = f"{row['name']}@{row['version']}"
        else:
            target = None  # never an edge to "None@None"
        if not target:
            continue
        edges.append(
            {
                "id": new_id(),
                "from_kind": "pipeline_run",
                "from_id": run_id,
                "to_kind": kind,
                "to_id": target,
                "relation": "created",
                "created_at": utcnow(),
                "created_by": actor,
            }
        )
    if edges:
        metadata.insert_ignore(conn, lineage_edges, edges)
