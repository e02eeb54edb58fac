"""Model flavors: how each kind of model is saved, loaded, exported to ONNX and checked.

A flavor is chosen by name from ``FLAVORS`` (``"name" -> "module:Class"``), imported lazily,
or found by asking each flavor whether it ``matches`` the model.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from shipyard.errors import InvalidArgumentError
from shipyard.services.flavors.base import Flavor

__all__ = ["FLAVORS", "flavor_for", "flavor_named"]

FLAVORS: dict[str, str] = {
    "sklearn": "shipyard.services.flavors.sklearn:SklearnFlavor",
    "onnx": "shipyard.services.flavors.onnx:OnnxFlavor",
    "python": "shipyard.services.flavors.python:PythonFlavor",
    "pytorch": "shipyard.services.flavors.pytorch:PytorchFlavor",
    "lightning": "shipyard.services.flavors.lightning:LightningFlavor",
}
# A LightningModule is a torch Module too: the more specific flavor is asked first.
_DETECT_ORDER = ("onnx", "python", "lightning", "pytorch", "sklearn")


def flavor_named(name: str, **options: Any) -> Flavor:
    """The flavor called ``name``, made with its ``options`` (e.g. ``torchscript=True``).

    Raises:
        InvalidArgumentError: for an unknown flavor (the message lists the supported ones)
            or an option the flavor does not take.
    """
    target = FLAVORS.get(name)
    if target is None:
        raise InvalidArgumentError(
            f"unknown model flavor {name!r}; supported flavors: {', '.join(sorted(FLAVORS))}"
        )
    module, _, cls = target.partition(":")
    factory = getattr(importlib.import_module(module), cls)
    if options:
        try:
            inspect.signature(factory).bind(**options)
        except TypeError:
            raise InvalidArgumentError(
                f"the {name} flavor does not take the option(s) {', '.join(sorted(options))}"
            ) from None
    flavor: Flavor = factory(**options)
    return flavor


def flavor_for(model: Any, **options: Any) -> Flavor:
    """The flavor that can save ``model``, made with its ``options``.

    Raises:
        InvalidArgumentError: if no flavor recognises it, or it does not take an option.
    """
    for name in _DETECT_ORDER:
        try:
            flavor = flavor_named(name)
        except ImportError:  # its library is not installed: it cannot be this model's flavor
            continue
        if flavor.matches(model):
            return flavor_named(name, **options) if options else flavor
    raise InvalidArgumentError(
        f"no flavor saves a {type(model).__module__}.{type(model).__name__}; "
        f"supported flavors: {', '.join(sorted(FLAVORS))} (wrap other models in "
        "shipyard.PythonModel)"
    )
