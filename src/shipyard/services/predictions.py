"""The prediction log read back: rows in a time window, with ground-truth labels joined.

Batch files are found through the ``prediction_batches`` index (model name and time
range), copied into a local cache verified against their digests, and read together by
DuckDB (columns matched by name, so batches with different inputs read as one table).
Labels given as feedback are joined by request id as the ``label`` column.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, exists, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from shipyard.domain.deployments import Deployment
from shipyard.domain.ids import as_utc, new_id, utcnow
from shipyard.domain.predictions import LABEL
from shipyard.domain.references import validate_name
from shipyard.errors import InvalidArgumentError, NotFoundError, SourceError
from shipyard.services.prediction_log import PredictionLog, StoredBatches, batch_types
from shipyard.services.prediction_window import LogWindow
from shipyard.stores.artifacts.content import ContentStore, hash_file
from shipyard.stores.metadata import SqlMetadataStore
from shipyard.stores.metadata.schema import (
    prediction_batches,
    prediction_feedback,
    registered_models,
)

__all__ = ["PredictionLog", "PredictionService"]

LABEL_LEAD = timedelta(days=1)  # how long before `since` a label of a row in it may arrive
_MAX_REQUEST_ID = 64
_UPSERT_CHUNK = 5_000


class PredictionService:
    """Reads the prediction log and stores feedback labels.

    Args:
        metadata: the metadata store (the batch index and the labels).
        content: the content store (the batch files).
        cache: a local folder for verified copies of batch files.
    """

    def __init__(self, metadata: SqlMetadataStore, content: ContentStore, *, cache: Path) -> None:
        self._metadata = metadata
        self._content = content
        self._cache = cache

    def log(self, *, deployment_id: str, name: str, **options: Any) -> PredictionLog:
        """A new writer for one deployment's predictions (options as ``PredictionLog``)."""
        return PredictionLog(
            StoredBatches(self._metadata, self._content),
            deployment_id=deployment_id,
            name=name,
            **options,
        )

    def accept_batch(self, deployment: Deployment, data: bytes) -> int:
        """Store a batch file a remote serving process sent for ``deployment``; its rows.

        Nothing the sender says is taken on trust: the file must be Parquet with the log's
        columns and types, every row of this deployment; the rows and times recorded are
        read from it, the model name from the deployment.

        Raises:
            InvalidArgumentError: when the file is not such a batch (nothing is stored).
        """
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(pa.BufferReader(data))
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise InvalidArgumentError(f"the batch is not a readable Parquet file: {exc}") from None
        for column, kind in batch_types().items():
            field = table.schema.field(column) if column in table.schema.names else None
            if field is None or not field.type.equals(kind):
                raise InvalidArgumentError(
                    f"the batch needs column {column!r} of type {kind}, "
                    f"found {field.type if field is not None else 'none'}"
                )
        if table.num_rows == 0:
            raise InvalidArgumentError("the batch holds no rows")
        if pc.any(pc.not_equal(table["deployment_id"], deployment.id)).as_py() or (
            table["deployment_id"].null_count
        ):
            raise InvalidArgumentError(
                f"every row of the batch must be of deployment {deployment.id}"
            )
        times = table["at"]
        if times.null_count:
            raise InvalidArgumentError("every row of the batch needs its time ('at')")
        bounds = pc.min_max(times).as_py()
        StoredBatches(self._metadata, self._content).store_batch(
            deployment_id=deployment.id,
            name=deployment.name,
            data=data,
            rows=table.num_rows,
            first_at=bounds["min"],
            last_at=bounds["max"],
        )
        return int(table.num_rows)

    # -- reading ------------------------------------------------------------------------------

    def read(
        self,
        name: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        deployment_id: str | None = None,
    ) -> Any:
        """The logged rows of a model, oldest first, as a ``pyarrow.Table``.

        Example:
            >>> day_ago = datetime.now(UTC) - timedelta(days=1)
            >>> sy.predictions.read("churn", since=day_ago)  # doctest: +SKIP

        Args:
            name: the model's name.
            since: only rows at or after this time (naive times are UTC).
            until: only rows before this time.
            deployment_id: only rows of this deployment.

        Returns:
            Columns ``request_id, row, at, deployment_id, version, latency_ms``, the input
            columns (null where a batch lacked one), ``prediction`` (and any probability
            columns), and ``label`` (null where no feedback was given).

        Raises:
            InvalidArgumentError: for a bad name or ``since`` later than ``until``.
            NotFoundError: if no model and no logged prediction has this name.
            CorruptBlobError: naming the digest of a batch file that no longer matches it.
        """
        with self.window(name, since=since, until=until, deployment_id=deployment_id) as rows:
            return rows.to_arrow()

    def window(
        self,
        name: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        deployment_id: str | None = None,
    ) -> LogWindow:
        """A model's logged rows in a window, labels joined, to query without loading them.

        Use it as a context manager: ``with sy.predictions.window("churn", since=t) as w:``
        then ``w.export(path, columns)``, ``w.operations(...)`` or ``w.to_arrow()``.

        Raises:
            InvalidArgumentError: for a bad name or ``since`` later than ``until``.
            NotFoundError: if no model and no logged prediction has this name.
            CorruptBlobError: naming the digest of a batch file that no longer matches it.
        """
        since, until = _window(since, until)
        digests = self._batch_digests(name, since, until, deployment_id)
        files = [self._local(digest) for digest in digests]
        with self._metadata.read() as conn:
            labels = _labels_table(conn, name, since)
        return LogWindow(files, labels, since, until, self._cache / "spill")

    def sql(
        self,
        name: str,
        query: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Any:
        """Run a DuckDB query over a model's log, seen as the table ``predictions``.

        The query runs with file and network access switched off: it sees only the log.

        Example:
            >>> query = "select version, avg(latency_ms) from predictions group by 1"
            >>> sy.predictions.sql("churn", query)  # doctest: +SKIP

        Raises:
            InvalidArgumentError: for a query DuckDB refuses, with its message.
        """
        import duckdb

        table = self.read(name, since=since, until=until)
        con = duckdb.connect()
        try:
            con.register("predictions", table)
            con.execute("SET enable_external_access = false")
            con.execute("SET lock_configuration = true")
            try:
                relation = con.sql(query)
                if relation is None:
                    raise InvalidArgumentError("the query returned no table: write a SELECT")
                return relation.to_arrow_table()
            except duckdb.Error as exc:
                message = " ".join(str(exc).split())  # DuckDB's hints span lines
                raise InvalidArgumentError(f"query failed: {message}") from None
        finally:
            con.close()

    def _batch_digests(
        self, name: str, since: datetime | None, until: datetime | None, deployment_id: str | None
    ) -> list[str]:
        validate_name(name, what="model name")
        b = prediction_batches.c
        query = select(b.digest).where(b.name == name)
        if since is not None:
            query = query.where(b.last_at >= since)
        if until is not None:
            query = query.where(b.first_at < until)
        if deployment_id is not None:
            query = query.where(b.deployment_id == deployment_id)
        with self._metadata.read() as conn:
            digests = list(dict.fromkeys(conn.execute(query.order_by(b.first_at, b.id)).scalars()))
            if not digests:
                _require_model(conn, name)
        return digests

    def _local(self, digest: str) -> Path:
        """A verified local copy of a batch file, copied on first use.

        A cached copy is re-hashed on every read (BLAKE3 runs at GB/s, so this costs
        milliseconds); one that no longer matches is replaced from the store.
        """
        path = self._cache / digest[7:9] / f"{digest[7:]}.parquet"
        if path.exists() and hash_file(path)[0] == digest:
            return path
        # a unique temporary name: readers in other processes may copy the same file
        staged = path.with_name(f".{new_id()}.part")
        try:
            self._content.export(digest, staged)  # verified before it appears
            staged.replace(path)
        finally:
            staged.unlink(missing_ok=True)
        return path

    # -- feedback -----------------------------------------------------------------------------

    def feedback(
        self, name: str, labels: Mapping[str, Any], *, deployment_id: str | None = None
    ) -> int:
        """Store ground-truth labels by request id; a label given again replaces the old one.

        Labels may arrive before their predictions are written: they are stored anyway and
        joined once the rows are there.

        Args:
            name: the model's name.
            labels: request id to label (any JSON value but null).
            deployment_id: the deployment that answered, when known.

        Returns:
            How many labels were stored.

        Raises:
            NotFoundError: if no model and no logged prediction has this name.
            InvalidArgumentError: for an empty or too long request id or a null label;
                nothing is stored then.
        """
        validate_name(name, what="model name")
        now = utcnow()
        rows = []
        for request_id, label in labels.items():
            if not isinstance(request_id, str) or not request_id.strip():
                raise InvalidArgumentError(f"request id {request_id!r} is not a non-empty string")
            if len(request_id) > _MAX_REQUEST_ID:
                raise InvalidArgumentError(
                    f"request id {request_id[:20]!r}… is longer than {_MAX_REQUEST_ID} characters"
                )
            rows.append(
                {
                    "request_id": request_id,
                    "name": name,
                    "deployment_id": deployment_id,
                    "label": _label_json(request_id, label),
                    "received_at": now,
                }
            )
        with self._metadata.write() as conn:
            _require_model(conn, name)
            insert = pg_insert if self._metadata.dialect == "postgresql" else sqlite_insert
            statement = insert(prediction_feedback)
            statement = statement.on_conflict_do_update(
                index_elements=["request_id"],
                set_={
                    c: statement.excluded[c]
                    for c in ("name", "deployment_id", "label", "received_at")
                },
            )
            for start in range(0, len(rows), _UPSERT_CHUNK):
                conn.execute(statement, rows[start : start + _UPSERT_CHUNK])
        return len(rows)

    def feedback_file(
        self,
        name: str,
        path: Path | str,
        *,
        id_column: str = "request_id",
        label_column: str = "label",
        deployment_id: str | None = None,
    ) -> int:
        """Store the labels of a CSV file (a later row for the same request id wins).

        Raises:
            SourceError: if the file is missing or is not a readable CSV.
            InvalidArgumentError: if a column is missing, or a row has no id or no label;
                nothing is stored then.
            NotFoundError: if no model and no logged prediction has this name.
        """
        import pyarrow as pa
        import pyarrow.csv as csv

        validate_name(name, what="model name")
        self._require_model(name)
        path = Path(path)
        if not path.is_file():
            raise SourceError(str(path), "no such file")
        try:
            table = csv.read_csv(
                path, convert_options=csv.ConvertOptions(column_types={id_column: pa.string()})
            )
            columns = table.column_names
        except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeDecodeError) as exc:
            raise SourceError(str(path), f"not a readable CSV file ({exc})") from None
        missing = [c for c in (id_column, label_column) if c not in columns]
        if missing:
            raise InvalidArgumentError(
                f"{path} has no column {', '.join(map(repr, missing))}; its columns are "
                f"{', '.join(columns)} (choose with --id-column / --label-column)"
            )
        ids = table.column(id_column).to_pylist()
        values = table.column(label_column).to_pylist()
        labels: dict[str, Any] = {}
        for line, (request_id, label) in enumerate(zip(ids, values, strict=True), start=2):
            if request_id is None or not str(request_id).strip():
                raise InvalidArgumentError(f"{path} line {line}: the {id_column} is empty")
            if label is None:
                raise InvalidArgumentError(f"{path} line {line}: the {label_column} is empty")
            labels.pop(request_id, None)  # the last row for an id wins
            labels[request_id] = label
        return self.feedback(name, labels, deployment_id=deployment_id)

    def _require_model(self, name: str) -> None:
        with self._metadata.read() as conn:
            _require_model(conn, name)


