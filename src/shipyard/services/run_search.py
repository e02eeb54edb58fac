"""Search runs: a filter and an ordering over attributes, params, tags and latest metrics.

The filter language (``shipyard.domain.filters``) becomes one SQL query: each referenced
metric, param or tag is one outer join on its (run, key) primary key, so a search reads only
the rows it needs whatever the size of the store. Paging is by keyset (the sort values of the
last row), never by OFFSET. The page's runs, params and tags, and latest metrics then load in
three more statements, whatever the page size.
"""

from __future__ import annotations

import base64
import functools
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Float,
    Select,
    and_,
    case,
    cast,
    false,
    func,
    literal,
    not_,
    or_,
    select,
    true,
)
from sqlalchemy.sql.selectable import FromClause

from shipyard.domain.filters import (
    And,
    Comparison,
    Expr,
    Field,
    Or,
    OrderBy,
    parse_filter,
    parse_order_by,
)
from shipyard.domain.ids import as_utc
from shipyard.domain.runs import MetricSummary, Run
from shipyard.errors import InvalidArgumentError
from shipyard.services.gc_pause import gc_paused
from shipyard.stores.metadata import SqlMetadataStore
from shipyard.stores.metadata.schema import experiments, metric_latest, run_params, run_tags, runs

__all__ = ["MAX_RESULTS", "RunPage", "RunQuery", "load_runs", "search_runs"]

MAX_RESULTS = 100_000
_NUMBER = r"^\s*[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?\s*$"


@dataclass(frozen=True, slots=True)
class RunQuery:
    """A parsed search: which experiments, which runs, in which order, how many."""

    experiments: tuple[str, ...]
    filter: Expr | None
    order_by: tuple[OrderBy, ...]
    max_results: int
    page_token: str | None = None

    @classmethod
    def build(
        cls,
        experiments: str | Sequence[str] | None,
        filter: str | None,
        order_by: Sequence[str] | str | None,
        max_results: int,
        page_token: str | None,
    ) -> RunQuery:
        """Parse and check the arguments of a search.

        Raises:
            InvalidArgumentError: for a malformed filter or ordering, or a bad limit.
        """
        if isinstance(max_results, bool) or not isinstance(max_results, int):
            raise InvalidArgumentError("max_results must be an integer")
        if not 1 <= max_results <= MAX_RESULTS:
            raise InvalidArgumentError(f"max_results must be between 1 and {MAX_RESULTS:,}")
        names = (experiments,) if isinstance(experiments, str) else tuple(experiments or ())
        return cls(
            names, parse_filter(filter or ""), parse_order_by(order_by), max_results, page_token
        )


class _Joins:
    """One outer join per metric, param or tag the query names."""

    def __init__(self, dialect: str) -> None:
        self.dialect = dialect
        self.sources: list[tuple[FromClause, ColumnElement[bool]]] = []
        self._columns: dict[Field, ColumnElement[Any]] = {}
        self._present: dict[Field, ColumnElement[bool]] = {}

    def column(self, field: Field) -> ColumnElement[Any]:
        if field.kind == "attribute":
            return self._attribute(field.key)
        if field not in self._columns:
            alias = _alias(field.kind, len(self.sources))
            on = and_(alias.c.run_id == runs.c.id, alias.c.key == field.key)
            self.sources.append((alias, on))
            self._columns[field] = alias.c.value
            self._present[field] = alias.c.run_id.is_not(None)
        return self._columns[field]

    def present(self, field: Field) -> ColumnElement[bool]:
        if field.kind == "attribute":
            return true()
        self.column(field)
        return self._present[field]

    def _attribute(self, name: str) -> ColumnElement[Any]:
        columns: dict[str, ColumnElement[Any]] = {
            "run_id": runs.c.id,
            "name": runs.c.name,
            "status": runs.c.status,
            "experiment": experiments.c.name,
            "user": runs.c.user,
            "start_time": runs.c.start_time,
            "end_time": runs.c.end_time,
        }
        if name == "duration":
            if self.dialect == "sqlite":
                seconds = (
                    func.julianday(runs.c.end_time) - func.julianday(runs.c.start_time)
                ) * 86400.0
            else:
                seconds = func.extract("epoch", runs.c.end_time - runs.c.start_time)
            return seconds
        return columns[name]

    def numeric(self, column: ColumnElement[Any]) -> ColumnElement[Any]:
        """A text column read as a number; text that is not a number reads as NULL."""
        return case((column.regexp_match(_NUMBER), cast(column, Float)), else_=None)


@functools.lru_cache(maxsize=1024)
def _alias(kind: str, index: int) -> FromClause:
    """The table of a metric, param or tag under the name of the ``index``-th join.

    Made once and shared by every search: an alias builds its column collection when first
    used, which cost a third of building a search statement.
    """
    table = {"metric": metric_latest, "param": run_params, "tag": run_tags}[kind]
    alias = table.alias(f"j{index}")
    _ = alias.c  # its columns now, while no other thread can see it
    return alias


