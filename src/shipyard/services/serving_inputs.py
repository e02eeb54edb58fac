"""Prediction input: parse request bodies and check them against a model's signature.

JSON (``{"records": [...]}``, ``{"columns": {...}}`` or a bare list of records), CSV and
Arrow IPC streams become a ``Frame``: a float matrix when every input column is numeric
(what ONNX Runtime and scikit-learn take), else one array per column. Every problem names
the column and what is wrong with it, so a client can fix the request.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from shipyard.domain.models import Signature
from shipyard.errors import InvalidArgumentError, MalformedBodyError, PredictionInputError

__all__ = ["ARROW", "CSV", "JSON", "Frame", "InputSchema"]

JSON = "application/json"
CSV = "text/csv"
ARROW = "application/vnd.apache.arrow.stream"
_NUMERIC = frozenset({"float64", "int64", "bool"})
_FLOATISH = frozenset({float, int})
_JSON_TYPES = {"float64": "number", "int64": "integer", "bool": "boolean", "string": "string"}


@dataclass(frozen=True, slots=True)
class Frame:
    """Validated input rows.

    Attributes:
        rows: how many rows.
        names: the column names, in signature order.
        matrix: a ``rows x columns`` float64 array when every column is numeric, else None.
        columns: one array per column when some column is not numeric, else None.
        records: the rows as given, when the request sent records (for the prediction log).
    """

    rows: int
    names: tuple[str, ...]
    matrix: np.ndarray[Any, Any] | None
    columns: Mapping[str, np.ndarray[Any, Any]] | None = None
    records: list[dict[str, Any]] | None = None

    def to_records(self) -> list[dict[str, Any]]:
        """The rows as dicts of plain Python values."""
        if self.records is not None:
            return self.records
        if self.matrix is not None:
            return [dict(zip(self.names, row, strict=True)) for row in self.matrix.tolist()]
        assert self.columns is not None
        lists = [self.columns[n].tolist() for n in self.names]
        return [dict(zip(self.names, row, strict=True)) for row in zip(*lists, strict=True)]

    def to_pandas(self) -> Any:
        """A pandas DataFrame with the signature's column names (what native flavors take)."""
        import pandas as pd

        if self.matrix is not None:
            return pd.DataFrame(self.matrix, columns=list(self.names))
        assert self.columns is not None
        return pd.DataFrame({n: self.columns[n] for n in self.names})

    @staticmethod
    def concat(frames: Sequence[Frame]) -> Frame:
        """One frame holding the rows of ``frames`` in order (all of one schema)."""
        if len(frames) == 1:
            return frames[0]
        first = frames[0]
        rows = sum(f.rows for f in frames)
        if first.matrix is not None:
            stacked = np.concatenate([f.matrix for f in frames if f.matrix is not None])
            return Frame(rows, first.names, stacked)
        columns = {
            n: np.concatenate([f.columns[n] for f in frames if f.columns is not None])
            for n in first.names
        }
        return Frame(rows, first.names, None, columns)


