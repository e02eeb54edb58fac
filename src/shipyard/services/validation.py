"""Run declarative checks against a dataset version, in DuckDB, one pass per check."""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shipyard.domain.checks import Check, CheckResult, ValidationReport, parse_checks
from shipyard.domain.datasets import DatasetVersion
from shipyard.domain.ids import as_utc, utcnow
from shipyard.domain.profiles import TableProfile
from shipyard.errors import InvalidArgumentError, NotFoundError
from shipyard.services.sql_quoting import sql_name

__all__ = ["load_checks", "run_checks"]

_EXAMPLES = 5
_FLOAT_TYPES = frozenset({"halffloat", "float", "double"})  # Arrow names


def load_checks(
    source: Path | str | Mapping[str, Any] | Sequence[Mapping[str, Any]],
) -> tuple[Check, ...]:
    """Checks from a TOML file, or from Python (a list of dicts or ``{"checks": [...]}``).

    Raises:
        NotFoundError: if the file does not exist.
        InvalidArgumentError: if the file is not valid TOML or a check is malformed.
    """
    if isinstance(source, (str, Path)):
        path = Path(source)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise NotFoundError(f"checks file {path} does not exist") from None
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise InvalidArgumentError(f"checks file {path} is not valid TOML: {exc}") from None
        return parse_checks(data)
    return parse_checks(source)


def run_checks(
    version: DatasetVersion,
    files: Sequence[Path],
    profile: TableProfile | None,
    checks: Sequence[Check],
    *,
    now: datetime | None = None,
) -> ValidationReport:
    """Evaluate every check on a table version whose files are local.

    Args:
        version: the version (its schema, rows and card are used without a scan).
        files: the version's files, materialised.
        profile: its stored profile.
        checks: what to evaluate.
        now: the time freshness is measured against (default: now).

    Raises:
        InvalidArgumentError: if the version is not a table.
    """
    if version.format is None or profile is None:
        raise InvalidArgumentError(f"{version.ref} holds files, not a table: checks need a table")
    from shipyard.services.tables import open_table

    moment = now or utcnow()
    columns = {c.name: c for c in profile.schema}
    results = []
    with open_table(list(files), version.format) as (con, source):

        def query(sql: str) -> list[tuple[Any, ...]]:
            # Through Arrow, as profiling does: DuckDB's own TIMESTAMPTZ conversion needs pytz.
            table = con.sql(sql).to_arrow_table()
            return list(zip(*(column.to_pylist() for column in table.columns), strict=True))

        for check in checks:
            missing = _missing_columns(check, columns)
            if missing:
                results.append(
                    CheckResult(
                        check, False, None, None, f"column(s) {', '.join(missing)} not in the table"
                    )
                )
                continue
            run = _RUNNERS[check.kind]
            results.append(run(check, version, profile, source, query, moment))
    return ValidationReport(version.ref, tuple(results))


Query = Callable[[str], list[tuple[Any, ...]]]


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (int, float)):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


def _missing_columns(check: Check, columns: Mapping[str, Any]) -> list[str]:
    names = list(check.params.get("columns", [])) if check.kind == "unique" else []
    if check.column is not None:
        names.append(check.column)
    return [n for n in names if n not in columns]


def _failing(
    check: Check, source: str, query: Query, condition: str, expected: Any, what: str
) -> CheckResult:
    column = sql_name(str(check.column))
    bad = query(f"SELECT count(*) FROM {source} WHERE {condition}")[0][0]
    examples: tuple[Any, ...] = ()
    if bad:
        rows = query(f"SELECT DISTINCT {column} FROM {source} WHERE {condition} LIMIT {_EXAMPLES}")
        examples = tuple(r[0] for r in rows)
    message = "ok" if not bad else f"{bad:,} row(s) {what}"
    return CheckResult(check, bad == 0, bad, expected, message, examples)


def _not_null(
    check: Check,
    _v: DatasetVersion,
    profile: TableProfile,
    source: str,
    query: Query,
    _now: datetime,
) -> CheckResult:
    nulls = profile.column(str(check.column)).nulls
    message = "ok" if not nulls else f"{nulls:,} null value(s)"
    return CheckResult(check, nulls == 0, nulls, 0, message)


def _unique(
    check: Check, _v: DatasetVersion, _p: TableProfile, source: str, query: Query, _now: datetime
) -> CheckResult:
    cols = ", ".join(sql_name(c) for c in check.params["columns"])
    dupes = query(
        f"SELECT count(*), coalesce(sum(n), 0) FROM (SELECT count(*) AS n FROM {source} "
        f"GROUP BY {cols} HAVING count(*) > 1)"
    )[0]
    examples: tuple[Any, ...] = ()
    if dupes[0]:
        rows = query(
            f"SELECT {cols}, count(*) FROM {source} GROUP BY {cols} HAVING count(*) > 1 "
            f"ORDER BY count(*) DESC LIMIT {_EXAMPLES}"
        )
        examples = tuple(r[:-1] if len(r) > 2 else r[0] for r in rows)
    message = "ok" if not dupes[0] else f"{dupes[0]:,} value(s) repeat, in {int(dupes[1]):,} rows"
    return CheckResult(check, dupes[0] == 0, int(dupes[0]), 0, message, examples)


