"""Search runs: a filter and an ordering over attributes, params, tags and latest metrics.

The filter language (``shipyard.domain.filters``) becomes one SQL query: each referenced
metric, param or tag is one outer join on its (run, key) primary key, so a search reads only
the rows it needs whatever the size of the store. Paging is by keyset (the sort values of the
last row), never by OFFSET.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
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
from shipyard.domain.runs import Run
from shipyard.errors import InvalidArgumentError
from shipyard.stores.metadata import SqlMetadataStore
from shipyard.stores.metadata.schema import experiments, metric_latest, run_params, run_tags, runs

__all__ = ["MAX_RESULTS", "RunPage", "RunQuery", "search_run_ids"]

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
            table = {"metric": metric_latest, "param": run_params, "tag": run_tags}[field.kind]
            alias = table.alias(f"j{len(self.sources)}")
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
            return as_utc(datetime.fromisoformat(value))
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
        return self.to_arrow().to_pandas()


def search_run_ids(
    metadata: SqlMetadataStore, query: RunQuery, experiment_ids: Sequence[str]
) -> tuple[list[str], str | None]:
    """The ids of matching runs, in order, and a token for the next page (None at the end)."""
    joins = _Joins(metadata.dialect)
    where: list[ColumnElement[bool]] = []
    if query.experiments:
        where.append(runs.c.experiment_id.in_(list(experiment_ids)) if experiment_ids else false())
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
    statement: Select[Any] = (
        select(runs.c.id, *(k.label(f"k{i}") for i, (k, _) in enumerate(keys)))
        .select_from(source)
        .where(*where)
        .order_by(*(k.desc() if desc else k.asc() for k, desc in keys))
        .limit(query.max_results + 1)
    )
    with metadata.read() as conn:
        rows = conn.execute(statement).all()
    more = len(rows) > query.max_results
    rows = rows[: query.max_results]
    token = _encode([rows[-1][i + 1] for i in range(len(keys))]) if more and rows else None
    return [r.id for r in rows], token


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
