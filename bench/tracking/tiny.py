"""The tiny model of workload d): returns its input (importable, so shipyard can pickle it)."""

from __future__ import annotations

from typing import Any

from shipyard.services.flavors.python import PythonModel


class TinyModel(PythonModel):
    """Identity: the smallest model both registries store the same way (one pickle)."""

    def predict(self, context: Any, model_input: Any) -> Any:
        return model_input
