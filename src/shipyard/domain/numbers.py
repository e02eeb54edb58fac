"""The JSON spelling of floats: NaN and infinities as strings, so every record is valid JSON.

``json_float`` writes ``"NaN"``, ``"Infinity"`` and ``"-Infinity"`` for non-finite values
(``json.dumps(..., allow_nan=False)`` always succeeds); ``float_from_json`` reads them back.
"""

from __future__ import annotations

import math

from shipyard.errors import InvalidArgumentError

__all__ = ["float_from_json", "json_float"]

_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def json_float(value: float) -> float | str:
    """A float as JSON can hold it: itself when finite, else its name."""
    if math.isfinite(value):
        return value
    if math.isnan(value):
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


def float_from_json(value: object) -> float:
    """The float that ``json_float`` wrote.

    Raises:
        InvalidArgumentError: for anything that is not a number or one of the three names.
    """
    if isinstance(value, str):
        if value not in _NON_FINITE:
            raise InvalidArgumentError(f"expected a number, got {value!r}")
        return _NON_FINITE[value]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidArgumentError(f"expected a number, got {value!r}")
    return float(value)
