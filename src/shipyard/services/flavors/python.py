"""Generic Python models: a ``PythonModel`` subclass with ``load_context`` and ``predict``.

The instance is pickled. Loading a pickle runs code, so the store only unpickles files it
verified against their digests, written by this store's own ``log_model``.
"""

from __future__ import annotations

import pickle
import shutil
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from typing_extensions import override

from shipyard.errors import InvalidArgumentError
from shipyard.services.flavors.base import Flavor, LoadedModel, pinned

__all__ = ["ModelContext", "PythonFlavor", "PythonModel"]

FILE = "python_model.pkl"
ARTIFACTS = "artifacts"


@dataclass(frozen=True)
class ModelContext:
    """What ``load_context`` and ``predict`` get: local paths of the model's artifacts."""

    artifacts: Mapping[str, str] = field(default_factory=dict)


class PythonModel(ABC):
    """Subclass this to store any model: define ``predict`` (and ``load_context``).

    Set ``artifacts = {"weights": "/path/to/file"}`` on the instance to ship files with
    it; at load time ``context.artifacts["weights"]`` is their local path.
    """

    artifacts: Mapping[str, str] = {}

    def load_context(self, context: ModelContext) -> None:  # noqa: B027 - an optional hook
        """Load what ``predict`` needs (weights, vocabularies) from ``context.artifacts``."""

    @abstractmethod
    def predict(self, context: ModelContext, model_input: Any) -> Any:
        """Predictions for ``model_input``."""


class _Loaded(LoadedModel):
    flavor = "python"

    def __init__(self, model: PythonModel, context: ModelContext) -> None:
        self._model = model
        self._context = context

    @override
    def predict(self, data: Any) -> Any:
        return self._model.predict(self._context, data)

    @property
    @override
    def native(self) -> Any:
        return self._model


class PythonFlavor(Flavor):
    """Instances of ``shipyard.PythonModel`` subclasses."""

    name = "python"

    @override
    def matches(self, model: Any) -> bool:
        return isinstance(model, PythonModel)

    @override
    def save(self, model: Any, folder: Path) -> None:
        if not isinstance(model, PythonModel):
            raise InvalidArgumentError("the python flavor stores shipyard.PythonModel instances")
        if type(model).__module__ == "__main__":
            raise InvalidArgumentError(
                f"{type(model).__name__} is defined in __main__, so no other process could "
                "load it: define the class in an importable module"
            )
        names = {}
        for name, source in dict(model.artifacts).items():
            path = Path(source)
            if not path.exists():
                raise InvalidArgumentError(f"artifact {name!r}: {path} does not exist")
            target = folder / ARTIFACTS / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if path.is_dir():
                shutil.copytree(path, target)
            else:
                shutil.copyfile(path, target)
            names[name] = name
        try:
            data = pickle.dumps((model, names), protocol=pickle.HIGHEST_PROTOCOL)
        except (pickle.PicklingError, AttributeError, TypeError) as exc:
            raise InvalidArgumentError(
                f"the model cannot be pickled ({exc}); define its class in an importable "
                "module, not in __main__ or inside a function"
            ) from None
        (folder / FILE).write_bytes(data)

    @override
    def load(self, folder: Path) -> LoadedModel:
        # Only reached with files verified against this store's digests (see module doc).
        model, names = pickle.loads((folder / FILE).read_bytes())
        context = ModelContext({n: str(folder / ARTIFACTS / n) for n in names})
        model.load_context(context)
        return _Loaded(model, context)

    @override
    def requirements(self, model: Any) -> list[str]:
        return pinned("numpy", "pandas")
