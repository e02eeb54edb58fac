"""A model whose predictions are not finite (importable, so it can be stored)."""

from __future__ import annotations

from typing import Any

import numpy as np

from shipyard.services.flavors.python import PythonModel


class NotFinite(PythonModel):
    """Predicts NaN, +inf and 1.0 in turn."""

    def predict(self, context: Any, model_input: Any) -> Any:
        values = [float("nan"), float("inf"), 1.0]
        return np.array([values[i % 3] for i in range(len(model_input))])
