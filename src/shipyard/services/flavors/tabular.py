"""Turning model inputs (pandas, polars, pyarrow, numpy, dicts, lists of rows) into tables."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from shipyard.errors import InvalidArgumentError

__all__ = ["as_frame", "as_matrix"]


def as_frame(data: Any, columns: Sequence[str] | None = None) -> Any:
    """A pandas DataFrame of the input (numpy arrays are passed through as they are)."""
    import pandas as pd

    module = type(data).__module__.split(".")[0]
    if isinstance(data, pd.DataFrame):
        return data
    if module == "numpy":
        return data if columns is None else pd.DataFrame(np.asarray(data), columns=list(columns))
    if module == "polars":
        return data.to_pandas()
    if module == "pyarrow":
        return data.to_pandas()
    if isinstance(data, Mapping):
        return pd.DataFrame(dict(data))
    if isinstance(data, list) and (not data or isinstance(data[0], Mapping)):
        return pd.DataFrame(data)
    raise InvalidArgumentError(
        f"cannot predict on a {type(data).__name__}: pass a DataFrame, an Arrow table, an "
        "array, a dict of columns or a list of row dicts"
    )


def as_matrix(data: Any) -> Any:
    """A float32 2-D array of the input, columns in order (what ONNX models take)."""
    module = type(data).__module__.split(".")[0]
    if module == "numpy":
        array = np.asarray(data)
    else:
        frame = as_frame(data)
        array = frame.to_numpy()
    if array.ndim == 1:
        array = array.reshape(1, -1)
    try:
        return np.ascontiguousarray(array, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise InvalidArgumentError(f"model input is not numeric: {exc}") from None
