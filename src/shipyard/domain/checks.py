"""Declarative data checks: what a dataset version must satisfy, parsed from TOML or Python.

A checks file holds an array of tables, one per check::

    [[checks]]
    kind = "not_null"
    column = "age"

    [[checks]]
    kind = "range"
    column = "age"
    min = 0
    max = 120

Every check takes an optional ``name`` and ``severity`` (``"error"``, the default, or
``"warning"``: a failed warning is reported but does not fail the run).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from shipyard.errors import InvalidArgumentError

__all__ = ["KINDS", "Check", "CheckResult", "ValidationReport", "parse_checks", "parse_duration"]

# kind -> (required fields, optional fields)
KINDS: Mapping[str, tuple[frozenset[str], frozenset[str]]] = {
    "not_null": (frozenset({"column"}), frozenset()),
    "unique": (frozenset(), frozenset({"column", "columns"})),
    "range": (frozenset({"column"}), frozenset({"min", "max"})),
    "allowed_values": (frozenset({"column", "values"}), frozenset()),
    "regex": (frozenset({"column", "pattern"}), frozenset()),
    "schema_equals": (frozenset({"columns"}), frozenset({"strict"})),
    "row_count": (frozenset(), frozenset({"min", "max"})),
    "freshness": (frozenset({"max_age"}), frozenset({"column"})),
    "max_na_share": (frozenset({"max"}), frozenset({"column"})),
}
_COMMON = frozenset({"kind", "name", "severity"})
_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


@dataclass(frozen=True, slots=True)
class Check:
    """One check: its kind, its parameters and how serious a failure is."""

    kind: str
    params: Mapping[str, Any]
    name: str
    severity: str = "error"

    @property
    def column(self) -> str | None:
        """The column the check is about, if it is about one."""
        value = self.params.get("column")
        return str(value) if value is not None else None


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The outcome of one check on one version."""

    check: Check
    passed: bool
    observed: Any
    expected: Any
    message: str
    examples: tuple[Any, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "name": self.check.name,
            "kind": self.check.kind,
            "column": self.check.column,
            "severity": self.check.severity,
            "passed": self.passed,
            "observed": self.observed,
            "expected": self.expected,
            "message": self.message,
            "examples": [str(e) for e in self.examples],
        }


@dataclass(frozen=True, slots=True)
class ValidationReport:
    """Every check's result on one version."""

    reference: str
    results: tuple[CheckResult, ...] = field(default_factory=tuple)

    @property
    def failures(self) -> tuple[CheckResult, ...]:
        """Failed checks of severity ``error``."""
        return tuple(r for r in self.results if not r.passed and r.check.severity == "error")

    @property
    def ok(self) -> bool:
        """Whether no error-severity check failed."""
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "reference": self.reference,
            "ok": self.ok,
            "results": [r.to_dict() for r in self.results],
        }


def parse_duration(text: object) -> timedelta:
    """Parse ``"90s"``, ``"15m"``, ``"24h"``, ``"7d"`` or ``"2w"``.

    Raises:
        InvalidArgumentError: for anything else.
    """
    match = _DURATION.fullmatch(str(text))
    if match is None:
        raise InvalidArgumentError(
            f"duration {text!r} is not a number and a unit (s, m, h, d, w), such as '7d'"
        )
    return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])


def parse_checks(data: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> tuple[Check, ...]:
    """Build checks from parsed TOML (``{"checks": [...]}``) or a list of dicts.

    Raises:
        InvalidArgumentError: naming the check and the field that is wrong.
    """
    items = data.get("checks") if isinstance(data, Mapping) else data
    if not isinstance(items, Sequence) or isinstance(items, str) or not items:
        raise InvalidArgumentError("no checks given: write them as [[checks]] tables")
    checks = []
    for index, item in enumerate(items, 1):
        if not isinstance(item, Mapping):
            raise InvalidArgumentError(f"check {index} is not a table of fields")
        checks.append(_parse_one(index, item))
    return tuple(checks)


def _parse_one(index: int, item: Mapping[str, Any]) -> Check:
    kind = item.get("kind")
    if not isinstance(kind, str) or kind not in KINDS:  # a list or table kind is unhashable
        raise InvalidArgumentError(
            f"check {index}: unknown kind {kind!r}; kinds are {', '.join(sorted(KINDS))}"
        )
    required, optional = KINDS[str(kind)]
    where = f"check {index} ({kind})"
    missing = sorted(required - item.keys())
    if missing:
        raise InvalidArgumentError(f"{where}: missing field(s) {', '.join(missing)}")
    unknown = sorted(item.keys() - required - optional - _COMMON)
    if unknown:
        raise InvalidArgumentError(f"{where}: unknown field(s) {', '.join(unknown)}")
    severity = item.get("severity", "error")
    if severity not in ("error", "warning"):
        raise InvalidArgumentError(f"{where}: severity is 'error' or 'warning'")
    params = {k: v for k, v in item.items() if k not in _COMMON}
    _check_params(where, str(kind), params)
    label = params.get("column") or ",".join(params.get("columns", [])) or ""
    name = str(item.get("name") or (f"{kind}({label})" if label else str(kind)))
    return Check(str(kind), params, name, str(severity))


def _check_params(where: str, kind: str, params: dict[str, Any]) -> None:
    for bound in ("min", "max"):
        if bound in params and not isinstance(params[bound], (int, float, str)):
            raise InvalidArgumentError(f"{where}: {bound} must be a number (or a date string)")
    if kind == "unique":
        columns = params.get("columns", [params["column"]] if "column" in params else None)
        if (
            not isinstance(columns, list)
            or not columns
            or not all(isinstance(c, str) for c in columns)
        ):
            raise InvalidArgumentError(f"{where}: give column or columns (a list of names)")
        params["columns"] = list(columns)
        params.pop("column", None)
    elif kind == "row_count":
        for bound in ("min", "max"):
            value = params.get(bound, 0)
            if not isinstance(value, int) or isinstance(value, bool):
                raise InvalidArgumentError(f"{where}: {bound} must be a whole number of rows")
    elif kind == "allowed_values":
        if not isinstance(params["values"], list) or not params["values"]:
            raise InvalidArgumentError(f"{where}: values must be a non-empty list")
    elif kind == "regex":
        try:
            re.compile(params["pattern"])
        except (re.error, TypeError) as exc:
            raise InvalidArgumentError(f"{where}: pattern is not a valid regex ({exc})") from None
    elif kind == "schema_equals":
        if not isinstance(params["columns"], Mapping) or not params["columns"]:
            raise InvalidArgumentError(f"{where}: columns must map column names to Arrow types")
    elif kind == "freshness":
        params["max_age"] = parse_duration(params["max_age"])
    elif kind == "max_na_share":
        share = params["max"]
        if not isinstance(share, (int, float)) or not 0 <= share <= 1:
            raise InvalidArgumentError(f"{where}: max is a share between 0 and 1")
