"""ONNX models, served by ONNX Runtime."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from typing_extensions import override

from shipyard.errors import InvalidArgumentError, MissingDependencyError
from shipyard.services.flavors.base import Flavor, LoadedModel, pinned
from shipyard.services.flavors.tabular import as_matrix

__all__ = ["FILE", "OnnxFlavor", "OnnxRuntimeModel"]

FILE = "model.onnx"


class OnnxRuntimeModel(LoadedModel):
    """An ONNX model in an ONNX Runtime session (CPU)."""

    flavor = "onnx"

    def __init__(self, data: bytes) -> None:
        try:
            import onnxruntime
        except ModuleNotFoundError:
            raise MissingDependencyError("onnxruntime", "ml") from None
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        try:
            self._session = onnxruntime.InferenceSession(
                data, options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:
            raise InvalidArgumentError(f"not a loadable ONNX model: {exc}") from None
        self._input = self._session.get_inputs()[0].name
        self.outputs = [o.name for o in self._session.get_outputs()]

    def run(self, data: Any) -> dict[str, Any]:
        """Every output of the model for the input rows."""
        values = self._session.run(None, {self._input: as_matrix(data)})
        return dict(zip(self.outputs, values, strict=True))

    @override
    def predict(self, data: Any) -> Any:
        return self.run(data)[self.outputs[0]]

    def predict_proba(self, data: Any) -> Any:
        """The probabilities output of a converted classifier."""
        results = self.run(data)
        for name in ("probabilities", "output_probability"):
            if name in results:
                return results[name]
        return results[self.outputs[-1]]

    @property
    @override
    def native(self) -> Any:
        return self._session


class OnnxFlavor(Flavor):
    """An ``onnx.ModelProto`` or serialized ONNX bytes."""

    name = "onnx"

    @override
    def matches(self, model: Any) -> bool:
        return type(model).__name__ == "ModelProto" and type(model).__module__.startswith("onnx")

    @override
    def save(self, model: Any, folder: Path) -> None:
        data = model if isinstance(model, bytes) else model.SerializeToString()
        (folder / FILE).write_bytes(data)

    @override
    def load(self, folder: Path) -> LoadedModel:
        return OnnxRuntimeModel((folder / FILE).read_bytes())

    @override
    def requirements(self, model: Any) -> list[str]:
        return pinned("onnxruntime", "numpy")

    @override
    def to_onnx(self, model: Any, example: Any) -> bytes:
        data: bytes = model if isinstance(model, bytes) else model.SerializeToString()
        return data
