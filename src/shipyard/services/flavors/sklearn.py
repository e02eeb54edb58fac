"""scikit-learn models, stored with skops (not pickle) and exported to ONNX by skl2onnx."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from typing_extensions import override

from shipyard.errors import MissingDependencyError, NotSupportedError
from shipyard.services.flavors.base import Flavor, LoadedModel, pinned
from shipyard.services.flavors.tabular import as_frame, as_matrix

__all__ = ["SklearnFlavor"]

FILE = "model.skops"


class _Loaded(LoadedModel):
    flavor = "sklearn"

    def __init__(self, model: Any) -> None:
        self._model = model

    @override
    def predict(self, data: Any) -> Any:
        return self._model.predict(as_frame(data, self._columns()))

    def predict_proba(self, data: Any) -> Any:
        """Class probabilities, for classifiers."""
        if not hasattr(self._model, "predict_proba"):
            raise NotSupportedError(type(self._model).__name__, "predict_proba")
        return self._model.predict_proba(as_frame(data, self._columns()))

    def _columns(self) -> list[str] | None:
        names = getattr(self._model, "feature_names_in_", None)
        return [str(n) for n in names] if names is not None else None

    @property
    @override
    def native(self) -> Any:
        return self._model


class SklearnFlavor(Flavor):
    """Any scikit-learn estimator or pipeline."""

    name = "sklearn"

    @override
    def matches(self, model: Any) -> bool:
        module = type(model).__module__
        return module.startswith("sklearn.") and hasattr(model, "predict")

    @override
    def save(self, model: Any, folder: Path) -> None:
        skops = _skops()
        skops.dump(model, folder / FILE)

    @override
    def load(self, folder: Path) -> LoadedModel:
        skops = _skops()
        path = folder / FILE
        # The file was verified against its digest in this store before it got here; the
        # types it names are the ones this store wrote, so they are trusted.
        trusted = skops.get_untrusted_types(file=path)
        return _Loaded(skops.load(path, trusted=trusted))

    @override
    def requirements(self, model: Any) -> list[str]:
        return pinned("scikit-learn", "skops", "numpy", "scipy", "pandas")

    @override
    def to_onnx(self, model: Any, example: Any) -> bytes:
        try:
            from skl2onnx import to_onnx
        except ModuleNotFoundError:
            raise MissingDependencyError("skl2onnx", "ml") from None
        matrix = as_matrix(example)
        options = {id(model): {"zipmap": False}} if hasattr(model, "predict_proba") else None
        try:
            proto = to_onnx(model, matrix[:1], options=options, target_opset=None)
        except Exception as exc:
            raise NotSupportedError(
                f"skl2onnx for {type(model).__name__}", f"this model ({exc})"
            ) from None
        data: bytes = proto.SerializeToString()
        return data


def _skops() -> Any:
    try:
        import skops.io
    except ModuleNotFoundError:
        raise MissingDependencyError("skops", "ml") from None
    return skops.io
