"""The floor: the least an HTTP predict can do here, to calibrate a noisy machine.

A raw ASGI app under uvicorn (uvloop + httptools): read the body, ``json.loads``, one ONNX
Runtime run, ``json.dumps``. No validation, no metrics, no batching. Run with
``uvicorn floor_app:app`` and ``BENCH_ONNX`` naming the model's ONNX file.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
import onnxruntime

_options = onnxruntime.SessionOptions()
_options.intra_op_num_threads = 1
_session = onnxruntime.InferenceSession(
    os.environ["BENCH_ONNX"], _options, providers=["CPUExecutionProvider"]
)
_input = _session.get_inputs()[0].name
_HEADERS = [(b"content-type", b"application/json")]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    if scope["path"] == "/health":
        await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
        await send({"type": "http.response.body", "body": b'{"status": "ok"}'})
        return
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    rows = json.loads(body)["inputs"]
    labels = _session.run(None, {_input: np.asarray(rows, dtype=np.float32)})[0]
    data = json.dumps({"predictions": labels.tolist()}).encode()
    await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
    await send({"type": "http.response.body", "body": data})
