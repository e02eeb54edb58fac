"""The interface every model flavor implements."""

from __future__ import annotations

import importlib.metadata
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

from shipyard.errors import NotSupportedError

__all__ = ["Flavor", "LoadedModel", "pinned"]


class LoadedModel(ABC):
    """A model loaded from the store, ready to predict."""

    flavor: str

    @abstractmethod
    def predict(self, data: Any) -> Any:
        """Predictions for a table of inputs (pandas, polars, pyarrow, dict of columns)."""

    @property
    def native(self) -> Any:
        """The underlying model object."""
        raise NotSupportedError(self.flavor, "access to the native model")


class Flavor(ABC):
    """Saves and loads one kind of model."""

    name: str

    @abstractmethod
    def matches(self, model: Any) -> bool:
        """Whether this flavor can save ``model``."""

    @abstractmethod
    def save(self, model: Any, folder: Path) -> None:
        """Write the model's files into ``folder``."""

    def save_with_example(self, model: Any, folder: Path, example: Any) -> None:
        """Write the model's files, given the input example (``None`` without one).

        Flavors that check the model on its example, or trace it, override this; the
        default ignores the example and calls ``save``.
        """
        self.save(model, folder)

    @abstractmethod
    def load(self, folder: Path) -> LoadedModel:
        """Load a model from files this flavor saved (already verified by the store)."""

    @abstractmethod
    def requirements(self, model: Any) -> list[str]:
        """Pinned packages needed to load the model (``name==version``)."""

    def to_onnx(self, model: Any, example: Any) -> bytes:
        """Convert to ONNX.

        Raises:
            NotSupportedError: if no converter exists for this model.
        """
        raise NotSupportedError(f"the {self.name} flavor", "ONNX export")


def pinned(*packages: str) -> list[str]:
    """``name==version`` for each installed package; packages not installed are left out."""
    found = []
    for package in packages:
        try:
            found.append(f"{package}=={importlib.metadata.version(package)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    return found
