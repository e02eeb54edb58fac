"""The prediction log's rules: which requests are kept and what one logged row holds.

One logged row is one input row of a request::

    request_id, row, at, deployment_id, version, latency_ms,
    <input columns>, prediction, [probability_<class> …], [output_<key> …]

An input column whose name clashes with one of shipyard's columns is stored as
``input_<name>``. A model output that is a mapping is spread over columns: ``prediction``
(or ``label``) becomes ``prediction``; ``probabilities`` (a mapping of class to probability,
or a list) becomes ``probability_<class>``; any other key becomes ``output_<key>``.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

__all__ = [
    "BASE_COLUMNS",
    "LABEL",
    "PREDICTION",
    "InputBlock",
    "Logged",
    "columns_of",
    "input_column",
    "output_fields",
    "sampled",
]

BASE_COLUMNS = ("request_id", "row", "at", "deployment_id", "version", "latency_ms")
PREDICTION = "prediction"
LABEL = "label"
_RESERVED = frozenset((*BASE_COLUMNS, PREDICTION, LABEL))
_OUTPUT_PREFIXES = ("probability_", "output_")
_PROBABILITIES = ("probabilities", "probability")


class InputBlock:
    """A request's input rows as one 2-D array with its column names (no dict per row).

    What a model server logs when it parsed the request into a matrix already: the writer
    stacks the blocks of a batch in one call instead of reading a dict per row.
    """

    __slots__ = ("matrix", "names")

    def __init__(self, names: Sequence[str], matrix: Any) -> None:
        self.names = tuple(names)
        self.matrix = matrix  # numpy, shape (rows, len(names))

    def __len__(self) -> int:
        return int(self.matrix.shape[0])

    def records(self) -> list[dict[str, Any]]:
        """The rows as dicts of plain Python values."""
        return [dict(zip(self.names, row, strict=True)) for row in self.matrix.tolist()]


class Logged(NamedTuple):
    """One recorded request as it waits in the queue."""

    request_id: str
    at: float  # seconds since the epoch, UTC
    version: int
    inputs: Sequence[Any] | InputBlock  # records (mappings), or one block of rows
    outputs: Sequence[Any]
    latency: float  # seconds
    arrived: float  # time.monotonic() when it was queued
    probabilities: Sequence[Sequence[float]] | None = None  # per row, per class index


def sampled(request_id: str, rate: float) -> bool:
    """Whether a request is logged at this sample rate.

    The decision depends on the request id only, so every replica (and a retry) keeps or
    skips the same requests, and feedback for a kept request always finds its rows.
    """
    if rate >= 1.0:
        return True
    if rate <= 0.0:
        return False
    return zlib.crc32(request_id.encode()) < rate * 4_294_967_296


def input_column(key: str) -> str:
    """The column an input field is stored in."""
    if key in _RESERVED or key.startswith(_OUTPUT_PREFIXES):
        return f"input_{key}"
    return key


def output_fields(output: Any) -> dict[str, Any]:
    """The columns one model output fills (see the module docstring)."""
    if not isinstance(output, Mapping):
        return {PREDICTION: output}
    fields: dict[str, Any] = {}
    for key, value in output.items():
        if key in (PREDICTION, LABEL):
            fields[PREDICTION] = value
        elif key in _PROBABILITIES and isinstance(value, Mapping):
            fields.update({f"probability_{cls}": p for cls, p in value.items()})
        elif key in _PROBABILITIES and isinstance(value, list | tuple):
            fields.update({f"probability_{i}": p for i, p in enumerate(value)})
        else:
            fields[f"output_{key}"] = value
    return fields


def columns_of(entries: Iterable[Logged], deployment_id: str) -> dict[str, Any]:
    """Logged requests as columns of equal length, one row per input row.

    A field missing from some rows is None there. ``at`` is in integer microseconds since
    the epoch and ``latency_ms`` in milliseconds. Built column by column (one comprehension
    per field), not row by row: the writer thread holds the GIL that serving needs. When
    every request came as an ``InputBlock`` of the same columns, the inputs are one stacked
    array (a model server's parsed matrices): no Python work per input value at all.
    """
    request_ids: list[str] = []
    rows: list[int] = []
    ats: list[int] = []
    versions: list[int] = []
    latencies: list[float] = []
    inputs: list[Any] = []
    outputs: list[Any] = []
    probabilities: list[Sequence[float] | None] = []
    entries = list(entries)
    blocks = [e.inputs for e in entries if isinstance(e.inputs, InputBlock)]
    stacked = len(blocks) == len(entries) and len({b.names for b in blocks}) == 1
    for entry in entries:
        k = len(entry.inputs)
        if len(entry.outputs) != k:
            raise ValueError(
                f"request {entry.request_id}: {k} input rows, {len(entry.outputs)} outputs"
            )
        request_ids += [entry.request_id] * k
        rows += range(k)
        ats += [round(entry.at * 1_000_000)] * k
        versions += [entry.version] * k
        latencies += [entry.latency * 1000.0] * k
        if not stacked:
            given = entry.inputs
            inputs += given.records() if isinstance(given, InputBlock) else given
        outputs += entry.outputs
        probabilities += entry.probabilities if entry.probabilities is not None else [None] * k
    n = len(request_ids)
    base: dict[str, list[Any]] = {
        "request_id": request_ids,
        "row": rows,
        "at": ats,
        "deployment_id": [deployment_id] * n,
        "version": versions,
        "latency_ms": latencies,
    }
    columns: dict[str, Any]
    if stacked and blocks:  # one array call for the batch, a column a view of it
        import numpy as np

        matrix = np.vstack([b.matrix for b in blocks]).astype(np.float64, copy=False)
        columns = {input_column(name): matrix[:, j] for j, name in enumerate(blocks[0].names)}
    else:
        records = [r if isinstance(r, Mapping) else {"input": r} for r in inputs]
        columns = {input_column(str(key)): values for key, values in _spread(records).items()}
    fields = _spread([output_fields(o) for o in outputs])
    widest = max((len(p) for p in probabilities if p is not None), default=0)
    for cls in range(widest):
        fields[f"probability_{cls}"] = [
            p[cls] if p is not None and cls < len(p) else None for p in probabilities
        ]
    ordered = dict(sorted(fields.items(), key=lambda kv: kv[0] != PREDICTION))
    return {**base, **columns, **ordered}


def _spread(records: list[Mapping[Any, Any]]) -> dict[Any, list[Any]]:
    """Mappings as columns: the keys in order of first appearance, None where one lacks it."""
    if not records:
        return {}
    first = list(records[0])
    if all(len(r) == len(first) for r in records) and all(
        list(r) == first for r in records
    ):  # the common case: every row has the same fields
        return {key: [r[key] for r in records] for key in first}
    keys: dict[Any, None] = {}
    for record in records:
        keys.update(dict.fromkeys(record))
    return {key: [r.get(key) for r in records] for key in keys}