def _condition(expr: Expr, joins: _Joins) -> ColumnElement[bool]:
    if isinstance(expr, And):
        return and_(*(_condition(e, joins) for e in expr.items))
    if isinstance(expr, Or):
        return or_(*(_condition(e, joins) for e in expr.items))
    return _comparison(expr, joins)


def _comparison(c: Comparison, joins: _Joins) -> ColumnElement[bool]:
    field, op, value = c.field, c.op, c.value
    if op == "is null":
        return (
            not_(joins.present(field))
            if field.kind != "attribute"
            else joins.column(field).is_(None)
        )
    if op == "is not null":
        return (
            joins.present(field) if field.kind != "attribute" else joins.column(field).is_not(None)
        )
    column = joins.column(field)
    if field.kind == "metric" or (field.kind == "attribute" and field.key == "duration"):
        _require_numbers(c)
    elif field.kind in ("param", "tag") and op in ("<", "<=", ">", ">=") and _is_number(value):
        column = joins.numeric(column)
    elif field.kind in ("param", "tag") or (field.kind == "attribute" and not _is_time(field)):
        value = _as_text(value)
    if _is_time(field):
        value = _as_time(value, c)
    if op in ("in", "not in"):
        items = list(value) if isinstance(value, tuple) else [value]
        test = column.in_(items)
        return not_(test) if op == "not in" else and_(joins.present(field), test)
    if op in ("like", "ilike"):
        if not isinstance(value, str):
            raise InvalidArgumentError(f"{op} compares with a text pattern, not {value!r}")
        if op == "ilike":
            return func.lower(column).like(func.lower(literal(value)))
        return column.like(value)
    return {
        "=": lambda: column == value,
        "!=": lambda: column != value,
        "<": lambda: column < value,
        "<=": lambda: column <= value,
        ">": lambda: column > value,
        ">=": lambda: column >= value,
    }[op]()


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_time(field: Field) -> bool:
    return field.kind == "attribute" and field.key in ("start_time", "end_time")


def _as_time(value: object, c: Comparison) -> Any:
    if isinstance(value, tuple):
        return tuple(_as_time(v, c) for v in value)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value + _UTC_SUFFIX)  # aware, in UTC
        except ValueError:
            pass
    raise InvalidArgumentError(f"{c.field.key} compares with an ISO-8601 time, not {value!r}")


def _as_text(value: object) -> Any:
    if isinstance(value, tuple):
        return tuple(_as_text(v) for v in value)
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, (int, float)):
        return str(value)
    return value


def _require_numbers(c: Comparison) -> None:
    values = c.value if isinstance(c.value, tuple) else (c.value,)
    if c.op in ("like", "ilike") or not all(_is_number(v) for v in values):
        raise InvalidArgumentError(
            f"{c.field} is a number: compare it with numbers, not {c.value!r}"
        )


class RunPage(list[Run]):
    """A page of search results: a list of runs, the token of the next page, table views."""

    def __init__(self, found: Sequence[Run], next_page_token: str | None) -> None:
        super().__init__(found)
        self.next_page_token = next_page_token

    def to_arrow(self) -> Any:
        """One row a run: attributes, then ``params.*``, ``metrics.*`` and ``tags.*`` columns."""
        with gc_paused():
            return self._table()

    def _table(self) -> Any:
        import pyarrow as pa

        params = sorted({k for r in self for k in r.params})
        metrics = sorted({k for r in self for k in r.metrics})
        tags = sorted({k for r in self for k in r.tags})
        columns: dict[str, Any] = {
            "run_id": [r.id for r in self],
            "experiment": [r.experiment for r in self],
            "name": [r.name for r in self],
            "status": [r.status for r in self],
            "user": [r.user for r in self],
            "start_time": pa.array([r.start_time for r in self], pa.timestamp("us", "UTC")),
            "end_time": pa.array([r.end_time for r in self], pa.timestamp("us", "UTC")),
        }
        for key in metrics:
            columns[f"metrics.{key}"] = pa.array(
                [r.metrics[key].value if key in r.metrics else None for r in self], pa.float64()
            )
        for key in params:
            columns[f"params.{key}"] = pa.array([r.params.get(key) for r in self], pa.string())
        for key in tags:
            columns[f"tags.{key}"] = pa.array([r.tags.get(key) for r in self], pa.string())
        return pa.table(columns)

    def to_pandas(self) -> Any:
        """The page as a pandas DataFrame (needs pandas)."""
        with gc_paused():
            return self._table().to_pandas()


