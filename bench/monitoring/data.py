"""The benchmark's data: 40 numeric and 10 categorical columns, some of them shifted.

Reference and current come from one seed. In the current table, numeric columns ``n0``-``n4``
are shifted by half a standard deviation and categorical columns ``c0``, ``c1`` have their
20 levels' frequencies changed (from even to a 1:3 ramp); the other 43 columns are drawn
from the same distributions as the reference.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

NUMERIC = 40
CATEGORICAL = 10
CATEGORICAL_LEVELS = 20
SHIFTED = ("n0", "n1", "n2", "n3", "n4", "c0", "c1")
_LEVELS = np.array([f"level_{i:02d}" for i in range(CATEGORICAL_LEVELS)])


def _columns(rows: int, rng: np.random.Generator, current: bool) -> dict[str, Any]:
    columns: dict[str, Any] = {}
    for i in range(NUMERIC):
        shift = 0.5 if current and f"n{i}" in SHIFTED else 0.0
        columns[f"n{i}"] = rng.normal(shift + i % 7, 1.0 + i % 3, rows)
    ramp = np.linspace(1, 3, CATEGORICAL_LEVELS)
    for i in range(CATEGORICAL):
        shares = ramp / ramp.sum() if current and f"c{i}" in SHIFTED else None
        columns[f"c{i}"] = rng.choice(CATEGORICAL_LEVELS, rows, p=shares)
    return columns


def frames(rows: int, seed: int, *, pandas: bool) -> tuple[Any, Any]:
    """(reference, current): pandas DataFrames (strings as objects) or Arrow tables."""
    rng = np.random.default_rng(seed)
    tables = []
    for current in (False, True):
        columns = _columns(rows, rng, current)
        for name in list(columns):
            if name.startswith("c"):
                columns[name] = _LEVELS[columns[name]]
        if pandas:
            import pandas as pd

            frame = pd.DataFrame(
                {k: v.astype(object) if k[0] == "c" else v for k, v in columns.items()}
            )
            tables.append(frame)
        else:
            import pyarrow as pa

            tables.append(pa.table(columns))
    return tables[0], tables[1]


def write_window(
    folder: Path, rows: int, seed: int, *, current: bool, chunk: int = 1_000_000
) -> None:
    """Parquet files of ``rows`` rows x 5 columns (4 numeric, 1 categorical), written in chunks."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    levels = pa.array(_LEVELS)
    for part, start in enumerate(range(0, rows, chunk)):
        n = min(chunk, rows - start)
        shift = 0.5 if current else 0.0
        columns = {f"n{i}": rng.normal(shift if i == 0 else 0.0, 1.0, n) for i in range(4)}
        codes = pa.array(rng.integers(0, CATEGORICAL_LEVELS, n).astype(np.int32))
        columns["c0"] = pa.DictionaryArray.from_arrays(codes, levels)
        pq.write_table(pa.table(columns), folder / f"part-{part:04d}.parquet")
