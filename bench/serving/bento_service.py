"""The BentoML 1.4 side of the serving benchmark: the same scikit-learn model behind /predict.

Served by ``bentoml serve bento_service:RandomForest`` with ``BENCH_MODEL`` naming the skops
file the benchmark wrote. One worker (the server is pinned to one core), no batching: the
idiomatic BentoML service for a scikit-learn model.
"""

from __future__ import annotations

import os

import bentoml
import numpy as np


@bentoml.service(workers=1, traffic={"timeout": 30})
class RandomForest:
    def __init__(self) -> None:
        import skops.io

        path = os.environ["BENCH_MODEL"]
        self.model = skops.io.load(path, trusted=skops.io.get_untrusted_types(file=path))

    @bentoml.api
    def predict(self, inputs: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.predict(inputs))


@bentoml.service(workers=1, traffic={"timeout": 30})
class RandomForestOnnx:
    """The same model's ONNX export through ONNX Runtime: BentoML with shipyard's runtime."""

    def __init__(self) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        self.session = onnxruntime.InferenceSession(
            os.environ["BENCH_ONNX"], options, providers=["CPUExecutionProvider"]
        )
        self.input = self.session.get_inputs()[0].name

    @bentoml.api
    def predict(self, inputs: np.ndarray) -> np.ndarray:
        labels = self.session.run(None, {self.input: inputs.astype(np.float32)})[0]
        return np.asarray(labels)