def search_runs(metadata: SqlMetadataStore, query: RunQuery) -> tuple[list[Run], str | None]:
    """The matching runs in order (params, tags, latest metrics) and the next page's token.

    The token is None on the last page. Four statements whatever the page size, in one
    read transaction: the search, which sorts only ids and sort keys (never the wide run
    rows), then the page's runs, their params and tags (one ``UNION ALL``), their metrics.

    Raises:
        InvalidArgumentError: for a value the filter cannot compare, or a bad page token.
    """
    statement = _statement(metadata.dialect, query)
    with gc_paused(), metadata.read() as conn:
        rows = conn.execute(statement).all()
        more = len(rows) > query.max_results
        rows = rows[: query.max_results]
        found = load_runs(conn, [r[0] for r in rows], metadata)
    token = _encode(list(rows[-1][1:])) if more and rows else None
    return found, token


def _statement(dialect: str, query: RunQuery) -> Select[Any]:
    """The search's SQL expression: ``runs.id`` then the sort keys, one row a run.

    Memoized by the query's exact spelling: a search asked again, such as a page a dashboard
    polls, skips building the expression and SQLAlchemy's cache key, most of the Python work
    of a search (0.5-0.8 ms). Only the statement is kept; its rows are read afresh each
    time. The key is the query's ``repr``, never its equality: ``1``, ``1.0`` and ``True``
    are equal in Python, yet ``params.p = 1`` and ``params.p = 1.0`` compare other text.
    """
    return _built(dialect, repr(query), query)


@functools.lru_cache(maxsize=64)
def _built(dialect: str, spelling: str, query: RunQuery) -> Select[Any]:
    joins = _Joins(dialect)
    where: list[ColumnElement[bool]] = []
    if query.experiments:
        where.append(experiments.c.name.in_(list(query.experiments)))
    if query.filter is not None:
        where.append(_condition(query.filter, joins))
    keys: list[tuple[ColumnElement[Any], bool]] = []  # (sort expression, descending)
    for item in query.order_by:
        column = joins.column(item.field)
        keys.append((case((column.is_(None), 1), else_=0), False))  # NULLs always last
        keys.append((column, item.descending))
    keys += [(runs.c.start_time, True), (runs.c.id, True)]
    if query.page_token:
        where.append(_after(keys, _decode(query.page_token, len(keys))))
    source: FromClause = runs.join(experiments, experiments.c.id == runs.c.experiment_id)
    for alias, on in joins.sources:
        source = source.outerjoin(alias, on)
    return (
        select(runs.c.id, *(k.label(f"k{i}") for i, (k, _) in enumerate(keys)))
        .select_from(source)
        .where(*where)
        .order_by(*(k.desc() if desc else k.asc() for k, desc in keys))
        .limit(query.max_results + 1)
    )


_BATCH = 2000  # runs a statement of load_runs names
_PARAM, _TAG = 1, 2
_UTC_SUFFIX = "+00:00"  # SQLite holds naive UTC text; this makes fromisoformat's result aware
# load_runs's statements are plain SQL on the driver's cursor, the same on SQLite and
# PostgreSQL, built from constants and placeholders only (never from input): that skips
# building, caching and compiling an expression and wrapping each row, which cost more than
# the database's own work on a page of runs. The page's ids come first as a VALUES list
# that the tables are CROSS JOINed to: SQLite keeps a CROSS JOIN's left side outermost, so
# each id is looked up by primary key. With ``run_id IN (...)`` its planner, misled by the
# average when a few runs hold 10^4 metrics, scanned all of metric_latest (3 ms at 30k rows,
# growing with the store, against 0.1 ms).
_IDS = "WITH page(id) AS (VALUES {values}) "
_RUNS = (
    'SELECT r.id, r.name, r.parent_id, r.status, r."user", r.start_time, r.end_time, r.host,'
    " r.pid, r.environment, r.resources, e.name FROM page CROSS JOIN runs r"
    " JOIN experiments e ON e.id = r.experiment_id WHERE r.id = page.id"
)
_METRICS = (
    'SELECT m.run_id, m."key", m."value", m.is_nan, m.step, m."timestamp", m.min_value,'
    ' m.max_value, m."count" FROM page CROSS JOIN metric_latest m WHERE m.run_id = page.id'
)
# Params and tags share one statement; metrics have their own, so that no row carries the
# other kind's empty columns (a fetched value costs more than SQLite's work for it).
_TEXTS = (
    'SELECT 1, p.run_id, p."key", p."value" FROM page CROSS JOIN run_params p'
    " WHERE p.run_id = page.id"
    ' UNION ALL SELECT 2, t.run_id, t."key", t."value" FROM page CROSS JOIN run_tags t'
    " WHERE t.run_id = page.id"
)


