"""A JSON response encoded by orjson when it is installed (the ``server`` extra brings it).

For the answers that carry many records (a run search page): orjson encodes them several
times faster than the standard library. Records reach it already JSON-safe (NaN and
infinities as strings, times as ISO text), as they reach ``JSONResponse``.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi.responses import JSONResponse

__all__ = ["FastJSONResponse"]

try:
    import orjson
except ModuleNotFoundError:  # pragma: no cover - orjson comes with the server extra
    orjson = None  # type: ignore[assignment]


class FastJSONResponse(JSONResponse):
    """``JSONResponse`` with orjson's encoder; the standard one when orjson is missing."""

    def render(self, content: Any) -> bytes:
        """The body, compact UTF-8 JSON.

        The content must be JSON-safe: orjson writes a NaN as null where the standard
        encoder refuses it.
        """
        if orjson is None:
            return super().render(content)
        try:
            return bytes(orjson.dumps(content))
        except TypeError:  # a type orjson does not take (an int beyond 64 bits...)
            return json.dumps(content, ensure_ascii=False, allow_nan=False).encode()