def _range(
    check: Check,
    _v: DatasetVersion,
    profile: TableProfile,
    source: str,
    query: Query,
    _now: datetime,
) -> CheckResult:
    column = sql_name(str(check.column))
    parts = []
    if "min" in check.params:
        parts.append(f"{column} < {_literal(check.params['min'])}")
    if "max" in check.params:
        parts.append(f"{column} > {_literal(check.params['max'])}")
    if not parts:
        return CheckResult(check, True, None, None, "no bound given")
    condition = " OR ".join(parts)
    if profile.column(str(check.column)).type in _FLOAT_TYPES:
        # NaN is NA, like null: DuckDB sorts it above every number, so it failed `max` only.
        condition = f"({condition}) AND NOT isnan({column})"
    expected = {k: check.params[k] for k in ("min", "max") if k in check.params}
    return _failing(check, source, query, condition, expected, "out of range")


def _allowed(
    check: Check, _v: DatasetVersion, _p: TableProfile, source: str, query: Query, _now: datetime
) -> CheckResult:
    column = sql_name(str(check.column))
    values = ", ".join(_literal(v) for v in check.params["values"])
    condition = f"{column} IS NOT NULL AND CAST({column} AS VARCHAR) NOT IN ({values})"
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in check.params["values"]):
        condition = f"{column} IS NOT NULL AND {column} NOT IN ({values})"
    return _failing(check, source, query, condition, check.params["values"], "hold other values")


def _regex(
    check: Check, _v: DatasetVersion, _p: TableProfile, source: str, query: Query, _now: datetime
) -> CheckResult:
    import duckdb

    column = sql_name(str(check.column))
    pattern = _literal(check.params["pattern"])
    try:  # DuckDB speaks RE2, which lacks some of Python's syntax (look-arounds, backreferences)
        query(f"SELECT regexp_full_match('', {pattern})")
    except duckdb.Error as exc:
        raise InvalidArgumentError(
            f"check {check.name}: pattern {check.params['pattern']!r} is not RE2 syntax ({exc})"
        ) from None
    condition = (
        f"{column} IS NOT NULL AND NOT regexp_full_match(CAST({column} AS VARCHAR), {pattern})"
    )
    return _failing(check, source, query, condition, check.params["pattern"], "do not match")


def _schema(
    check: Check, version: DatasetVersion, profile: TableProfile, _s: str, _q: Query, _now: datetime
) -> CheckResult:
    actual = {c.name: c.type for c in profile.schema}
    expected = {str(k): str(v) for k, v in check.params["columns"].items()}
    problems = [f"{n}: missing" for n in expected if n not in actual]
    problems += [
        f"{n}: {actual[n]} instead of {t}"
        for n, t in expected.items()
        if n in actual and actual[n] != t
    ]
    if check.params.get("strict"):
        problems += [f"{n}: not expected" for n in actual if n not in expected]
    message = "ok" if not problems else "; ".join(problems)
    return CheckResult(check, not problems, actual, expected, message)


def _row_count(
    check: Check, version: DatasetVersion, profile: TableProfile, _s: str, _q: Query, _now: datetime
) -> CheckResult:
    rows = profile.rows
    low, high = check.params.get("min"), check.params.get("max")
    ok = (low is None or rows >= low) and (high is None or rows <= high)
    expected = {k: check.params[k] for k in ("min", "max") if k in check.params}
    message = "ok" if ok else f"{rows:,} rows, expected {expected}"
    return CheckResult(check, ok, rows, expected, message)


def _freshness(
    check: Check,
    version: DatasetVersion,
    _p: TableProfile,
    source: str,
    query: Query,
    now: datetime,
) -> CheckResult:
    max_age = check.params["max_age"]
    if check.column is None:
        newest = version.card.fetched_at or version.created_at
        what = "fetched"
    else:
        value = query(f"SELECT max({sql_name(check.column)}) FROM {source}")[0][0]
        if value is None:
            return CheckResult(check, False, None, str(max_age), "the column holds no time")
        if not isinstance(value, datetime):
            try:
                value = datetime.fromisoformat(str(value))
            except ValueError:
                return CheckResult(check, False, str(value), str(max_age), "not a timestamp")
        newest = value if value.tzinfo else value.replace(tzinfo=UTC)
        what = f"newest {check.column}"
    age = as_utc(now) - as_utc(newest)
    ok = age <= max_age
    message = "ok" if ok else f"{what} {age} ago, more than {max_age}"
    return CheckResult(check, ok, as_utc(newest).isoformat(), str(max_age), message)


def _max_na(
    check: Check, _v: DatasetVersion, profile: TableProfile, _s: str, _q: Query, _now: datetime
) -> CheckResult:
    limit = float(check.params["max"])
    columns = [profile.column(check.column)] if check.column else list(profile.columns)
    worst = {c.name: c.na_share for c in columns if c.na_share > limit}
    observed = {c.name: round(c.na_share, 6) for c in columns}
    message = "ok" if not worst else ", ".join(f"{n}: {s:.1%} NA" for n, s in worst.items())
    return CheckResult(check, not worst, observed, limit, message)


_RUNNERS: Mapping[str, Callable[..., CheckResult]] = {
    "not_null": _not_null,
    "unique": _unique,
    "range": _range,
    "allowed_values": _allowed,
    "regex": _regex,
    "schema_equals": _schema,
    "row_count": _row_count,
    "freshness": _freshness,
    "max_na_share": _max_na,
}
