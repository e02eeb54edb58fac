"""Metric points packed into chunks: the storage format of metric histories.

A chunk holds up to ``CHUNK_POINTS`` points of one metric of one run as a little-endian
array of (step int64, timestamp float64, value float64); NaN and infinities are kept as
they are. A million-point history is a few hundred chunks that load in milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from shipyard.domain.numbers import json_float

__all__ = ["CHUNK_POINTS", "POINT", "MetricHistory", "pack", "unpack"]

CHUNK_POINTS = 4096
POINT = np.dtype([("step", "<i8"), ("timestamp", "<f8"), ("value", "<f8")])


def pack(points: npt.NDArray[np.void]) -> bytes:
    """The bytes of an array of ``POINT`` records."""
    return np.ascontiguousarray(points, dtype=POINT).tobytes()


def unpack(data: bytes) -> npt.NDArray[np.void]:
    """An array of ``POINT`` records from chunk bytes."""
    return np.frombuffer(data, dtype=POINT)


@dataclass(frozen=True, slots=True)
class MetricHistory:
    """Every point of one metric of one run, in the order they were logged."""

    key: str
    steps: npt.NDArray[np.int64]
    timestamps: npt.NDArray[np.float64]
    values: npt.NDArray[np.float64]

    def __len__(self) -> int:
        return len(self.values)

    def to_dict(self) -> dict[str, object]:
        """JSON-safe form (NaN and infinities as strings)."""
        return {
            "key": self.key,
            "steps": self.steps.tolist(),
            "timestamps": self.timestamps.tolist(),
            "values": [json_float(v) for v in self.values.tolist()],
        }
