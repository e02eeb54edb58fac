"""Model flavors: how each kind of model is saved, loaded, exported to ONNX and checked.

A flavor is chosen by name from ``FLAVORS`` (``"name" -> "module:Class"``), imported lazily,
or found by asking each flavor whether it ``matches`` the model.
"""

from __future__ import annotations

import importlib
from typing import Any

from shipyard.errors import InvalidArgumentError
from shipyard.services.flavors.base import Flavor

__all__ = ["FLAVORS", "flavor_for", "flavor_named"]

FLAVORS: dict[str, str] = {
    "sklearn": "shipyard.services.flavors.sklearn:SklearnFlavor",
    "onnx": "shipyard.services.flavors.onnx:OnnxFlavor",
    "python": "shipyard.services.flavors.python:PythonFlavor",
}
_DETECT_ORDER = ("onnx", "python", "sklearn")


def flavor_named(name: str) -> Flavor:
    """The flavor called ``name``.

    Raises:
        InvalidArgumentError: for an unknown flavor; the message lists the supported ones.
    """
    target = FLAVORS.get(name)
    if target is None:
        raise InvalidArgumentError(
            f"unknown model flavor {name!r}; supported flavors: {', '.join(sorted(FLAVORS))}"
        )
    module, _, cls = target.partition(":")
    flavor: Flavor = getattr(importlib.import_module(module), cls)()
    return flavor


def flavor_for(model: Any) -> Flavor:
    """The flavor that can save ``model``.

    Raises:
        InvalidArgumentError: if no flavor recognises it.
    """
    for name in _DETECT_ORDER:
        try:
            flavor = flavor_named(name)
        except ImportError:  # its library is not installed: it cannot be this model's flavor
            continue
        if flavor.matches(model):
            return flavor
    raise InvalidArgumentError(
        f"no flavor saves a {type(model).__module__}.{type(model).__name__}; "
        f"supported flavors: {', '.join(sorted(FLAVORS))} (wrap other models in "
        "shipyard.PythonModel)"
    )