def _window(
    since: datetime | None, until: datetime | None
) -> tuple[datetime | None, datetime | None]:
    since = None if since is None else as_utc(since)
    until = None if until is None else as_utc(until)
    if since is not None and until is not None and since > until:
        raise InvalidArgumentError(
            f"since ({since.isoformat()}) is later than until ({until.isoformat()})"
        )
    return since, until


def _require_model(conn: Connection, name: str) -> None:
    known = conn.execute(
        select(
            exists().where(registered_models.c.name == name)
            | exists().where(prediction_batches.c.name == name)
        )
    ).scalar()
    if not known:
        raise NotFoundError(
            f"model {name!r} does not exist and has no logged predictions; "
            "`shipyard models list` shows the models"
        )


def _label_json(request_id: str, label: Any) -> str:
    if label is None or (isinstance(label, float) and not math.isfinite(label)):
        raise InvalidArgumentError(f"request {request_id}: the label is {label!r}; give a value")
    if hasattr(label, "item"):  # a numpy scalar
        label = label.item()
    try:
        return json.dumps(label, allow_nan=False)
    except (TypeError, ValueError):
        raise InvalidArgumentError(
            f"request {request_id}: the label {label!r} is not a JSON value"
        ) from None


def _labels_table(conn: Connection, name: str, since: datetime | None) -> Any:
    """The labels of a model as a ``pyarrow.Table`` (request_id, label), typed by inference.

    With ``since``, labels received more than ``LABEL_LEAD`` before it are left out: a label
    comes after its prediction (or at most a flush earlier), so they belong to older rows.

    Rows come straight from the driver and the JSON texts are parsed in one go: a hundred
    thousand labels take tens of milliseconds, not the second of row-by-row decoding.
    """
    import pyarrow as pa

    quote = conn.dialect.identifier_preparer.quote
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    table = quote(prediction_feedback.name)
    sql = f"SELECT request_id, label FROM {table} WHERE name = {mark}"
    params: tuple[Any, ...] = (name,)
    if since is not None:
        sql += f" AND received_at >= {mark}"
        earliest = since - LABEL_LEAD
        # bound the way the column stores it: UTC text on SQLite, timestamptz on PostgreSQL
        params += (earliest.strftime("%Y-%m-%d %H:%M:%S.%f") if mark == "?" else earliest,)
    cursor = conn.connection.cursor()  # the driver's own: no per-row SQLAlchemy work
    try:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    finally:
        cursor.close()
    ids = pa.array([r[0] for r in rows], pa.string())
    if not rows:
        return pa.table({"request_id": ids, LABEL: pa.array([], pa.null())})
    texts = [r[1] for r in rows]
    values = json.loads("[" + ",".join(texts) + "]")  # one parse, not one per label
    try:
        column = pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # mixed kinds of labels: keep them as text
        column = pa.array(texts, pa.string())
    return pa.table({"request_id": ids, LABEL: column})
