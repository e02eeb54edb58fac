"""A model that fails on negative input (importable, so it can be stored)."""

from __future__ import annotations

from typing import Any

import numpy as np

from shipyard.services.flavors.python import PythonModel


class FailsOnNegative(PythonModel):
    """Predicts ``2 * x``; raises for a batch holding a negative ``x`` (a model bug: 500)."""

    def predict(self, context: Any, model_input: Any) -> Any:
        values = np.asarray(model_input["x"], dtype=float)
        if (values < 0).any():
            raise ValueError("x must not be negative")
        return 2 * values