def load_runs(conn: Connection, run_ids: list[str], metadata: SqlMetadataStore) -> list[Run]:
    """These runs, in this order, with their params, tags and latest metrics.

    Ids without a run are left out. Used by searches and by ``RunService.load``. The cyclic
    GC is paused while the rows become runs (see ``gc_pause``).
    """
    with gc_paused():
        return _load_runs(conn, run_ids, metadata)


def _load_runs(conn: Connection, run_ids: list[str], metadata: SqlMetadataStore) -> list[Run]:
    mark = "?" if metadata.dialect == "sqlite" else "%s"
    rows: dict[str, tuple[Any, ...]] = {}
    params: dict[str, dict[str, str]] = {i: {} for i in run_ids}
    tags: dict[str, dict[str, str]] = {i: {} for i in run_ids}
    metrics: dict[str, dict[str, MetricSummary]] = {i: {} for i in run_ids}
    texts = {_PARAM: params, _TAG: tags}
    nan = math.nan
    cursor = conn.connection.cursor()
    try:
        for start in range(0, len(run_ids), _BATCH):
            batch = tuple(run_ids[start : start + _BATCH])
            page = _IDS.format(values=",".join([f"({mark})"] * len(batch)))
            cursor.execute(page + _RUNS, batch)
            rows.update((row[0], row) for row in cursor.fetchall())
            cursor.execute(page + _TEXTS, batch)
            for kind, run, key, text in cursor.fetchall():
                texts[kind][run][key] = text
            cursor.execute(page + _METRICS, batch)
            for run, key, value, is_nan, step, timestamp, low, high, count in cursor.fetchall():
                # NaN is stored as NULL beside a flag: SQL cannot order it.
                metrics[run][key] = MetricSummary(
                    key, nan if is_nan else value, step, timestamp, low, high, count
                )
    finally:
        cursor.close()
    time = _time_reader(metadata)
    found = []
    for run_id in run_ids:
        row = rows.get(run_id)
        if row is None:  # as RunService.load: an id without a run is left out
            continue
        _, name, parent, status, user, start_time, end_time, host, pid, env, resources, exp = row
        found.append(
            Run(
                id=run_id,
                experiment=exp,
                name=name,
                parent_id=parent,
                status=status,
                user=user,
                start_time=time(start_time),
                end_time=time(end_time),
                host=host,
                pid=pid,
                params=params[run_id],
                tags=tags[run_id],
                metrics=metrics[run_id],
                environment=json.loads(env) if env else None,
                resources=json.loads(resources) if resources else None,
            )
        )
    return found


def _time_reader(metadata: SqlMetadataStore) -> Callable[[Any], Any]:
    """What SQLAlchemy does to a ``runs`` time the driver returns (the column type's own).

    On SQLite the driver returns SQLAlchemy's ISO text of a UTC time, read here by
    ``datetime.fromisoformat`` (C, ~20x faster than the dialect's regular expression); text
    in any other form falls back to the dialect's own reading.
    """
    dialect = metadata.engine.dialect
    process = runs.c.start_time.type.dialect_impl(dialect).result_processor(dialect, None)
    if process is None:
        return lambda value: value
    if metadata.dialect != "sqlite":
        return process
    general = process  # also for text that already names its offset

    def read(value: Any) -> Any:
        if value is None:
            return None
        try:
            return datetime.fromisoformat(value + _UTC_SUFFIX)  # aware, in UTC
        except (TypeError, ValueError):
            return general(value)

    return read


def _after(keys: list[tuple[ColumnElement[Any], bool]], last: list[Any]) -> ColumnElement[bool]:
    """Rows strictly after ``last`` in the sort order (keyset paging)."""
    condition: ColumnElement[bool] = false()
    for index in reversed(range(len(keys))):
        column, desc = keys[index]
        value = last[index]
        if value is None:  # NULL sorts as the flag before it says; nothing is after NULL here
            beyond: ColumnElement[bool] = false()
            equal: ColumnElement[bool] = column.is_(None)
        else:
            beyond = (column < value) if desc else (column > value)
            equal = column == value
        condition = or_(beyond, and_(equal, condition))
    return condition


def _encode(values: list[Any]) -> str:
    plain = [v.isoformat() if isinstance(v, datetime) else v for v in values]
    kinds = ["t" if isinstance(v, datetime) else "v" for v in values]
    return base64.urlsafe_b64encode(json.dumps([kinds, plain]).encode()).decode()


def _decode(token: str, size: int) -> list[Any]:
    try:
        kinds, plain = json.loads(base64.urlsafe_b64decode(token.encode()))
        if len(plain) != size or len(kinds) != size:
            raise ValueError("wrong size")
        return [
            as_utc(datetime.fromisoformat(v)) if k == "t" else v
            for k, v in zip(kinds, plain, strict=True)
        ]
    except (ValueError, TypeError, json.JSONDecodeError):
        raise InvalidArgumentError(
            "page_token is not one this search returned; start again without it"
        ) from None