class InputSchema:
    """Checks and converts prediction input for one signature.

    Args:
        signature: the model's signature; without one, columns are taken as sent and only
            checked for being numbers.
    """

    def __init__(self, signature: Signature | None) -> None:
        self.signature = signature
        inputs = signature.inputs if signature is not None else ()
        self.names: tuple[str, ...] = tuple(c.name for c in inputs)
        self.types: tuple[str, ...] = tuple(c.type for c in inputs)
        self.nullable: tuple[bool, ...] = tuple(c.nullable for c in inputs)
        self._keys = frozenset(self.names)
        self.numeric = all(t in _NUMERIC for t in self.types)
        self._all_float = all(t == "float64" for t in self.types)
        self._strict = [i for i, n in enumerate(self.nullable) if not n]

    # -- bodies ----------------------------------------------------------------------------

    def parse(self, body: bytes, content_type: str) -> Frame:
        """Parse and check a request body of the given media type.

        Raises:
            MalformedBodyError: if the body is not valid in its format.
            PredictionInputError: if the rows do not match the signature.
            InvalidArgumentError: for an unsupported media type.
        """
        kind = content_type.split(";", 1)[0].strip().lower()
        if kind in ("", JSON) or kind.endswith("+json"):
            try:
                value = json.loads(body)
            except (UnicodeDecodeError, ValueError) as exc:
                raise MalformedBodyError(JSON, str(exc)) from None
            return self.from_json(value)
        if kind == CSV:
            return self.from_arrow(_read_csv(body))
        if kind == ARROW:
            return self.from_arrow(_read_arrow(body))
        raise InvalidArgumentError(
            f"unsupported content type {content_type!r}: send {JSON}, {CSV} or {ARROW}"
        )

    def from_json(self, value: Any) -> Frame:
        """Rows from parsed JSON: records, ``{"records": ...}`` or ``{"columns": ...}``.

        Raises:
            PredictionInputError: if the rows do not match the signature.
            InvalidArgumentError: if the JSON has none of the accepted shapes.
        """
        if type(value) is list:
            return self.from_records(value)
        if type(value) is dict:
            if "records" in value and len(value) == 1:
                return self.from_records(value["records"])
            if "columns" in value and len(value) == 1:
                return self.from_columns(value["columns"])
        raise InvalidArgumentError(
            'send {"records": [{column: value, ...}, ...]}, {"columns": {column: [values]}} '
            "or a list of records"
        )

    # -- records -----------------------------------------------------------------------------

    def from_records(self, records: Any) -> Frame:
        """Rows from a list of ``{column: value}`` objects.

        Raises:
            PredictionInputError: naming the first column that is missing, unknown, of the
                wrong type, or NaN/null where the signature forbids it.
        """
        if type(records) is not list or not records:
            raise InvalidArgumentError("records must be a non-empty list of objects")
        if not self.names:
            return self._untyped_records(records)
        names, keys = self.names, self._keys
        rows: list[list[Any]] = []
        for i, record in enumerate(records):
            if type(record) is not dict:
                raise InvalidArgumentError(f"record {i} is a {_json_type(record)}, not an object")
            if record.keys() != keys:
                self._key_problem(record.keys(), f" in record {i}")
            rows.append([record[n] for n in names])
        checked = False
        if self._all_float:
            checked = len(self._strict) == len(names)  # no NaN anywhere: check it here
            for i, row in enumerate(rows):
                if not _FLOATISH.issuperset(map(type, row)):  # C-speed check of the row
                    for j, value in enumerate(row):
                        kind = type(value)
                        if kind is not float and kind is not int:
                            self._value_problem(j, value, i)
                if checked and any(map(math.isnan, row)):
                    j = next(j for j, v in enumerate(row) if math.isnan(v))
                    self._value_problem(j, row[j], i)
        else:
            for i, row in enumerate(rows):
                for j, value in enumerate(row):
                    self._check_value(j, value, i)
        if self.numeric:
            matrix = np.array(rows, dtype=np.float64)
            if not checked:
                self._check_nan(matrix)
            return Frame(len(rows), names, matrix, records=records)
        columns = {n: _column([row[j] for row in rows], self.types[j]) for j, n in enumerate(names)}
        return Frame(len(rows), names, None, columns, records=records)

    def _untyped_records(self, records: list[Any]) -> Frame:
        if type(records[0]) is not dict:
            raise InvalidArgumentError("records must be objects of column: value")
        names = tuple(records[0])
        try:
            matrix = np.array([[r[n] for n in names] for r in records], dtype=np.float64)
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidArgumentError(f"records must all have numeric {names}: {exc}") from None
        return Frame(len(records), names, matrix, records=records)

    # -- columns ------------------------------------------------------------------------------

    def from_columns(self, columns: Any) -> Frame:
        """Rows from ``{column: [values, ...]}``.

        Raises:
            PredictionInputError: naming the column that is wrong.
        """
        if type(columns) is not dict or not columns:
            raise InvalidArgumentError("columns must be a non-empty object of column: [values]")
        if self.names and columns.keys() != self._keys:
            self._key_problem(columns.keys(), "")
        names = self.names or tuple(columns)
        lengths = set()
        for name in names:
            values = columns[name]
            if type(values) is not list:
                raise PredictionInputError(
                    name, f"expected a list of values, got {_json_type(values)}"
                )
            lengths.add(len(values))
        if len(lengths) != 1 or 0 in lengths:
            raise InvalidArgumentError(
                f"columns must be non-empty lists of one length, got {sorted(lengths)}"
            )
        if self.names:
            for j, name in enumerate(names):
                for i, value in enumerate(columns[name]):
                    self._check_value(j, value, i)
        rows = lengths.pop()
        if self.numeric:
            try:
                matrix = np.array([columns[n] for n in names], dtype=np.float64).T.copy()
            except (TypeError, ValueError) as exc:
                raise InvalidArgumentError(f"columns must hold numbers: {exc}") from None
            self._check_nan(matrix)
            return Frame(rows, names, matrix)
        arrays = {n: _column(columns[n], self.types[j]) for j, n in enumerate(names)}
        return Frame(rows, names, None, arrays)

    # -- Arrow (and CSV) --------------------------------------------------------------------

    def from_arrow(self, table: Any) -> Frame:
        """Rows from a pyarrow Table.

        Raises:
            PredictionInputError: naming the column that is missing, unknown, of the wrong
                type, or null/NaN where the signature forbids it.
        """
        import pyarrow as pa
        import pyarrow.compute as pc

        if table.num_rows == 0:
            raise InvalidArgumentError("the body holds no rows")
        given = table.column_names
        if len(set(given)) != len(given):
            dup = next(n for n in given if given.count(n) > 1)
            raise PredictionInputError(dup, "appears more than once")
        if self.names and set(given) != self._keys:
            self._key_problem(set(given), "")
        names = self.names or tuple(given)
        types = self.types or tuple("float64" for _ in names)
        nullable = self.nullable or tuple(False for _ in names)
        arrays: dict[str, np.ndarray[Any, Any]] = {}
        for name, kind, may_be_null in zip(names, types, nullable, strict=True):
            column = table.column(name)
            arrow = column.type
            ok = (
                (kind == "float64" and (pa.types.is_integer(arrow) or pa.types.is_floating(arrow)))
                or (kind == "int64" and pa.types.is_integer(arrow))
                or (kind == "bool" and pa.types.is_boolean(arrow))
                or (
                    kind == "string"
                    and (pa.types.is_string(arrow) or pa.types.is_large_string(arrow))
                )
                or pa.types.is_null(arrow)
            )
            if not ok:
                raise PredictionInputError(name, f"wrong type: expected {kind}, got {arrow}")
            nulls = column.null_count
            if pa.types.is_floating(arrow):
                nulls += int(pc.sum(pc.is_nan(column)).as_py() or 0)
            if nulls and not may_be_null:
                raise PredictionInputError(
                    name, f"{nulls} missing value(s) (null or NaN) where the signature forbids them"
                )
            if kind in _NUMERIC:
                arrays[name] = column.cast(pa.float64()).to_numpy()
            else:
                arrays[name] = np.asarray(column.to_pylist(), dtype=object)
        if all(t in _NUMERIC for t in types):
            matrix = np.column_stack([arrays[n] for n in names]).astype(np.float64, copy=False)
            return Frame(table.num_rows, tuple(names), np.ascontiguousarray(matrix))
        return Frame(table.num_rows, tuple(names), None, arrays)

    # -- problems -----------------------------------------------------------------------------

    def _key_problem(self, given: Any, where: str) -> None:
        given = set(given)
        missing = [n for n in self.names if n not in given]
        if missing:
            raise PredictionInputError(
                missing[0],
                f"missing{where}" + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""),
            )
        unknown = sorted(str(n) for n in given - self._keys)
        raise PredictionInputError(
            unknown[0], f"unknown{where}: the model takes {', '.join(self.names)}"
        )

    def _check_value(self, j: int, value: Any, row: int) -> None:
        kind, clean = type(value), True
        expected = self.types[j]
        if value is None:
            clean = self.nullable[j]
        elif expected == "float64":
            clean = kind is float or kind is int
        elif expected == "int64":
            clean = kind is int or (kind is float and value.is_integer())
        elif expected == "bool":
            clean = kind is bool
        elif expected == "string":
            clean = kind is str
        if not clean:
            self._value_problem(j, value, row)
        if kind is float and value != value and not self.nullable[j]:
            self._value_problem(j, value, row)

    def _value_problem(self, j: int, value: Any, row: int) -> None:
        name, expected = self.names[j], self.types[j]
        if value is None or (type(value) is float and value != value):
            if not self.nullable[j]:
                shown = "null" if value is None else "NaN"
                raise PredictionInputError(
                    name, f"{shown} in row {row} where the signature forbids missing values"
                )
            return
        raise PredictionInputError(
            name,
            f"wrong type in row {row}: expected {expected}, got {_json_type(value)} {value!r:.40}",
        )

    def _check_nan(self, matrix: np.ndarray[Any, Any]) -> None:
        if not self._strict or not self.names:
            return
        strict = matrix if len(self._strict) == len(self.names) else matrix[:, self._strict]
        # the sum is one fast pass: NaN anywhere (or +inf with -inf) makes it NaN
        if np.isnan(strict.sum()) and np.isnan(strict).any():
            row, col = np.argwhere(np.isnan(strict))[0]
            name = self.names[self._strict[int(col)]]
            raise PredictionInputError(
                name, f"NaN or null in row {int(row)} where the signature forbids missing values"
            )

    # -- description ------------------------------------------------------------------------

    def json_schema(self) -> dict[str, Any]:
        """JSON Schema of one record, from the signature."""
        properties: dict[str, Any] = {}
        for name, kind, nullable in zip(self.names, self.types, self.nullable, strict=True):
            base = _JSON_TYPES.get(kind, "string")
            properties[name] = {"type": [base, "null"] if nullable else base}
        return {
            "type": "object",
            "properties": properties,
            "required": list(self.names),
            "additionalProperties": False,
        }


def _column(values: list[Any], kind: str) -> np.ndarray[Any, Any]:
    if kind == "float64":
        return np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    if kind in ("int64", "bool"):
        if any(v is None for v in values):
            return np.array([np.nan if v is None else v for v in values], dtype=np.float64)
        return np.array(values, dtype=np.int64 if kind == "int64" else np.bool_)
    return np.array(values, dtype=object)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    return {
        bool: "boolean",
        int: "integer",
        float: "number",
        str: "string",
        list: "array",
        dict: "object",
    }.get(type(value), type(value).__name__)


def _read_csv(body: bytes) -> Any:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    try:
        return pacsv.read_csv(io.BytesIO(body))
    except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeDecodeError) as exc:
        raise MalformedBodyError(CSV, str(exc).splitlines()[0]) from None


def _read_arrow(body: bytes) -> Any:
    import pyarrow as pa
    import pyarrow.ipc as ipc

    try:
        return ipc.open_stream(pa.py_buffer(body)).read_all()
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as exc:
        raise MalformedBodyError(
            ARROW, str(exc).splitlines()[0] if str(exc) else "unreadable"
        ) from None
